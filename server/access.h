#pragma once
// Access: who a client is and what it may do (docs/security.md).
//
// A client connection has a principal: from its TLS certificate
// (--client-auth cert) or from a bearer token it presents
// (--client-auth token; Tokens maps tokens to principals). An Acl grants
// principals rights per lock-name prefix:
//
//   lock   Acquire, Release, CancelWait on the locks under the prefix
//   read   Describe, CheckSequencer, ListLocks (and watches) under it
//   admin  ForceRelease under it; with the prefix "*", the cluster's
//          administration too: ListSessions, member add/promote/remove,
//          snapshot save (backups)
//
// Sessions (open, keep alive, close), ClusterStatus and MemberList need
// an authenticated principal and no right: a session belongs to its
// principal, and only it may use the session (the state machine checks
// that). With authentication on, what no rule allows is refused with
// PERMISSION_DENIED.
//
// Both are parsed from small text files (one entry per line, `#` starts a
// comment), loaded at start-up; a bad line is an error naming the file and
// line, never a silent gap in the rules.
//
// Thread-safety: immutable once loaded; share freely.

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "proto/client.pb.h"

namespace fencelock::server {

enum Right : uint8_t {
  kRightLock = 1,
  kRightRead = 2,
  kRightAdmin = 4,
};

// "<token> <principal>" per line. A token is at least 16 characters (a
// guessable one is refused); a token listed twice is an error.
class Tokens {
 public:
  static Result<Tokens> parse(std::string_view text, const std::string& source);
  static Result<Tokens> load(const std::filesystem::path& file);

  // The principal `token` names, or nullopt. Compares in constant time
  // per token so the answer's timing tells nothing of near misses.
  std::optional<std::string> principal(const std::string& token) const;
  size_t size() const { return tokens_.size(); }

 private:
  std::vector<std::pair<std::string, std::string>> tokens_;  // token, principal
};

// "<principal> <prefix> <rights>" per line: `principal` a name or `*` (any
// authenticated principal), `prefix` a lock-name prefix or `*` (every lock
// and the cluster), `rights` comma-separated from lock, read, admin.
class Acl {
 public:
  struct Rule {
    std::string principal;  // "*" = every principal
    std::string prefix;     // "*" = everything
    uint8_t rights = 0;
  };

  static Result<Acl> parse(std::string_view text, const std::string& source);
  static Result<Acl> load(const std::filesystem::path& file);

  // Whether `principal` has `right` on lock `name` (a rule whose prefix
  // begins it, or "*"); given a prefix, on every lock under it.
  bool allows(const std::string& principal, Right right, std::string_view name) const;
  // Whether `principal` has `right` on the cluster (a "*" rule).
  bool allows_cluster(const std::string& principal, Right right) const;

  // OK, or PERMISSION_DENIED naming the principal, the right and what it
  // was asked for, when `principal` may not make `request`.
  Status check(const std::string& principal, const clientpb::Request& request) const;

  const std::vector<Rule>& rules() const { return rules_; }

 private:
  std::vector<Rule> rules_;
};

// "lock", "read", "admin".
std::string_view right_name(Right right);

}  // namespace fencelock::server
