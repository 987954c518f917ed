#pragma once
// The lock invariants (docs/locks.md), checked on the state machine's own
// reads after each command it applies: the property test checks them against
// its reference model's runs, the state machine fuzz target (fuzz/) after
// every command the fuzzer makes up.
//
//   tokens               every new grant's token exceeds every token granted
//                        before it (globally, hence per lock); queued
//                        acquires are granted in queue order
//   holders              tokens ascend, are unique across locks and below
//                        next_token(); an EXCLUSIVE holder is alone; SHARED
//                        holders respect max_holders; every holder and
//                        waiter is a live session, once per lock
//   queue                waiters in arrival (wait id) order, and no
//                        grantable head left behind
//   releases             a released holder's token was granted and is no
//                        longer held
//   names and lifetime   every lock has a valid name and holders, waiters
//                        or a lock-delay (an unused lock is erased)
//   reads                a page of list_locks/list_sessions stays within
//                        its byte budget (or holds a single entry)
//
// The first violation is kept, as the simulator's checkers do.
//
// Thread-safety: not thread-safe.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "statemachine/lock_state_machine.h"

namespace fencelock::sm::testing {

class InvariantChecker {
 public:
  bool ok() const { return !violation_; }
  const std::optional<std::string>& violation() const { return violation_; }

  // Checks every invariant after `sm` applied a command with result `r`
  // (state that restore() installed: an empty ApplyResult). Returns ok().
  bool check(const LockStateMachine& sm, const ApplyResult& r);

  // Every lock, read in small pages by count and by bytes (a page over its
  // budget is a violation).
  std::vector<LockView> all_locks(const LockStateMachine& sm);

  // The whole state as canonical text, read through list_sessions and
  // list_locks: two machines with the same state give the same text.
  std::string dump(const LockStateMachine& sm);

 private:
  void fail(std::string what);
  void check_grant_order(const std::string& lock, uint64_t token, uint64_t wait_id);

  std::optional<std::string> violation_;
  uint64_t max_token_ = 0;                        // tokens grow globally
  std::map<std::string, uint64_t> last_token_;    // and per lock
  std::map<std::string, uint64_t> last_wait_id_;  // grants follow queue order
};

}  // namespace fencelock::sm::testing
