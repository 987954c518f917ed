#include "server/access.h"

#include <sys/stat.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "common/text.h"

namespace fencelock::server {

namespace {

constexpr size_t kMinTokenBytes = 16;

Status invalid(const std::string& source, size_t line, const std::string& what) {
  return Status(lockpb::INVALID_ARGUMENT, source + ":" + std::to_string(line) + ": " + what);
}

// The whitespace-separated fields of each line that is not blank or a
// comment, with its line number.
std::vector<std::pair<size_t, std::vector<std::string>>> fields_of(std::string_view text) {
  std::vector<std::pair<size_t, std::vector<std::string>>> out;
  size_t number = 0;
  for (const std::string& raw : split(text, '\n')) {
    ++number;
    std::string line = raw.substr(0, raw.find('#'));
    std::istringstream in(line);
    std::vector<std::string> fields;
    for (std::string field; in >> field;) fields.push_back(field);
    if (!fields.empty()) out.emplace_back(number, std::move(fields));
  }
  return out;
}

Result<std::string> read_file(const std::filesystem::path& file, const char* what) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return Status(lockpb::INVALID_ARGUMENT, std::string("cannot read ") + what + " " +
                                                file.string() + ": " + std::strerror(errno));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Constant-time comparison of equal-length prefixes, then lengths.
bool same_secret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

bool prefix_covers(const std::string& rule_prefix, std::string_view name) {
  return rule_prefix == "*" || name.substr(0, rule_prefix.size()) == rule_prefix;
}

Status denied(const std::string& principal, Right right, const std::string& what) {
  return Status(lockpb::PERMISSION_DENIED, "principal '" + principal + "' has no " +
                                               std::string(right_name(right)) + " right on " +
                                               what);
}

}  // namespace

std::string_view right_name(Right right) {
  switch (right) {
    case kRightLock:
      return "lock";
    case kRightRead:
      return "read";
    case kRightAdmin:
      return "admin";
  }
  return "?";
}

// ---------------------------------------------------------------- tokens

Result<Tokens> Tokens::parse(std::string_view text, const std::string& source) {
  Tokens tokens;
  for (auto& [line, fields] : fields_of(text)) {
    if (fields.size() != 2) return invalid(source, line, "expected: TOKEN PRINCIPAL");
    if (fields[0].size() < kMinTokenBytes) {
      return invalid(source, line,
                     "token shorter than " + std::to_string(kMinTokenBytes) +
                         " characters (make one with `openssl rand -hex 24`)");
    }
    for (const auto& [token, principal] : tokens.tokens_) {
      if (token == fields[0]) return invalid(source, line, "token listed twice");
    }
    tokens.tokens_.emplace_back(fields[0], fields[1]);
  }
  if (tokens.tokens_.empty()) {
    return Status(lockpb::INVALID_ARGUMENT, source + ": no tokens (lines of TOKEN PRINCIPAL)");
  }
  return tokens;
}

Result<Tokens> Tokens::load(const std::filesystem::path& file) {
  auto text = read_file(file, "tokens file");
  if (!text.ok()) return text.status();
  struct stat info {};
  if (::stat(file.c_str(), &info) == 0 && (info.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    spdlog::warn("tokens file {} is readable by others than its owner (chmod 600 it)",
                 file.string());
  }
  return parse(text.value(), file.string());
}

std::optional<std::string> Tokens::principal(const std::string& token) const {
  std::optional<std::string> found;
  for (const auto& [known, principal] : tokens_) {
    if (same_secret(known, token) && !found) found = principal;
  }
  return found;
}

// ---------------------------------------------------------------- ACL

Result<Acl> Acl::parse(std::string_view text, const std::string& source) {
  Acl acl;
  for (auto& [line, fields] : fields_of(text)) {
    if (fields.size() != 3) return invalid(source, line, "expected: PRINCIPAL PREFIX RIGHTS");
    Rule rule{fields[0], fields[1], 0};
    for (const std::string& right : split(fields[2], ',')) {
      if (right == "lock") {
        rule.rights |= kRightLock;
      } else if (right == "read") {
        rule.rights |= kRightRead;
      } else if (right == "admin") {
        rule.rights |= kRightAdmin;
      } else {
        return invalid(source, line, "unknown right '" + right + "' (lock, read, admin)");
      }
    }
    acl.rules_.push_back(std::move(rule));
  }
  return acl;
}

Result<Acl> Acl::load(const std::filesystem::path& file) {
  auto text = read_file(file, "ACL file");
  if (!text.ok()) return text.status();
  return parse(text.value(), file.string());
}

bool Acl::allows(const std::string& principal, Right right, std::string_view name) const {
  for (const Rule& rule : rules_) {
    if ((rule.rights & right) != 0 && (rule.principal == "*" || rule.principal == principal) &&
        prefix_covers(rule.prefix, name)) {
      return true;
    }
  }
  return false;
}

bool Acl::allows_cluster(const std::string& principal, Right right) const {
  for (const Rule& rule : rules_) {
    if ((rule.rights & right) != 0 && (rule.principal == "*" || rule.principal == principal) &&
        rule.prefix == "*") {
      return true;
    }
  }
  return false;
}

Status Acl::check(const std::string& principal, const clientpb::Request& request) const {
  auto on_lock = [&](Right right, const std::string& lock) {
    return allows(principal, right, lock) ? Status() : denied(principal, right, "lock '" + lock + "'");
  };
  auto on_cluster = [&](Right right, const char* what) {
    return allows_cluster(principal, right)
               ? Status()
               : denied(principal, right, std::string("the cluster (") + what +
                                              " needs a rule with prefix *)");
  };
  switch (request.kind_case()) {
    case clientpb::Request::kOpenSession:
    case clientpb::Request::kKeepAlive:
    case clientpb::Request::kCloseSession:
    case clientpb::Request::kClusterStatus:
    case clientpb::Request::kMemberList:
    case clientpb::Request::kAuthenticate:
      return Status();
    case clientpb::Request::kAcquire:
      return on_lock(kRightLock, request.acquire().lock());
    case clientpb::Request::kRelease:
      return on_lock(kRightLock, request.release().lock());
    case clientpb::Request::kCancelWait:
      return on_lock(kRightLock, request.cancel_wait().lock());
    case clientpb::Request::kForceRelease:
      return on_lock(kRightAdmin, request.force_release().lock());
    case clientpb::Request::kDescribe:
      return on_lock(kRightRead, request.describe().lock());
    case clientpb::Request::kCheckSequencer:
      return on_lock(kRightRead, request.check_sequencer().sequencer().lock());
    case clientpb::Request::kLockStats:
      return allows(principal, kRightRead, request.lock_stats().prefix())
                 ? Status()
                 : denied(principal, kRightRead,
                          "the statistics of every lock under '" + request.lock_stats().prefix() +
                              "'");
    case clientpb::Request::kListLocks:
      // Every lock under the prefix: a rule whose prefix begins it.
      return allows(principal, kRightRead, request.list_locks().prefix())
                 ? Status()
                 : denied(principal, kRightRead,
                          "every lock under '" + request.list_locks().prefix() +
                              "' (list a prefix a rule covers)");
    case clientpb::Request::kListSessions:
      return on_cluster(kRightAdmin, "listing sessions");
    case clientpb::Request::kMemberAdd:
    case clientpb::Request::kMemberPromote:
    case clientpb::Request::kMemberRemove:
      return on_cluster(kRightAdmin, "changing membership");
    case clientpb::Request::kBackupBegin:
    case clientpb::Request::kBackupChunk:
    case clientpb::Request::kBackupEnd:
      return on_cluster(kRightAdmin, "saving a snapshot");
    case clientpb::Request::KIND_NOT_SET:
      break;
  }
  return Status(lockpb::PERMISSION_DENIED, "unknown request kind");
}

}  // namespace fencelock::server
