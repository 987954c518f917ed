#pragma once
// LeaderTimers: the leader's duties in time. Time enters the state machine
// only through commands the leader proposes, and these are they:
// ExpireSession for a session past its TTL without a keepalive, CancelWait
// at a wait's deadline, EndLockDelay when a lock-delay has run.
//
// Every timer runs on the leader's steady clock and is never early: a node
// that takes office gives every session a full TTL, and every pending wait
// and lock-delay its full length again, from that moment (docs/design.md).
//
// Thread-safety: not thread-safe; the node's loop only.

#include <spdlog/logger.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "proto/command.pb.h"
#include "server/config.h"
#include "server/env.h"
#include "statemachine/lock_state_machine.h"

namespace fencelock::server {

class LeaderTimers {
 public:
  // Proposes a leader command; false when it cannot be proposed now (not
  // leader, transfer under way), and the timer is tried again a tick later.
  using Propose = std::function<bool(const lockpb::Command&)>;

  // `bug`: kNone outside tests (NodeConfig::test_only_inject_bug).
  LeaderTimers(uint64_t self_id, uint32_t tick_ms, uint32_t election_ms, InjectedBug bug,
               std::shared_ptr<spdlog::logger> logger)
      : self_id_(self_id),
        tick_ms_(tick_ms),
        election_ms_(election_ms),
        bug_(bug),
        logger_(std::move(logger)) {}

  // This node took office at `now`: arms every session, wait and
  // lock-delay of `state` in full from now.
  void take_office(SteadyTime now, const sm::LockStateMachine& state, uint64_t term);
  // This node is no longer leader: forgets every timer.
  void clear();

  // Proposes what is due at `now`. `hold_sessions`: a node handing
  // leadership over refuses keepalives, so it expires no session.
  void run(SteadyTime now, bool hold_sessions, const Propose& propose);

  // Bookkeeping for an applied command on the leader.
  void applied(SteadyTime now, const lockpb::Command& command, const sm::ApplyResult& result);

  // A ReadIndex round confirmed a keepalive of `session` that arrived
  // before it: the TTL runs again from `now`. Ignored for an unknown or
  // expiring session.
  void keepalive_confirmed(uint64_t session, SteadyTime now);
  // The TTL to acknowledge a keepalive with; nullopt when the session is
  // unknown or its expiry has been proposed (then the keepalive is refused,
  // so no client is told its session lives on while the expiry may commit).
  std::optional<uint64_t> keepalive_ttl_ms(uint64_t session) const;

  size_t sessions() const { return session_seen_.size(); }

 private:
  struct Seen {
    SteadyTime last;
    uint64_t ttl_ms = 0;
  };
  struct WaitTimer {
    SteadyTime deadline;
    uint64_t session_id = 0;
    std::string lock;
    uint64_t wait_id = 0;
    friend bool operator>(const WaitTimer& a, const WaitTimer& b) {
      return std::tie(a.deadline, a.wait_id) > std::tie(b.deadline, b.wait_id);
    }
  };
  struct DelayTimer {
    SteadyTime end;
    std::string lock;
    uint64_t delay_id = 0;  // names the delay in EndLockDelay
    friend bool operator>(const DelayTimer& a, const DelayTimer& b) {
      return std::tie(a.end, a.lock) > std::tie(b.end, b.lock);
    }
  };
  template <typename T>
  using MinHeap = std::priority_queue<T, std::vector<T>, std::greater<T>>;

  void track_session(uint64_t session_id, uint64_t ttl_ms, SteadyTime now);
  void expire_due_sessions(SteadyTime now, bool hold_sessions, const Propose& propose);

  uint64_t self_id_;
  uint32_t tick_ms_;
  uint32_t election_ms_;
  InjectedBug bug_;
  std::shared_ptr<spdlog::logger> logger_;
  std::map<uint64_t, Seen> session_seen_;
  MinHeap<std::pair<SteadyTime, uint64_t>> session_deadlines_;
  MinHeap<WaitTimer> wait_deadlines_;
  MinHeap<DelayTimer> delay_ends_;
  // Sessions whose ExpireSession has been proposed.
  std::set<uint64_t> expiring_sessions_;
};

}  // namespace fencelock::server
