#pragma once
// NodeChecker: what the node-level simulator checks, on real (simulated)
// time, from two vantage points: what clients were told, and what the
// nodes applied (server::Env::applied).
//
//   mutual exclusion     no two clients are both inside safe-until of
//                        conflicting grants of one lock at one instant
//                        (a force-release revokes the grants it ended)
//   tokens               every grant's token is greater than every token
//                        granted before it, cluster-wide (so per lock)
//   state machine        every node applies the same command at an index,
//                        with the same grants
//   exactly once         a retried request never makes a second grant
//   durability           an acknowledged grant is listed by a later
//                        linearizable read while its session is safe; an
//                        acknowledged release is not
//   lock-delay           no grant of a lock within its lock-delay after its
//                        holder's session expired, allowing for the
//                        leader's clock running fast within the bound
//   session expiry       no session expires while its client is inside
//                        safe-until, nor is a keepalive acknowledged in a
//                        way that puts safe-until past its expiry
//   ownership            no command of one principal changes anything
//                        through a session another principal opened: it
//                        applies as PERMISSION_DENIED with no grant, no
//                        ended wait, no lock-delay; no request naming
//                        another principal's session (a keepalive
//                        included) is answered OK
//   election safety      at most one leader per term
//   membership           every node applies the same ConfChange at an
//                        index, each one applies to the configuration
//                        before it (the checker's own bookkeeping) and
//                        leaves at least one voter; a snapshot a node
//                        installs names the configuration of its index; a
//                        leader is a voter of its own configuration; a
//                        node never leads after its removal was applied
//                        anywhere, nor answers a request OK after it
//                        applied its own removal
//
// The first violation is kept.
//
// Thread-safety: not thread-safe.

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "proto/command.pb.h"
#include "proto/raft.pb.h"
#include "statemachine/lock_state_machine.h"
#include "tests/sim/node/sim_clock.h"

namespace fencelock::sim {

class NodeChecker {
 public:
  // `max_node_rate`: the fastest a node's steady clock may run (a lock-delay
  // of D ms lasts at least D / max_node_rate real ms).
  explicit NodeChecker(double max_node_rate) : max_node_rate_(max_node_rate) {}

  bool ok() const { return !violation_; }
  const std::optional<std::string>& violation() const { return violation_; }
  void fail(std::string what);

  uint64_t grants() const { return grants_; }
  uint64_t expiries() const { return expiries_; }
  uint64_t client_grants() const { return client_grants_; }

  // Lock `lock` is a counting semaphore of `max_holders` (SHARED grants).
  void set_semaphore(const std::string& lock, uint32_t max_holders) {
    semaphores_[lock] = max_holders;
  }

  // --- What clients were told. Times are real microseconds.

  // Session `session`'s safe-until is now `real_until` (it only grows).
  void session_safe_until(uint64_t session, double real_until);
  // The client treats session `session` as lost from `at` on.
  void session_lost(uint64_t session, double at);
  // Session `session` received a grant at `at` (while not lost).
  void granted(uint64_t client, uint64_t session, const lockpb::Sequencer& sequencer, double at);
  // The client stops treating the grant as held at `at` (it sent the
  // release or the close, or gave the session up).
  void let_go(uint64_t session, uint64_t token, double at);
  // The release of `token` was acknowledged OK at `at`.
  void release_acknowledged(const std::string& lock, uint64_t token, double at);
  // A linearizable describe of `lock`, sent at `sent` and answered at `at`,
  // listed `tokens` as the holders.
  void described(uint64_t session, const std::string& lock, const std::set<uint64_t>& tokens,
                 double sent, double at);

  // --- What the nodes applied.
  void applied(uint64_t node, uint64_t index, const lockpb::Command& command,
               const sm::ApplyResult& result, double at);

  // --- Principals.
  // Sessions opened (as far as applied) and not known to have ended, of
  // principals other than `principal`, by id.
  std::vector<uint64_t> live_sessions_not_of(const std::string& principal) const;
  // The latest token granted to `session` for `lock`; 0 when none is known.
  uint64_t token_of(uint64_t session, const std::string& lock) const;
  // Client `client`, as `principal`, sent a `kind` request naming `session`
  // of another principal; it was answered `code`.
  void intrusion_answered(uint64_t client, const std::string& principal, const char* kind,
                          uint64_t session, lockpb::ErrorCode code, double at);
  uint64_t denied() const { return denied_; }
  uint64_t exhausted() const { return exhausted_; }

