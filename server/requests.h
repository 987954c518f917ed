#pragma once
// Requests: client requests that change state. On the leader each becomes a
// command, proposed to Raft (requests that arrive together share one append
// and one fsync); its caller is answered when the entry applies (matched by
// index and term), or told to retry when the proposal is lost. An acquire
// that queues is answered later, when an entry grants it or ends its wait.
//
// Retries are safe: a command carries the client's (session, sequence) and
// the state machine answers a retry with the recorded result (docs/design.md
// "Exactly once"), so every "lost" answer here is UNAVAILABLE: retry.
//
// Thread-safety: not thread-safe; the node's loop only.

#include <spdlog/logger.h>

#include <map>
#include <memory>
#include <optional>
#include <set>

#include "proto/client.pb.h"
#include "proto/command.pb.h"
#include "raft/raw_node.h"
#include "server/responder.h"
#include "statemachine/lock_state_machine.h"

namespace fencelock::server {

class Requests {
 public:
  Requests(Responder& responder, std::shared_ptr<spdlog::logger> logger)
      : responder_(responder), logger_(std::move(logger)) {}

  // Proposes `command` (server/commands.h makes it from a request) for
  // `caller`; answers NOT_LEADER when the core refuses it (not leader,
  // leadership transfer under way).
  // False when the core refused it (the caller was answered NOT_LEADER).
  bool propose(raft::RawNode& raft, const Caller& caller, const lockpb::Command& command);

  // The entry at `entry.index()` is being applied: returns the caller of
  // the proposal that made it, if any and if it is this entry (same term).
  // Callers of proposals at lower indices, and one whose index holds another
  // term's entry, are told their proposal was lost.
  std::optional<Caller> take_caller(const raftpb::Entry& entry);

  // Answers `caller` with the outcome of its command; an acquire that
  // queued is remembered until its wait ends.
  void answer_applied(const Caller& caller, lockpb::Command::KindCase kind,
                      const sm::ApplyResult& result);
  // Answers earlier queued acquires that `result` granted or ended.
  void answer_waits(const sm::ApplyResult& result);

  // Leadership was lost: uncommitted proposals may be overwritten, and are
  // answered only when the log reaches their index — never, if no traffic
  // follows. Their callers are told to retry now.
  void fail_proposals(const std::string& why);
  // A snapshot at `snapshot_index` was installed: proposals inside it and
  // waits no longer pending (`pending_waits`: wait ids still queued) were
  // decided where this node cannot see the results; their callers retry.
  void fail_after_snapshot(uint64_t snapshot_index, const std::set<uint64_t>& pending_waits);
  // This node left the cluster: it will not see the log go on, so the
  // queued acquires it answers would never be answered here. Their callers
  // retry at the leader with the same session and sequence, which answers
  // with what became of the wait.
  void fail_waits(const std::string& why);
  // Forgets callers on a closed connection; their commands still apply.
  void forget_connection(ConnectionId connection);

  size_t pending_proposals() const { return proposals_.size(); }

 private:
  struct PendingProposal {
    Caller caller;
    uint64_t term = 0;
  };
  std::vector<Caller> take_waiting(uint64_t wait_id);

  Responder& responder_;
  std::shared_ptr<spdlog::logger> logger_;
  std::map<uint64_t, PendingProposal> proposals_;     // by log index
  std::multimap<uint64_t, Caller> waiting_acquires_;  // by wait id
};

}  // namespace fencelock::server
