#pragma once
// Reads: requests answered from the state machine without a log entry —
// keepalives, describe, list, check-sequencer, list-sessions. Each is
// answered only after a ReadIndex round (Raft dissertation §6.4) confirms
// that this node was still the leader after the request arrived, and once
// the state machine has applied the read index: a deposed leader can
// neither extend a session nor serve a stale read. Requests that arrive
// between two rounds share the next one (batching).
//
// Thread-safety: not thread-safe; the node's loop only.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "proto/client.pb.h"
#include "raft/raw_node.h"
#include "server/leader_timers.h"
#include "server/responder.h"
#include "statemachine/lock_state_machine.h"

namespace fencelock::server {

class Reads {
 public:
  // `timeout`: a round not confirmed within it is answered NOT_LEADER
  // (leadership moved). `page_bytes`: how large a list page may grow, so
  // that its answer fits in one frame (a page of one larger entry still
  // goes out, and the client's frame check answers it).
  Reads(uint64_t self_id, std::chrono::milliseconds timeout, size_t page_bytes,
        Responder& responder, const sm::LockStateMachine& state, LeaderTimers& timers)
      : self_id_(self_id),
        timeout_(timeout),
        page_bytes_(page_bytes),
        responder_(responder),
        state_(state),
        timers_(timers) {}

  // Serves kinds of read this class does not know (the node's backups);
  // returns false for one it does not know either (UNKNOWN_REQUEST).
  using Fallback = std::function<bool(const Caller&, const clientpb::Request&)>;
  void set_fallback(Fallback fallback) { fallback_ = std::move(fallback); }

  // Queues a read or keepalive for the next round. A keepalive counts only
  // for a session `principal` opened (sm::LockStateMachine::authorize); for
  // another's it is answered PERMISSION_DENIED.
  void queue(const Caller& caller, const std::string& principal, clientpb::Request request);
  bool has_unsent() const { return !unsent_.empty(); }

  // Starts one ReadIndex round for everything queued (leader), or answers
  // it NOT_LEADER.
  void flush(raft::RawNode& raft, bool leader, SteadyTime now);
  // A round was confirmed at `read_state.index`: its keepalives count from
  // `now`, and its reads wait until that index is applied.
  void confirmed(const raft::ReadState& read_state, SteadyTime now);
  // Serves every confirmed round whose index `applied_index` reaches.
  void serve_applied(uint64_t applied_index, bool leader);
  // Answers NOT_LEADER to rounds started before `now` - timeout.
  void expire(SteadyTime now);
  // Leadership was lost: unconfirmed rounds and queued requests are
  // answered NOT_LEADER. Confirmed ones stay: their index is valid.
  void fail_unconfirmed();

 private:
  struct Request {
    Caller caller;
    std::string principal;
    clientpb::Request request;
  };
  using Queued = std::vector<Request>;
  struct Round {
    Queued requests;
    SteadyTime deadline;
    uint64_t index = 0;  // read index once confirmed
  };
  void serve(const Caller& caller, const std::string& principal, const clientpb::Request& request,
             bool leader);

  uint64_t self_id_;
  std::chrono::milliseconds timeout_;
  size_t page_bytes_;
  Responder& responder_;
  const sm::LockStateMachine& state_;
  LeaderTimers& timers_;
  Queued unsent_;
  std::map<std::string, Round> in_flight_;         // by ReadIndex context
  std::multimap<uint64_t, Round> awaiting_apply_;  // by read index
  uint64_t next_context_ = 1;
  Fallback fallback_;
};

}  // namespace fencelock::server