  // --- Membership.
  // `node` applied `change` at `index`; `conf` is its configuration after it.
  void conf_change_applied(uint64_t node, uint64_t index, const raftpb::ConfChange& change,
                           const raftpb::ConfState& conf, double at);
  // `node` holds the snapshot at `index` naming `conf`: installed from the
  // leader, or its own, read back when it starts.
  void snapshot_restored(uint64_t node, uint64_t index, const raftpb::ConfState& conf, double at);
  // `node` leads `term` (first seen at `at`); `voter`: whether its own
  // latest configuration makes it a voter; `removal_pending`: whether that
  // configuration removes it and has not committed in its own view (the
  // core lets such a node campaign and lead until the removal commits,
  // even when others have committed it: it cannot know).
  void leading(uint64_t node, uint64_t term, bool voter, bool removal_pending, double at);
  // `node` answered a client request (other than ClusterStatus) OK.
  void answered_ok(uint64_t node, double at);
  // The configuration `node` applied last (from a ConfChange or a
  // snapshot), with its index; nullptr before any.
  struct AppliedConf {
    uint64_t index = 0;
    raftpb::ConfState conf;
  };
  const AppliedConf* applied_conf(uint64_t node) const;
  // Whether `node` applied its own removal.
  bool removed_itself(uint64_t node) const { return self_removed_.contains(node); }

 private:
  struct Holding {
    uint64_t client = 0;
    uint64_t session = 0;
    lockpb::Sequencer sequencer;
    double from = 0;
    std::optional<double> until;    // let go
    std::optional<double> revoked;  // force-released
  };
  struct SessionView {
    double safe_until = 0;
    std::optional<double> lost;
    std::optional<double> expired;  // when its ExpireSession first applied
  };
  struct AppliedIndex {
    std::string command;  // serialized; a ConfChange's prefixed with "conf "
    std::vector<uint64_t> tokens;
    std::string conf;  // a ConfChange's: the configuration after it, serialized
  };
  struct Delay {
    double from = 0;
    uint64_t delay_ms = 0;
  };

  bool active(const Holding& holding, double at) const;
  void check_grant_applied(uint64_t session, const std::string& lock, uint64_t token, double at);
  std::vector<uint64_t> tokens_of(const sm::ApplyResult& result) const;

  double max_node_rate_;
  std::optional<std::string> violation_;
  uint64_t grants_ = 0;
  uint64_t expiries_ = 0;
  uint64_t client_grants_ = 0;

  std::map<uint64_t, SessionView> sessions_;
  std::multimap<std::string, Holding> holdings_;  // by lock
  // Per lock: (acknowledged at, token) of acknowledged releases.
  std::map<std::string, std::vector<std::pair<double, uint64_t>>> released_;

  std::map<uint64_t, AppliedIndex> applied_;  // by index, first applier's view
  uint64_t max_token_ = 0;
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> acquire_tokens_;  // (session, sequence) -> token
  std::set<uint64_t> granted_waits_;
  std::map<std::string, Delay> delays_;  // locks in lock-delay
  std::map<std::string, uint64_t> max_token_of_lock_;
  std::map<std::string, uint32_t> semaphores_;  // lock -> max holders
  // Every token granted: its session and lock. An Acquire of a lock its
  // session already holds in that mode is answered with the existing
  // grant, which is no new grant.
  std::map<uint64_t, std::pair<uint64_t, std::string>> token_owners_;
  // Per lock, the latest force-release: when it applied, and the highest
  // token of the lock granted before it (every grant up to it ended there).
  std::map<std::string, std::pair<double, uint64_t>> forced_;

  // The principal of every session opened, and the sessions not known to
  // have ended; commands applied PERMISSION_DENIED.
  std::map<uint64_t, std::string> owners_;
  std::set<uint64_t> live_;
  uint64_t denied_ = 0;
  uint64_t exhausted_ = 0;  // commands applied RESOURCE_EXHAUSTED

  // Membership: the configuration after each ConfChange index, as the
  // checker computes it; per node what it applied last; when each node's
  // removal was first applied anywhere, and by the node itself; who led
  // each term.
  std::map<uint64_t, raftpb::ConfState> confs_;
  std::map<uint64_t, AppliedConf> node_confs_;
  struct Removal {
    uint64_t index = 0;
    double at = 0;
  };
  std::map<uint64_t, Removal> removals_;
  std::map<uint64_t, double> self_removed_;
  std::map<uint64_t, uint64_t> leaders_;  // term -> node
};

}  // namespace fencelock::sim
