#include "tests/statemachine/sm_invariants.h"

#include <fmt/format.h>

#include <set>
#include <sstream>

#include "statemachine/reads.h"
#include "statemachine/validation.h"

namespace fencelock::sm::testing {

void InvariantChecker::fail(std::string what) {
  if (!violation_) violation_ = std::move(what);
}

void InvariantChecker::check_grant_order(const std::string& lock, uint64_t token,
                                         uint64_t wait_id) {
  if (token <= max_token_) {
    fail(fmt::format("lock \"{}\": token {} granted after token {}", lock, token, max_token_));
  }
  max_token_ = std::max(max_token_, token);
  uint64_t& last_token = last_token_[lock];
  if (token <= last_token) {
    fail(fmt::format("lock \"{}\": token {} granted after its token {}", lock, token, last_token));
  }
  last_token = std::max(last_token, token);
  if (wait_id != 0) {
    uint64_t& last_wait = last_wait_id_[lock];
    if (wait_id <= last_wait) {
      fail(fmt::format("lock \"{}\": wait {} granted after wait {} (out of queue order)", lock,
                       wait_id, last_wait));
    }
    last_wait = std::max(last_wait, wait_id);
  }
}

bool InvariantChecker::check(const LockStateMachine& sm, const ApplyResult& r) {
  // The incrementally kept counters against the state machine's own recount.
  if (auto broken = sm.check_invariants()) fail(*broken);
  if (r.granted && !r.duplicate) {
    uint64_t token = r.granted->token();
    // A new grant, or the existing grant of a re-acquire.
    if (token > max_token_) check_grant_order(r.granted->lock(), token, 0);
  }
  for (const Grant& g : r.grants)
    check_grant_order(g.sequencer.lock(), g.sequencer.token(), g.wait_id);

  std::set<uint64_t> sessions;
  for (const SessionTtl& s : sm.sessions()) sessions.insert(s.session_id);
  std::set<uint64_t> tokens;
  for (const LockView& lock : all_locks(sm)) {
    auto broken = [&](const std::string& what) {
      fail(fmt::format("lock \"{}\": {}", lock.name, what));
    };
    if (!validate_lock_name(lock.name).ok()) broken("invalid name");
    if (lock.holders.empty() && lock.waiters.empty() && !lock.in_lock_delay) {
      broken("kept with no holder, no waiter and no lock-delay");
    }
    bool exclusive = false;
    uint64_t previous_token = 0;
    std::set<uint64_t> members;
    for (const HolderView& h : lock.holders) {
      exclusive |= h.mode == lockpb::EXCLUSIVE;
      if (h.token <= previous_token)
        broken(fmt::format("holder tokens not ascending at {}", h.token));
      previous_token = h.token;
      if (h.token >= sm.next_token()) {
        broken(fmt::format("token {} not below next_token {}", h.token, sm.next_token()));
      }
      if (!tokens.insert(h.token).second) broken(fmt::format("token {} held twice", h.token));
      // A session's locks end with it.
      if (!sessions.contains(h.session_id))
        broken(fmt::format("held by ended session {}", h.session_id));
      if (!members.insert(h.session_id).second)
        broken(fmt::format("session {} twice", h.session_id));
    }
    if (exclusive && lock.holders.size() != 1) {
      broken(fmt::format("EXCLUSIVE among {} holders", lock.holders.size()));
    }
    if (!exclusive && lock.max_holders > 0 && lock.holders.size() > lock.max_holders) {
      broken(fmt::format("{} SHARED holders over max_holders {}", lock.holders.size(),
                         lock.max_holders));
    }
    uint64_t previous_wait = 0;
    for (const WaiterView& w : lock.waiters) {
      if (!sessions.contains(w.session_id))
        broken(fmt::format("awaited by ended session {}", w.session_id));
      if (!members.insert(w.session_id).second)
        broken(fmt::format("session {} twice", w.session_id));
      // FIFO: queued in arrival order.
      if (w.wait_id <= previous_wait) broken(fmt::format("waits out of order at {}", w.wait_id));
      previous_wait = w.wait_id;
    }
    // No grantable head left behind: every grant happens in the step that
    // allowed it.
    if (!lock.waiters.empty() && !lock.in_lock_delay) {
      const WaiterView& head = lock.waiters[0];
      bool blocked =
          head.mode == lockpb::EXCLUSIVE
              ? !lock.holders.empty()
              : exclusive || (lock.max_holders > 0 && lock.holders.size() >= lock.max_holders);
      if (!blocked)
        broken(fmt::format("the head of the queue (wait {}) could be granted", head.wait_id));
    }
  }
  // A released holder held a grant issued before, and holds it no longer.
  for (const Released& x : r.released) {
    if (x.token == 0 || x.token >= sm.next_token()) {
      fail(fmt::format("lock \"{}\": released token {} was never granted", x.lock, x.token));
    }
    if (tokens.contains(x.token)) {
      fail(fmt::format("lock \"{}\": released token {} is still held", x.lock, x.token));
    }
  }
  return ok();
}

std::vector<LockView> InvariantChecker::all_locks(const LockStateMachine& sm) {
  std::vector<LockView> out;
  std::string after;
  while (true) {
    // Small pages by count and by bytes: a lock with a few holders and
    // values fills this budget, one larger comes alone.
    constexpr size_t kBudget = 400;
    LockPage page = sm.list_locks("", after, 2, kBudget);
    if (page.locks.size() != 1 && encoded_bytes_bound(page) > kBudget) {
      fail(fmt::format("a page of {} locks after \"{}\" exceeds its budget of {} bytes",
                       page.locks.size(), after, kBudget));
    }
    for (LockView& info : page.locks) out.push_back(std::move(info));
    if (page.next_start_after.empty()) return out;
    after = page.next_start_after;
  }
}

std::string InvariantChecker::dump(const LockStateMachine& sm) {
  std::ostringstream s;
  s << "applied " << sm.applied_index() << " next " << sm.next_token() << "\n";
  uint64_t after = 0;
  while (true) {
    constexpr size_t kBudget = 200;
    SessionPage page = sm.list_sessions(after, 3, kBudget);
    if (page.sessions.size() != 1 && encoded_bytes_bound(page) > kBudget) {
      fail(fmt::format("a page of {} sessions after {} exceeds its budget of {} bytes",
                       page.sessions.size(), after, kBudget));
    }
    for (const SessionView& info : page.sessions) {
      s << "session " << info.session_id << " " << info.client_name << " " << info.ttl_ms << " "
        << info.held_locks << " " << info.waiting_locks << " [" << info.principal << "]\n";
    }
    if (page.next_start_after == 0) break;
    after = page.next_start_after;
  }
  for (const auto& [principal, u] : sm.usage_by_principal()) {
    s << "usage [" << principal << "] " << u.sessions << " " << u.holders_and_waiters << " "
      << u.value_bytes << "\n";
  }
  const Usage total = sm.total_usage();
  s << "total " << total.sessions << " " << total.holders_and_waiters << " " << total.value_bytes
    << "\n";
  for (const LockView& lock : all_locks(sm)) {
    s << "lock " << lock.name << " max " << lock.max_holders << " delay " << lock.lock_delay_ms
      << " " << lock.in_lock_delay << " " << lock.lock_delay_id << "\n";
    for (const HolderView& h : lock.holders) {
      s << " holder " << h.session_id << " " << h.token << " " << h.mode << " " << h.value << "\n";
    }
    for (const WaiterView& w : lock.waiters) {
      s << " waiter " << w.session_id << " " << w.mode << " " << w.wait_id << " " << w.wait_ms
        << "\n";
    }
  }
  return s.str();
}

}  // namespace fencelock::sm::testing
