#include "statemachine/lock_state_machine.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "statemachine/snapshot_codec.h"
#include "tests/statemachine/sm_test_util.h"

namespace fencelock::sm {
namespace {

using testing::AcquireArgs;
using testing::Driver;
using testing::kNoByteLimit;

AcquireArgs shared_args(uint64_t wait_ms = 0, uint32_t max_holders = 0) {
  AcquireArgs args;
  args.mode = lockpb::SHARED;
  args.wait_ms = wait_ms;
  args.max_holders = max_holders;
  return args;
}

std::vector<uint64_t> granted_sessions(const ApplyResult& r) {
  std::vector<uint64_t> out;
  for (const Grant& g : r.grants) out.push_back(g.session_id);
  return out;
}

std::vector<uint64_t> holder_sessions(const LockStateMachine& sm, const std::string& lock) {
  std::vector<uint64_t> out;
  auto info = sm.describe(lock);
  if (!info.ok()) return out;
  for (const auto& h : info.value().holders) out.push_back(h.session_id);
  return out;
}

std::vector<uint64_t> waiter_sessions(const LockStateMachine& sm, const std::string& lock) {
  std::vector<uint64_t> out;
  auto info = sm.describe(lock);
  if (!info.ok()) return out;
  for (const auto& w : info.value().waiters) out.push_back(w.session_id);
  return out;
}

}  // namespace

// --- Sessions ---

TEST_CASE("a session id is the index of its OpenSession entry and the TTL defaults to 10 s",
          "[sm][session]") {
  Driver d;
  d.index = 41;
  ApplyResult r = d.apply(testing::open_cmd(0, "worker-1"));
  REQUIRE(r.status.ok());
  CHECK(r.session_id == 42);
  CHECK(r.ttl_ms == 10'000);
  auto list = d.sm.list_sessions(0, 0, kNoByteLimit);
  REQUIRE(list.sessions.size() == 1);
  CHECK(list.sessions[0].client_name == "worker-1");
}

TEST_CASE("a TTL outside 500 ms..10 min is INVALID_ARGUMENT", "[sm][session]") {
  Driver d;
  CHECK(d.apply(testing::open_cmd(499)).status.code() == Code::kInvalidArgument);
  CHECK(d.apply(testing::open_cmd(600'001)).status.code() == Code::kInvalidArgument);
  CHECK(d.apply(testing::open_cmd(500)).status.ok());
  CHECK(d.apply(testing::open_cmd(600'000)).status.ok());
  CHECK(d.apply(testing::open_cmd(0, std::string(257, 'x'))).status.code() ==
        Code::kInvalidArgument);
  CHECK(d.apply(testing::open_cmd(0, "\xC0\xAF")).status.code() == Code::kInvalidArgument);
  CHECK(d.sm.session_count() == 2);
}

TEST_CASE(
    "closing a session releases its locks, ends its waits and grants the next waiters "
    "in the same step",
    "[sm][session]") {
  Driver d;
  uint64_t a = d.open(), b = d.open(), c = d.open();
  REQUIRE(d.take(a, "x") != 0);
  REQUIRE(d.take(b, "y") != 0);
  REQUIRE(d.wait(b, "x").queued);
  REQUIRE(d.wait(a, "y").queued);
  REQUIRE(d.wait(c, "x").queued);

  ApplyResult r = d.close(a);
  REQUIRE(r.status.ok());
  REQUIRE(r.grants.size() == 1);
  CHECK(r.grants[0].session_id == b);
  CHECK(r.grants[0].sequencer.lock() == "x");
  REQUIRE(r.ended_waits.size() == 1);
  CHECK(r.ended_waits[0].session_id == a);
  CHECK(r.ended_waits[0].lock == "y");
  CHECK(r.ended_waits[0].reason == Code::kSessionExpired);
  CHECK(holder_sessions(d.sm, "x") == std::vector<uint64_t>{b});
  CHECK(waiter_sessions(d.sm, "x") == std::vector<uint64_t>{c});
  CHECK(waiter_sessions(d.sm, "y").empty());
  CHECK(d.sm.session_count() == 2);
  // A request of the ended session finds no session.
  CHECK(d.take(a, "z") == 0);
  CHECK(d.acquire(a, "z").status.code() == Code::kSessionExpired);
}

TEST_CASE("an expired session's waits are never granted (etcd issue 11456)", "[sm][session]") {
  Driver d;
  uint64_t a = d.open(), b = d.open(), c = d.open();
  uint64_t token = d.take(a, "x");
  REQUIRE(d.wait(b, "x").queued);
  REQUIRE(d.wait(c, "x").queued);
  ApplyResult expired = d.apply(testing::expire_cmd(b));
  REQUIRE(expired.status.ok());
  CHECK(expired.grants.empty());
  REQUIRE(expired.ended_waits.size() == 1);
  CHECK(expired.ended_waits[0].reason == Code::kSessionExpired);

  ApplyResult r = d.release(a, "x", token);
  REQUIRE(r.status.ok());
  CHECK(granted_sessions(r) == std::vector<uint64_t>{c});
  CHECK(d.apply(testing::expire_cmd(b)).status.code() == Code::kSessionExpired);
}

TEST_CASE("a session that ends while holding and waiting leaves no trace in any lock",
          "[sm][session]") {
  Driver d;
  uint64_t a = d.open(), b = d.open();
  REQUIRE(d.take(a, "p", shared_args()) != 0);
  REQUIRE(d.take(b, "p", shared_args()) != 0);
  REQUIRE(d.take(b, "q") != 0);
  REQUIRE(d.wait(a, "q").queued);
  REQUIRE(d.apply(testing::expire_cmd(a)).status.ok());
  CHECK(holder_sessions(d.sm, "p") == std::vector<uint64_t>{b});
  CHECK(holder_sessions(d.sm, "q") == std::vector<uint64_t>{b});
  CHECK(waiter_sessions(d.sm, "q").empty());
  CHECK(d.sm.pending_waits().empty());
}

// --- Modes ---

TEST_CASE("an exclusive lock has one holder, and a try-acquire of a held lock is TIMEOUT",
          "[sm][mode]") {
  Driver d;
  uint64_t a = d.open(), b = d.open();
  REQUIRE(d.take(a, "x") != 0);
  ApplyResult r = d.acquire(b, "x");
  CHECK(r.status.code() == Code::kTimeout);
  CHECK_FALSE(r.queued);
  CHECK(d.acquire(b, "x", shared_args()).status.code() == Code::kTimeout);
  CHECK(holder_sessions(d.sm, "x") == std::vector<uint64_t>{a});
}

TEST_CASE("shared holders coexist and exclude an exclusive acquirer", "[sm][mode]") {
  Driver d;
  uint64_t a = d.open(), b = d.open(), c = d.open();
  REQUIRE(d.take(a, "r", shared_args()) != 0);
  REQUIRE(d.take(b, "r", shared_args()) != 0);
  CHECK(d.acquire(c, "r").status.code() == Code::kTimeout);
  CHECK(holder_sessions(d.sm, "r") == std::vector<uint64_t>{a, b});
}

TEST_CASE("a semaphore admits at most max_holders shared holders", "[sm][mode]") {
  Driver d;
  uint64_t s[4] = {d.open(), d.open(), d.open(), d.open()};
  REQUIRE(d.take(s[0], "pool", shared_args(0, 2)) != 0);
  REQUIRE(d.take(s[1], "pool", shared_args()) != 0);
  CHECK(d.acquire(s[2], "pool", shared_args()).status.code() == Code::kTimeout);
  REQUIRE(d.acquire(s[3], "pool", shared_args(1000)).queued);
  CHECK(d.sm.describe("pool").value().max_holders == 2);
  ApplyResult r = d.release(s[0], "pool", d.sm.describe("pool").value().holders[0].token);
  CHECK(granted_sessions(r) == std::vector<uint64_t>{s[3]});
}

TEST_CASE("a max_holders that differs from the existing lock's is FAILED_PRECONDITION",
          "[sm][mode]") {
  Driver d;
  uint64_t a = d.open(), b = d.open();
  REQUIRE(d.take(a, "pool", shared_args(0, 3)) != 0);
  CHECK(d.acquire(b, "pool", shared_args(0, 4)).status.code() == Code::kFailedPrecondition);
  CHECK(d.take(b, "pool", shared_args(0, 3)) != 0);
}

TEST_CASE("a lock's options are set by the Acquire that creates it and vanish with it",
          "[sm][mode]") {
  Driver d;
  uint64_t a = d.open(), b = d.open();
  AcquireArgs first;
  first.mode = lockpb::SHARED;
  first.lock_delay_ms = 1'000;
  first.max_holders = 2;
  uint64_t token = d.take(a, "x", first);
  AcquireArgs later = shared_args();
  later.lock_delay_ms = 9'000;
  REQUIRE(d.take(b, "x", later) != 0);
  auto info = d.sm.describe("x").value();
  CHECK(info.lock_delay_ms == 1'000);
  CHECK(info.max_holders == 2);
  REQUIRE(d.release(a, "x", token).status.ok());
  REQUIRE(d.release(b, "x", info.holders[1].token).status.ok());
  CHECK(d.sm.lock_count() == 0);
  REQUIRE(d.take(a, "x") != 0);
  CHECK(d.sm.describe("x").value().max_holders == 0);
  CHECK(d.sm.describe("x").value().lock_delay_ms == 0);
}

TEST_CASE(
    "re-acquiring a held lock in the same mode returns the existing grant, and in the other "
    "mode it is FAILED_PRECONDITION",
    "[sm][mode]") {
  Driver d;
  uint64_t a = d.open();
  uint64_t token = d.take(a, "x");
  REQUIRE(token != 0);
  ApplyResult again = d.acquire(a, "x");
  REQUIRE(again.granted);
  CHECK(again.granted->token() == token);
  CHECK(d.acquire(a, "x", shared_args()).status.code() == Code::kFailedPrecondition);
  CHECK(d.sm.next_token() == token + 1);
}

TEST_CASE("a second wait for the same lock by one session is FAILED_PRECONDITION", "[sm][mode]") {
  Driver d;
  uint64_t a = d.open(), b = d.open();
  REQUIRE(d.take(a, "x") != 0);
  REQUIRE(d.wait(b, "x").queued);
  CHECK(d.wait(b, "x").status.code() == Code::kFailedPrecondition);
}

// --- FIFO ---

TEST_CASE("a release grants the next waiters in FIFO order in the same step", "[sm][fifo]") {
  Driver d;
  uint64_t w = d.open(), r1 = d.open(), r2 = d.open(), x = d.open(), r3 = d.open();
  uint64_t token = d.take(w, "doc");
  REQUIRE(d.wait(r1, "doc", lockpb::SHARED).queued);
  REQUIRE(d.wait(r2, "doc", lockpb::SHARED).queued);
  REQUIRE(d.wait(x, "doc").queued);
  REQUIRE(d.wait(r3, "doc", lockpb::SHARED).queued);

  ApplyResult r = d.release(w, "doc", token);
  REQUIRE(r.status.ok());
  REQUIRE(granted_sessions(r) == std::vector<uint64_t>{r1, r2});
  CHECK(r.grants[0].sequencer.token() < r.grants[1].sequencer.token());
  CHECK(r.grants[0].sequencer.mode() == lockpb::SHARED);
  CHECK(waiter_sessions(d.sm, "doc") == std::vector<uint64_t>{x, r3});

  d.release(r1, "doc", r.grants[0].sequencer.token());
  ApplyResult r_x = d.release(r2, "doc", r.grants[1].sequencer.token());
  REQUIRE(granted_sessions(r_x) == std::vector<uint64_t>{x});
  ApplyResult r_3 = d.release(x, "doc", r_x.grants[0].sequencer.token());
  CHECK(granted_sessions(r_3) == std::vector<uint64_t>{r3});
}

TEST_CASE("a compatible waiter is not granted while an earlier waiter is blocked (no barging)",
          "[sm][fifo]") {
  Driver d;
  uint64_t r1 = d.open(), x = d.open(), r2 = d.open(), r4 = d.open();
  REQUIRE(d.take(r1, "doc", shared_args()) != 0);
  REQUIRE(d.wait(x, "doc").queued);
  // r2 is compatible with the shared holder but must queue behind x.
  ApplyResult r = d.wait(r2, "doc", lockpb::SHARED);
  CHECK(r.queued);
  CHECK_FALSE(r.granted);
  // A try-acquire does not barge either.
  CHECK(d.acquire(r4, "doc", shared_args()).status.code() == Code::kTimeout);
  CHECK(holder_sessions(d.sm, "doc") == std::vector<uint64_t>{r1});
  CHECK(waiter_sessions(d.sm, "doc") == std::vector<uint64_t>{x, r2});
}

TEST_CASE("a cancelled wait ends with CANCELLED and unblocks the waiters behind it", "[sm][fifo]") {
  Driver d;
  uint64_t r1 = d.open(), x = d.open(), r2 = d.open();
  REQUIRE(d.take(r1, "doc", shared_args()) != 0);
  REQUIRE(d.wait(x, "doc").queued);
  REQUIRE(d.wait(r2, "doc", lockpb::SHARED).queued);
  ApplyResult r = d.cancel(x, "doc");
  REQUIRE(r.status.ok());
  REQUIRE(r.ended_waits.size() == 1);
  CHECK(r.ended_waits[0].session_id == x);
  CHECK(r.ended_waits[0].reason == Code::kCancelled);
  CHECK(granted_sessions(r) == std::vector<uint64_t>{r2});
  CHECK(d.cancel(x, "doc").status.code() == Code::kNotFound);
}

TEST_CASE("a leader CancelWait names the wait, so a late one never ends a newer wait",
          "[sm][fifo]") {
  Driver d;
  uint64_t a = d.open(), b = d.open();
  REQUIRE(d.take(a, "x") != 0);
  uint64_t first_wait = d.wait(b, "x").wait_id;
  REQUIRE(d.cancel(b, "x").status.ok());
  ApplyResult second = d.wait(b, "x");
  REQUIRE(second.queued);
  CHECK(d.apply(testing::cancel_cmd(b, 0, "x", first_wait)).status.code() == Code::kNotFound);
  CHECK(waiter_sessions(d.sm, "x") == std::vector<uint64_t>{b});
  ApplyResult timed_out = d.apply(testing::cancel_cmd(b, 0, "x", second.wait_id));
  REQUIRE(timed_out.status.ok());
  REQUIRE(timed_out.ended_waits.size() == 1);
  CHECK(timed_out.ended_waits[0].reason == Code::kTimeout);
  CHECK(timed_out.ended_waits[0].wait_id == second.wait_id);
}

TEST_CASE("a queued acquire keeps its wait as a duration, for the leader to run from applying it",
          "[sm][fifo]") {
  Driver d;
  uint64_t a = d.open(), b = d.open();
  REQUIRE(d.take(a, "x") != 0);
  AcquireArgs args;
  args.wait_ms = 250;
  ApplyResult r = d.acquire(b, "x", args);
  REQUIRE(r.queued);
  CHECK(r.wait_ms == 250);
  auto waits = d.sm.pending_waits();
  REQUIRE(waits.size() == 1);
  CHECK(waits[0].session_id == b);
  CHECK(waits[0].lock == "x");
  CHECK(waits[0].wait_id == r.wait_id);
  CHECK(waits[0].wait_ms == 250);
  CHECK(d.sm.describe("x").value().waiters[0].wait_ms == 250);
  // A retry while still queued reports the same wait.
  ApplyResult retry = d.apply(testing::acquire_cmd(b, d.sequence[b], "x", args));
  CHECK(retry.queued);
  CHECK(retry.wait_id == r.wait_id);
  CHECK(retry.wait_ms == 250);
}

TEST_CASE("a wait from an earlier leader's Acquire (now_ms set) has no known duration: wait_ms 0",
          "[sm][fifo][compat]") {
  Driver d;
  uint64_t a = d.open(), b = d.open();
  REQUIRE(d.take(a, "x") != 0);
  AcquireArgs args;
  args.wait_ms = 250;
  args.now_ms = 1'000;
  ApplyResult r = d.acquire(b, "x", args);
  REQUIRE(r.queued);
  // That leader kept the deadline in its own clock; a format-1 snapshot
  // holding this wait keeps nothing else, so replay and restore agree on 0:
  // the leader ends the wait at once (TIMEOUT).
  CHECK(r.wait_ms == 0);
  REQUIRE(d.sm.pending_waits().size() == 1);
  CHECK(d.sm.pending_waits()[0].wait_ms == 0);
}

// --- Sequencers ---

TEST_CASE("tokens come from one cluster-wide counter starting at 1 and are never reused",
          "[sm][sequencer]") {
  Driver d;
  uint64_t a = d.open(), b = d.open();
  CHECK(d.sm.next_token() == 1);
  uint64_t t1 = d.take(a, "x");
  uint64_t t2 = d.take(b, "y");
  CHECK(t1 == 1);
  CHECK(t2 == 2);
  REQUIRE(d.release(a, "x", t1).status.ok());
  CHECK(d.take(a, "x") == 3);
}

TEST_CASE("check_sequencer is current only while the grant stands", "[sm][sequencer]") {
  Driver d;
  uint64_t a = d.open(), b = d.open();
  ApplyResult r = d.acquire(a, "x");
  REQUIRE(r.granted);
  lockpb::Sequencer seq = *r.granted;
  CHECK(seq.lock() == "x");
  CHECK(seq.session_id() == a);
  CHECK(d.sm.check_sequencer(seq).current);
  lockpb::Sequencer wrong_mode = seq;
  wrong_mode.set_mode(lockpb::SHARED);
  CHECK_FALSE(d.sm.check_sequencer(wrong_mode).current);
  REQUIRE(d.release(a, "x", seq.token()).status.ok());
  CHECK_FALSE(d.sm.check_sequencer(seq).current);
  REQUIRE(d.take(b, "x") != 0);
  CHECK_FALSE(d.sm.check_sequencer(seq).current);
}

// --- Lock-delay ---

TEST_CASE(
    "an expired holder's lock is granted to no one until the EndLockDelay that names its delay",
    "[sm][delay]") {
  Driver d;
  uint64_t a = d.open(), b = d.open(), c = d.open();
  AcquireArgs args;
  args.lock_delay_ms = 5'000;
  REQUIRE(d.take(a, "x", args) != 0);
  REQUIRE(d.wait(b, "x").queued);
  ApplyResult expired = d.apply(testing::expire_cmd(a));
  const uint64_t delay_id = d.index;
  REQUIRE(expired.status.ok());
  CHECK(expired.grants.empty());
  // A duration and the delay's id, never a time: the leader runs the delay
  // on its own steady clock from when it applies this entry.
  REQUIRE(expired.lock_delays_started.size() == 1);
  CHECK(expired.lock_delays_started[0].lock == "x");
  CHECK(expired.lock_delays_started[0].delay_ms == 5'000);
  CHECK(expired.lock_delays_started[0].delay_id == delay_id);
  CHECK(d.sm.describe("x").value().in_lock_delay);
  CHECK(d.sm.describe("x").value().lock_delay_id == delay_id);
  CHECK(d.acquire(c, "x").status.code() == Code::kTimeout);
  REQUIRE(d.sm.lock_delays().size() == 1);
  CHECK(d.sm.lock_delays()[0].lock == "x");
  CHECK(d.sm.lock_delays()[0].delay_ms == 5'000);
  CHECK(d.sm.lock_delays()[0].delay_id == delay_id);

  // Another delay's EndLockDelay (a stale timer) changes nothing.
  ApplyResult stale = d.apply(testing::end_delay_cmd("x", delay_id + 1));
  CHECK(stale.status.ok());
  CHECK(stale.grants.empty());
  CHECK(d.sm.describe("x").value().in_lock_delay);
  ApplyResult ended = d.apply(testing::end_delay_cmd("x", delay_id));
  REQUIRE(ended.status.ok());
  CHECK(granted_sessions(ended) == std::vector<uint64_t>{b});
  CHECK(d.sm.lock_delays().empty());
}

TEST_CASE("a lock in lock-delay with nobody waiting exists until the delay ends", "[sm][delay]") {
  Driver d;
  uint64_t a = d.open(), b = d.open();
  AcquireArgs args;
  args.lock_delay_ms = 1'000;
  REQUIRE(d.take(a, "x", args) != 0);
  REQUIRE(d.apply(testing::expire_cmd(a)).status.ok());
  const uint64_t delay_id = d.index;
  REQUIRE(d.sm.describe("x").ok());
  REQUIRE(d.wait(b, "x").queued);
  REQUIRE(d.apply(testing::end_delay_cmd("x", delay_id)).status.ok());
  CHECK(holder_sessions(d.sm, "x") == std::vector<uint64_t>{b});
  REQUIRE(d.close(b).status.ok());
  CHECK(d.sm.lock_count() == 0);
  // The timer of a delay whose lock is gone is stale too: a no-op.
  CHECK(d.apply(testing::end_delay_cmd("x", delay_id)).status.ok());
  CHECK(d.apply(testing::end_delay_cmd("", delay_id)).status.ok());
  CHECK(d.sm.lock_count() == 0);
}

TEST_CASE(
    "a second holder's expiry restarts the lock-delay in full under a new id, so the first "
    "delay's EndLockDelay no longer ends it",
    "[sm][delay]") {
  Driver d;
  uint64_t a = d.open(), b = d.open(), c = d.open();
  AcquireArgs args = shared_args();
  args.lock_delay_ms = 2'000;
  REQUIRE(d.take(a, "x", args) != 0);
  REQUIRE(d.take(b, "x", args) != 0);
  REQUIRE(d.wait(c, "x").queued);
  REQUIRE(d.apply(testing::expire_cmd(a)).lock_delays_started.size() == 1);
  const uint64_t first = d.index;
  ApplyResult second = d.apply(testing::expire_cmd(b));
  REQUIRE(second.lock_delays_started.size() == 1);
  CHECK(second.lock_delays_started[0].delay_ms == 2'000);
  CHECK(second.lock_delays_started[0].delay_id == d.index);
  const uint64_t restarted = d.index;
  REQUIRE(d.sm.lock_delays().size() == 1);
  CHECK(d.sm.lock_delays()[0].delay_id == restarted);

  ApplyResult early = d.apply(testing::end_delay_cmd("x", first));
  CHECK(early.status.ok());
  CHECK(early.grants.empty());
  CHECK(d.sm.describe("x").value().in_lock_delay);
  CHECK(granted_sessions(d.apply(testing::end_delay_cmd("x", restarted))) ==
        std::vector<uint64_t>{c});
}

TEST_CASE(
    "a lock-delay started by an earlier leader's entry (now_ms set) has id 0 and ends with "
    "an EndLockDelay of id 0, its own leader's included",
    "[sm][delay][compat]") {
  Driver d;
  uint64_t a = d.open(), b = d.open(), c = d.open();
  AcquireArgs args;
  args.lock_delay_ms = 2'000;
  REQUIRE(d.take(a, "x", args) != 0);
  REQUIRE(d.take(b, "y", args) != 0);
  REQUIRE(d.wait(c, "x").queued);
  ApplyResult expired = d.apply(testing::expire_cmd(a, 500));
  REQUIRE(expired.lock_delays_started.size() == 1);
  CHECK(expired.lock_delays_started[0].delay_ms == 2'000);
  CHECK(expired.lock_delays_started[0].delay_id == 0);
  CHECK(d.sm.describe("x").value().in_lock_delay);
  CHECK(d.apply(testing::end_delay_cmd("x", d.index)).grants.empty());
  // The EndLockDelay that leader wrote: {lock "x", until_ms 2500}.
  const std::string earlier_end("\x3a\x06\x0a\x01x\x10\xc4\x13", 8);
  ApplyResult ended = d.sm.apply(++d.index, earlier_end);
  REQUIRE(ended.status.ok());
  CHECK(granted_sessions(ended) == std::vector<uint64_t>{c});

  // Such an entry never ends a delay of the current kind.
  REQUIRE(d.apply(testing::expire_cmd(b)).lock_delays_started.size() == 1);
  const std::string earlier_end_y("\x3a\x06\x0a\x01y\x10\xc4\x13", 8);
  CHECK(d.sm.apply(++d.index, earlier_end_y).status.ok());
  CHECK(d.sm.describe("y").value().in_lock_delay);
}

TEST_CASE("a lock-delay above 60 s is INVALID_ARGUMENT", "[sm][delay]") {
  Driver d;
  uint64_t a = d.open();
  AcquireArgs args;
  args.lock_delay_ms = 60'001;
  CHECK(d.acquire(a, "x", args).status.code() == Code::kInvalidArgument);
  args.lock_delay_ms = 60'000;
  CHECK(d.take(a, "x", args) != 0);
}

TEST_CASE("a clean close or release starts no lock-delay", "[sm][delay]") {
  Driver d;
  uint64_t a = d.open(), b = d.open();
  AcquireArgs args;
  args.lock_delay_ms = 5'000;
  REQUIRE(d.take(a, "x", args) != 0);
  REQUIRE(d.wait(b, "x").queued);
  ApplyResult r = d.close(a);
  CHECK(r.lock_delays_started.empty());
  CHECK(granted_sessions(r) == std::vector<uint64_t>{b});
}

TEST_CASE("ForceRelease releases every holder, starts the lock-delay and then grants",
          "[sm][delay]") {
  Driver d;
  uint64_t a = d.open(), b = d.open(), c = d.open();
  REQUIRE(d.take(a, "x", shared_args()) != 0);
  REQUIRE(d.take(b, "x", shared_args()) != 0);
  REQUIRE(d.wait(c, "x").queued);
  ApplyResult r = d.apply(testing::force_cmd("x"));
  REQUIRE(r.status.ok());
  CHECK(granted_sessions(r) == std::vector<uint64_t>{c});
  CHECK(d.sm.list_sessions(0, 0, kNoByteLimit).sessions[0].held_locks == 0);

  AcquireArgs delayed;
  delayed.lock_delay_ms = 2'000;
  REQUIRE(d.take(a, "y", delayed) != 0);
  REQUIRE(d.wait(b, "y").queued);
  ApplyResult forced = d.apply(testing::force_cmd("y"));
  CHECK(forced.grants.empty());
  REQUIRE(forced.lock_delays_started.size() == 1);
  CHECK(forced.lock_delays_started[0].lock == "y");
  CHECK(forced.lock_delays_started[0].delay_ms == 2'000);
  CHECK(forced.lock_delays_started[0].delay_id == d.index);
  CHECK(d.apply(testing::force_cmd("nope")).status.code() == Code::kNotFound);
}

// --- Released holders (ApplyResult::released) ---

TEST_CASE("a Release reports its holder as released, before the grant it makes room for",
          "[sm][released]") {
  Driver d;
  uint64_t a = d.open(), b = d.open();
  const uint64_t token = d.take(a, "x");
  REQUIRE(token != 0);
  REQUIRE(d.wait(b, "x").queued);
  ApplyResult r = d.release(a, "x", token);
  REQUIRE(r.status.ok());
  CHECK(r.released == std::vector<Released>{{"x", a, token, ReleaseReason::kReleased}});
  CHECK(granted_sessions(r) == std::vector<uint64_t>{b});
  // A wrong token releases nothing.
  CHECK(d.release(b, "x", token).released.empty());
  // Neither do acquires, grants and cancelled waits.
  uint64_t c = d.open();
  ApplyResult queued = d.wait(c, "x");
  REQUIRE(queued.queued);
  CHECK(queued.released.empty());
  CHECK(d.cancel(c, "x").released.empty());
}

TEST_CASE("closing a session reports every lock it held as closed, in name order, and not its "
          "waits",
          "[sm][released]") {
  Driver d;
  uint64_t a = d.open(), b = d.open();
  const uint64_t tz = d.take(a, "z");
  const uint64_t ty = d.take(a, "y", shared_args());
  REQUIRE(d.take(b, "w") != 0);
  REQUIRE(d.wait(a, "w").queued);
  ApplyResult r = d.close(a);
  REQUIRE(r.status.ok());
  CHECK(r.released == std::vector<Released>{{"y", a, ty, ReleaseReason::kSessionClosed},
                                            {"z", a, tz, ReleaseReason::kSessionClosed}});
  CHECK(r.ended_waits.size() == 1);
}

TEST_CASE("an expired session's holds are reported as expired", "[sm][released]") {
  Driver d;
  uint64_t a = d.open(), b = d.open();
  AcquireArgs delayed;
  delayed.lock_delay_ms = 1'000;
  const uint64_t token = d.take(a, "x", delayed);
  REQUIRE(token != 0);
  REQUIRE(d.take(b, "x", shared_args()) == 0);
  ApplyResult r = d.apply(testing::expire_cmd(a));
  REQUIRE(r.status.ok());
  CHECK(r.released == std::vector<Released>{{"x", a, token, ReleaseReason::kSessionExpired}});
  CHECK(r.lock_delays_started.size() == 1);
  CHECK(d.apply(testing::expire_cmd(a)).released.empty());
}

TEST_CASE("ForceRelease reports every holder as force-released, in grant order", "[sm][released]") {
  Driver d;
  uint64_t a = d.open(), b = d.open(), c = d.open();
  const uint64_t ta = d.take(a, "x", shared_args());
  const uint64_t tb = d.take(b, "x", shared_args());
  REQUIRE(d.wait(c, "x").queued);
  ApplyResult r = d.apply(testing::force_cmd("x"));
  REQUIRE(r.status.ok());
  CHECK(r.released == std::vector<Released>{{"x", a, ta, ReleaseReason::kForceReleased},
                                            {"x", b, tb, ReleaseReason::kForceReleased}});
  REQUIRE(r.grants.size() == 1);
  // A lock that only has waiters releases nobody.
  uint64_t e = d.open();
  REQUIRE(d.wait(e, "x").queued);
  CHECK(d.apply(testing::force_cmd("x")).released.size() == 1);
}

TEST_CASE("a retried Release or CloseSession releases nothing again", "[sm][released]") {
  Driver d;
  uint64_t a = d.open();
  const uint64_t token = d.take(a, "x");
  REQUIRE(d.take(a, "y") != 0);
  const uint64_t release_seq = ++d.sequence[a];
  ApplyResult first = d.apply(testing::release_cmd(a, release_seq, "x", token));
  REQUIRE(first.released.size() == 1);
  ApplyResult retry = d.apply(testing::release_cmd(a, release_seq, "x", token));
  REQUIRE(retry.duplicate);
  CHECK(retry.status.ok());
  CHECK(retry.released.empty());
  // Nor does a stale one, once a later request has applied.
  REQUIRE(d.take(a, "z") != 0);
  ApplyResult stale = d.apply(testing::release_cmd(a, release_seq, "x", token));
  CHECK(stale.status.code() == Code::kStaleSequence);
  CHECK(stale.released.empty());
  const uint64_t close_seq = ++d.sequence[a];
  ApplyResult closed = d.apply(testing::close_cmd(a, close_seq));
  REQUIRE(closed.released.size() == 2);
  CHECK(d.apply(testing::close_cmd(a, close_seq)).released.empty());
}

// --- Exactly-once ---

TEST_CASE("a retried request returns the recorded result without applying again",
          "[sm][exactly-once]") {
  Driver d;
  uint64_t a = d.open(), b = d.open();
  ApplyResult first = d.apply(testing::acquire_cmd(a, 7, "x"));
  REQUIRE(first.granted);
  ApplyResult retry = d.apply(testing::acquire_cmd(a, 7, "x"));
  CHECK(retry.duplicate);
  REQUIRE(retry.granted);
  CHECK(retry.granted->token() == first.granted->token());
  CHECK(d.sm.next_token() == first.granted->token() + 1);

  ApplyResult busy = d.apply(testing::acquire_cmd(b, 1, "x"));
  CHECK(busy.status.code() == Code::kTimeout);
  CHECK(d.apply(testing::acquire_cmd(b, 1, "x")).status.code() == Code::kTimeout);

  ApplyResult released = d.apply(testing::release_cmd(a, 8, "x", first.granted->token()));
  REQUIRE(released.status.ok());
  ApplyResult released_again = d.apply(testing::release_cmd(a, 8, "x", first.granted->token()));
  CHECK(released_again.status.ok());
  CHECK(released_again.duplicate);
  // A sequence number reused for another kind of request is rejected.
  CHECK(d.apply(testing::acquire_cmd(a, 8, "x")).status.code() == Code::kInvalidArgument);
}

TEST_CASE(
    "an Acquire reusing a sequence number for another lock or mode is INVALID_ARGUMENT, not "
    "the first grant",
    "[sm][exactly-once]") {
  Driver d;
  uint64_t a = d.open();
  ApplyResult first = d.apply(testing::acquire_cmd(a, 1, "x"));
  REQUIRE(first.granted);
  const uint64_t next_token = d.sm.next_token();

  ApplyResult other_lock = d.apply(testing::acquire_cmd(a, 1, "y"));
  CHECK(other_lock.status.code() == Code::kInvalidArgument);
  CHECK(other_lock.status.message() == "sequence number 1 was used for a different request");
  CHECK_FALSE(other_lock.granted);
  CHECK_FALSE(other_lock.duplicate);
  CHECK_FALSE(d.sm.describe("y").ok());

  ApplyResult other_mode = d.apply(testing::acquire_cmd(a, 1, "x", shared_args()));
  CHECK(other_mode.status.code() == Code::kInvalidArgument);
  CHECK_FALSE(other_mode.granted);

  // The same request is still a retry, answered with the first grant.
  ApplyResult retry = d.apply(testing::acquire_cmd(a, 1, "x"));
  CHECK(retry.duplicate);
  REQUIRE(retry.granted);
  CHECK(retry.granted->token() == first.granted->token());
  CHECK(d.sm.next_token() == next_token);
}

TEST_CASE(
    "a Release or CancelWait reusing a sequence number for another lock, token or wait is "
    "INVALID_ARGUMENT",
    "[sm][exactly-once]") {
  Driver d;
  uint64_t a = d.open(), b = d.open();
  uint64_t x = d.take(a, "x");
  uint64_t y = d.take(a, "y");
  REQUIRE(d.apply(testing::release_cmd(a, 3, "x", x)).status.ok());
  ApplyResult other_lock = d.apply(testing::release_cmd(a, 3, "y", y));
  CHECK(other_lock.status.code() == Code::kInvalidArgument);
  CHECK(other_lock.status.message() == "sequence number 3 was used for a different request");
  CHECK(holder_sessions(d.sm, "y") == std::vector<uint64_t>{a});
  CHECK(d.apply(testing::release_cmd(a, 3, "x", x + 7)).status.code() == Code::kInvalidArgument);
  ApplyResult retry = d.apply(testing::release_cmd(a, 3, "x", x));
  CHECK(retry.status.ok());
  CHECK(retry.duplicate);

  REQUIRE(d.wait(b, "y").queued);
  CHECK(d.apply(testing::cancel_cmd(b, 5, "nope")).status.code() == Code::kNotFound);
  ApplyResult other_wait = d.apply(testing::cancel_cmd(b, 5, "y"));
  CHECK(other_wait.status.code() == Code::kInvalidArgument);
  CHECK(other_wait.ended_waits.empty());
  CHECK(waiter_sessions(d.sm, "y") == std::vector<uint64_t>{b});
  CHECK(d.apply(testing::cancel_cmd(b, 5, "nope")).status.code() == Code::kNotFound);
  // Another kind of request says the same.
  CHECK(d.apply(testing::acquire_cmd(b, 5, "nope")).status.message() ==
        "sequence number 5 was used for a different request");
}

TEST_CASE("what a session's last request asked survives a snapshot", "[sm][exactly-once]") {
  Driver d;
  uint64_t a = d.open();
  REQUIRE(d.apply(testing::acquire_cmd(a, 4, "x")).granted);
  LockStateMachine copy;
  REQUIRE(copy.restore(d.sm.snapshot()).ok());
  CHECK(copy.apply(d.index + 1, testing::acquire_cmd(a, 4, "y")).status.code() ==
        Code::kInvalidArgument);
  CHECK(copy.apply(d.index + 2, testing::acquire_cmd(a, 4, "x")).granted);
}

TEST_CASE("an older sequence number is STALE_SEQUENCE", "[sm][exactly-once]") {
  Driver d;
  uint64_t a = d.open();
  REQUIRE(d.apply(testing::acquire_cmd(a, 5, "x")).granted);
  CHECK(d.apply(testing::acquire_cmd(a, 4, "y")).status.code() == Code::kStaleSequence);
  CHECK(d.apply(testing::acquire_cmd(a, 0, "y")).status.code() == Code::kInvalidArgument);
  CHECK_FALSE(d.sm.describe("y").ok());
}

TEST_CASE("a retried Acquire that queued answers with the grant it later received",
          "[sm][exactly-once]") {
  Driver d;
  uint64_t a = d.open(), b = d.open();
  uint64_t token = d.take(a, "x");
  AcquireArgs args;
  args.wait_ms = 1000;
  REQUIRE(d.apply(testing::acquire_cmd(b, 3, "x", args)).queued);
  ApplyResult still = d.apply(testing::acquire_cmd(b, 3, "x", args));
  CHECK(still.queued);
  REQUIRE(d.release(a, "x", token).grants.size() == 1);
  ApplyResult retry = d.apply(testing::acquire_cmd(b, 3, "x", args));
  REQUIRE(retry.granted);
  CHECK(retry.granted->token() == token + 1);
}

// --- Validation and limits ---

TEST_CASE("lock names are non-empty UTF-8 of at most 512 bytes without NUL", "[sm][validation]") {
  CHECK(validate_lock_name("jobs/nightly").ok());
  CHECK(validate_lock_name("verrou/\xC3\xA9t\xC3\xA9/\xF0\x9F\x94\x92").ok());
  CHECK(validate_lock_name(std::string(512, 'a')).ok());
  CHECK_FALSE(validate_lock_name("").ok());
  CHECK_FALSE(validate_lock_name(std::string(513, 'a')).ok());
  CHECK_FALSE(validate_lock_name(std::string("a\0b", 3)).ok());
  CHECK_FALSE(validate_lock_name("\xC0\xAF").ok());          // overlong '/'
  CHECK_FALSE(validate_lock_name("\xE0\x80\xAF").ok());      // overlong
  CHECK_FALSE(validate_lock_name("\xED\xA0\x80").ok());      // surrogate U+D800
  CHECK_FALSE(validate_lock_name("\xF4\x90\x80\x80").ok());  // above U+10FFFF
  CHECK_FALSE(validate_lock_name("\xE2\x82").ok());          // truncated
  CHECK_FALSE(validate_lock_name("\x80").ok());              // lone continuation
  CHECK_FALSE(validate_lock_name("\xFF").ok());

  Driver d;
  uint64_t a = d.open();
  CHECK(d.acquire(a, "").status.code() == Code::kInvalidArgument);
  CHECK(d.acquire(a, "\xED\xA0\x80").status.code() == Code::kInvalidArgument);
  CHECK(d.sm.lock_count() == 0);
}

TEST_CASE("a value of at most 1 KiB is stored with the grant", "[sm][validation]") {
  Driver d;
  uint64_t a = d.open(), b = d.open();
  AcquireArgs args;
  args.value = std::string(1025, 'v');
  CHECK(d.acquire(a, "leader", args).status.code() == Code::kInvalidArgument);
  args.value = "10.0.0.7:9000";
  REQUIRE(d.take(a, "leader", args) != 0);
  CHECK(d.sm.describe("leader").value().holders[0].value == "10.0.0.7:9000");
  args.value = "10.0.0.8:9000";
  args.wait_ms = 1000;
  REQUIRE(d.acquire(b, "leader", args).queued);
  REQUIRE(d.close(a).grants.size() == 1);
  CHECK(d.sm.describe("leader").value().holders[0].value == "10.0.0.8:9000");
}

TEST_CASE("an unknown lock mode is INVALID_ARGUMENT", "[sm][validation]") {
  Driver d;
  uint64_t a = d.open();
  lockpb::Command c = testing::acquire_cmd(a, 1, "x");
  c.mutable_acquire()->set_mode(static_cast<lockpb::LockMode>(7));
  CHECK(d.apply(c).status.code() == Code::kInvalidArgument);
  CHECK(d.sm.lock_count() == 0);
}

TEST_CASE(
    "releasing a lock you do not hold is LOCK_NOT_HELD; an unknown session is "
    "SESSION_EXPIRED",
    "[sm][validation]") {
  Driver d;
  uint64_t a = d.open(), b = d.open();
  uint64_t token = d.take(a, "x");
  CHECK(d.release(b, "x", token).status.code() == Code::kLockNotHeld);
  CHECK(d.release(a, "x", token + 1).status.code() == Code::kLockNotHeld);
  CHECK(d.release(a, "nope", token).status.code() == Code::kLockNotHeld);
  CHECK(d.release(999, "x", token).status.code() == Code::kSessionExpired);
  CHECK(d.acquire(999, "x").status.code() == Code::kSessionExpired);
  CHECK(d.close(999).status.code() == Code::kSessionExpired);
  CHECK(holder_sessions(d.sm, "x") == std::vector<uint64_t>{a});
}

TEST_CASE("limits on sessions, locks and waiters are RESOURCE_EXHAUSTED", "[sm][validation]") {
  Limits limits;
  limits.max_sessions = 3;
  limits.max_locks = 2;
  limits.max_waiters_per_lock = 1;
  limits.max_locks_per_session = 2;
  Driver d(limits);
  uint64_t a = d.open(), b = d.open(), c = d.open();
  CHECK(d.apply(testing::open_cmd()).status.code() == Code::kResourceExhausted);
  REQUIRE(d.take(a, "x") != 0);
  REQUIRE(d.take(a, "y") != 0);
  CHECK(d.acquire(b, "z").status.code() == Code::kResourceExhausted);
  CHECK(d.acquire(a, "z").status.code() == Code::kResourceExhausted);
  REQUIRE(d.wait(b, "x").queued);
  CHECK(d.wait(c, "x").status.code() == Code::kResourceExhausted);
  CHECK(d.sm.lock_count() == 2);
}

TEST_CASE("an empty command or garbage entry bytes are INVALID_ARGUMENT", "[sm][validation]") {
  Driver d;
  CHECK(d.apply(lockpb::Command()).status.code() == Code::kInvalidArgument);
  CHECK(d.sm.apply(++d.index, std::string_view("\xFF\xFF\xFF\x01", 4)).status.code() ==
        Code::kInvalidArgument);
  CHECK(d.sm.applied_index() == d.index);
  std::string bytes = testing::open_cmd().SerializeAsString();
  ApplyResult r = d.sm.apply(++d.index, bytes);
  CHECK(r.status.ok());
  CHECK(r.session_id == d.index);
}

// --- Reads ---

TEST_CASE("list_locks pages through a prefix in name order", "[sm][read]") {
  Driver d;
  uint64_t a = d.open();
  for (const char* name : {"jobs/c", "jobs/a", "other", "jobs/b", "jobs", "jobt"}) {
    REQUIRE(d.take(a, name) != 0);
  }
  auto page1 = d.sm.list_locks("jobs/", "", 2, kNoByteLimit);
  REQUIRE(page1.locks.size() == 2);
  CHECK(page1.locks[0].name == "jobs/a");
  CHECK(page1.locks[1].name == "jobs/b");
  CHECK(page1.next_start_after == "jobs/b");
  auto page2 = d.sm.list_locks("jobs/", page1.next_start_after, 2, kNoByteLimit);
  REQUIRE(page2.locks.size() == 1);
  CHECK(page2.locks[0].name == "jobs/c");
  CHECK(page2.next_start_after.empty());
  CHECK(d.sm.list_locks("", "", 0, kNoByteLimit).locks.size() == 6);
}

TEST_CASE("list_sessions pages by id and counts held and waited locks", "[sm][read]") {
  Driver d;
  uint64_t a = d.open(1000), b = d.open(), c = d.open();
  REQUIRE(d.take(a, "x") != 0);
  REQUIRE(d.take(a, "y") != 0);
  REQUIRE(d.wait(b, "x").queued);
  auto page1 = d.sm.list_sessions(0, 2, kNoByteLimit);
  REQUIRE(page1.sessions.size() == 2);
  CHECK(page1.sessions[0].session_id == a);
  CHECK(page1.sessions[0].ttl_ms == 1000);
  CHECK(page1.sessions[0].held_locks == 2);
  CHECK(page1.sessions[1].waiting_locks == 1);
  CHECK(page1.next_start_after == b);
  auto page2 = d.sm.list_sessions(page1.next_start_after, 2, kNoByteLimit);
  REQUIRE(page2.sessions.size() == 1);
  CHECK(page2.sessions[0].session_id == c);
  CHECK(page2.next_start_after == 0);
  auto ttls = d.sm.sessions();
  REQUIRE(ttls.size() == 3);
  CHECK(ttls[0].session_id == a);
  CHECK(ttls[0].ttl_ms == 1000);
}

TEST_CASE(
    "list_locks ends a page before its encoded size could exceed max_bytes, and the next page "
    "starts after its last lock",
    "[sm][read]") {
  Driver d;
  uint64_t a = d.open(), b = d.open();
  std::vector<std::string> names;
  for (int i = 0; i < 12; ++i) {
    AcquireArgs args = shared_args();
    args.value = std::string(static_cast<size_t>(40 * (i % 5)), 'v');
    names.push_back("locks/" + std::string(static_cast<size_t>(i + 1), 'n'));
    REQUIRE(d.take(a, names.back(), args) != 0);
    REQUIRE(d.take(b, names.back(), args) != 0);
  }
  const size_t kBudget = 900;
  std::vector<std::string> seen;
  std::string after;
  int pages = 0;
  do {
    LockPage page = d.sm.list_locks("locks/", after, 0, kBudget);
    REQUIRE_FALSE(page.locks.empty());
    CHECK(encoded_bytes_bound(page) <= kBudget);
    for (const LockView& lock : page.locks) seen.push_back(lock.name);
    if (!page.next_start_after.empty()) CHECK(page.next_start_after == page.locks.back().name);
    after = page.next_start_after;
    ++pages;
  } while (!after.empty());
  std::sort(names.begin(), names.end());
  CHECK(seen == names);
  CHECK(pages > 2);
}

TEST_CASE("a lock larger than max_bytes comes alone on its page, so paging goes on", "[sm][read]") {
  Driver d;
  uint64_t a = d.open();
  for (const char* name : {"a", "b", "c"}) REQUIRE(d.take(a, name) != 0);
  LockPage first = d.sm.list_locks("", "", 0, 1);
  REQUIRE(first.locks.size() == 1);
  CHECK(first.locks[0].name == "a");
  CHECK(first.next_start_after == "a");
  CHECK(encoded_bytes_bound(first) > 1);
  LockPage last = d.sm.list_locks("", "b", 0, 1);
  REQUIRE(last.locks.size() == 1);
  CHECK(last.locks[0].name == "c");
  CHECK(last.next_start_after.empty());
}

TEST_CASE("list_sessions ends a page before its encoded size could exceed max_bytes",
          "[sm][read]") {
  Driver d;
  std::vector<uint64_t> ids;
  for (int i = 0; i < 9; ++i) {
    ids.push_back(
        d.apply(testing::open_cmd(0, std::string(static_cast<size_t>(30 * i), 'c'))).session_id);
  }
  const size_t kBudget = 400;
  std::vector<uint64_t> seen;
  uint64_t after = 0;
  int pages = 0;
  do {
    SessionPage page = d.sm.list_sessions(after, 0, kBudget);
    REQUIRE_FALSE(page.sessions.empty());
    CHECK(encoded_bytes_bound(page) <= kBudget);
    for (const SessionView& session : page.sessions) seen.push_back(session.session_id);
    if (page.next_start_after != 0) CHECK(page.next_start_after == page.sessions.back().session_id);
    after = page.next_start_after;
    ++pages;
  } while (after != 0);
  CHECK(seen == ids);
  CHECK(pages > 2);
  // One session larger than the budget still comes, alone.
  CHECK(d.sm.list_sessions(0, 0, 1).sessions.size() == 1);
}

TEST_CASE("describe shows holders and waiters in grant order", "[sm][read]") {
  Driver d;
  uint64_t a = d.open(), b = d.open(), c = d.open();
  REQUIRE(d.take(a, "x", shared_args()) != 0);
  REQUIRE(d.wait(b, "x").queued);
  REQUIRE(d.wait(c, "x", lockpb::SHARED).queued);
  auto info = d.sm.describe("x");
  REQUIRE(info.ok());
  CHECK(info.value().holders[0].mode == lockpb::SHARED);
  CHECK(info.value().waiters[0].mode == lockpb::EXCLUSIVE);
  CHECK(info.value().waiters[1].session_id == c);
  CHECK(d.sm.describe("nope").code() == Code::kNotFound);
  CHECK(d.sm.describe("").code() == Code::kInvalidArgument);
}

// --- Snapshots ---

TEST_CASE("a snapshot restores the exact state, applied index and token counter",
          "[sm][snapshot]") {
  Driver d;
  uint64_t a = d.open(), b = d.open(), c = d.open(2000);
  AcquireArgs args;
  args.lock_delay_ms = 3000;
  args.value = "payload";
  REQUIRE(d.take(a, "x", args) != 0);
  REQUIRE(d.wait(b, "x").queued);
  REQUIRE(d.take(c, "y", shared_args(0, 2)) != 0);
  REQUIRE(d.apply(testing::expire_cmd(a)).status.ok());

  std::string bytes = d.sm.snapshot();
  LockStateMachine copy;
  REQUIRE(copy.restore(bytes).ok());
  CHECK(copy.snapshot() == bytes);
  CHECK(copy.applied_index() == d.sm.applied_index());
  CHECK(copy.next_token() == d.sm.next_token());
  CHECK(copy.describe("x").value() == d.sm.describe("x").value());

  // The same next command gives the same result on both.
  const uint64_t delay_id = d.sm.lock_delays().at(0).delay_id;
  ApplyResult r1 = d.sm.apply(d.index + 1, testing::end_delay_cmd("x", delay_id));
  ApplyResult r2 = copy.apply(d.index + 1, testing::end_delay_cmd("x", delay_id));
  REQUIRE(r1.grants.size() == 1);
  REQUIRE(r2.grants.size() == 1);
  CHECK(r1.grants[0].sequencer.SerializeAsString() == r2.grants[0].sequencer.SerializeAsString());
  CHECK(copy.snapshot() == d.sm.snapshot());
}

TEST_CASE("a damaged or truncated snapshot is an error and leaves the state unchanged",
          "[sm][snapshot]") {
  Driver d;
  uint64_t a = d.open(), b = d.open();
  REQUIRE(d.take(a, "x") != 0);
  REQUIRE(d.wait(b, "x").queued);
  std::string good = d.sm.snapshot();

  Driver other;
  uint64_t o = other.open();
  REQUIRE(other.take(o, "mine") != 0);
  const std::string before = other.sm.snapshot();

  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x20);
    CHECK_FALSE(other.sm.restore(bad).ok());
  }
  for (size_t n = 0; n < good.size(); ++n) {
    CHECK_FALSE(other.sm.restore(std::string_view(good).substr(0, n)).ok());
  }
  CHECK_FALSE(other.sm.restore(good + "x").ok());
  CHECK(other.sm.snapshot() == before);
  REQUIRE(other.sm.restore(good).ok());
  CHECK(other.sm.snapshot() == good);
}

namespace {

// A hand-made snapshot: two sessions sharing lock "x" (tokens 1 and
// second_token), checksum correct, in format 1, 2, 3 or the current format
// 4 (whose sessions belong to principal "p<id>").
struct Crafted {
  uint32_t format = 4;
  uint64_t second_token = 2;
  uint8_t second_mode = lockpb::SHARED;
  uint8_t last_code = 0;  // of both sessions, as the format stores it
  uint8_t in_delay = 0;   // of "x"
  uint64_t delay = 0;     // format 2: the delay id; format 1: its end time

  std::string bytes() const {
    detail::SnapshotWriter w;
    w.put_u32(0x4D534C46);
    w.put_u32(format);
    w.put_u64(10);  // applied_index
    w.put_u64(5);   // next_token
    if (format >= 3) w.put_u64(0);  // token_epoch
    w.put_u64(2);
    for (uint64_t id : {1, 2}) {
      w.put_u64(id);
      w.put_u32(10'000);
      w.put_u64(0);
      w.put_u8(0);
      w.put_u8(last_code);
      w.put_u8(0);
      w.put_u64(0);
      if (format >= 2) w.put_u64(0);  // last_request
      w.put_bytes("c");
      if (format >= 4) w.put_bytes("p" + std::to_string(id));
    }
    w.put_u64(1);
    w.put_bytes("x");
    w.put_u32(0);
    w.put_u32(1'000);  // lock_delay_ms
    w.put_u8(in_delay);
    w.put_u64(delay);
    w.put_u32(2);
    w.put_u64(1);
    w.put_u64(1);
    w.put_u8(lockpb::SHARED);
    w.put_bytes("");
    w.put_u64(2);
    w.put_u64(second_token);
    w.put_u8(second_mode);
    w.put_bytes("");
    w.put_u32(0);
    return std::move(w).finish();
  }
};

}  // namespace

TEST_CASE("a snapshot with a valid checksum but a broken invariant is refused", "[sm][snapshot]") {
  for (uint32_t format : {1, 2, 3, 4}) {
    INFO("format " << format);
    Crafted good{.format = format};
    LockStateMachine sm;
    REQUIRE(sm.restore(good.bytes()).ok());
    CHECK(sm.describe("x").value().holders.size() == 2);
    const std::string before = sm.snapshot();
    Crafted bad = good;
    bad.second_mode = lockpb::EXCLUSIVE;  // exclusive + shared
    CHECK_FALSE(sm.restore(bad.bytes()).ok());
    bad = good;
    bad.second_token = 1;  // token reused
    CHECK_FALSE(sm.restore(bad.bytes()).ok());
    bad.second_token = 7;  // token not yet issued
    CHECK_FALSE(sm.restore(bad.bytes()).ok());
    bad = good;
    bad.second_mode = 9;  // unknown mode
    CHECK_FALSE(sm.restore(bad.bytes()).ok());
    CHECK(sm.snapshot() == before);
  }
}

TEST_CASE(
    "a session's last result is an sm::Code number in format 2 and a wire ErrorCode number in "
    "format 1",
    "[sm][snapshot]") {
  // 9 is kStaleSequence now; 14 was STALE_SEQUENCE in format 1.
  LockStateMachine current, format1;
  REQUIRE(current.restore(Crafted{.format = 2, .last_code = 9}.bytes()).ok());
  REQUIRE(format1.restore(Crafted{.format = 1, .last_code = 14}.bytes()).ok());
  CHECK(format1.snapshot() == current.snapshot());
  LockStateMachine sm;
  // Numbers that are no result the state machine records: PERMISSION_DENIED
  // (10) changes nothing, the session's record included.
  CHECK_FALSE(sm.restore(Crafted{.format = 2, .last_code = 10}.bytes()).ok());
  CHECK_FALSE(sm.restore(Crafted{.format = 4, .last_code = 10}.bytes()).ok());
  CHECK_FALSE(sm.restore(Crafted{.format = 4, .last_code = 11}.bytes()).ok());
  CHECK_FALSE(sm.restore(Crafted{.format = 1, .last_code = 1}.bytes()).ok());  // NOT_LEADER
  CHECK_FALSE(sm.restore(Crafted{.format = 5}.bytes()).ok());
  REQUIRE(sm.restore(Crafted{.format = 4}.bytes()).ok());
  CHECK(sm.usage_of("p1") == Usage{1, 1, 0});
  CHECK(sm.authorize(2, "p2").ok());
}

TEST_CASE(
    "a lock-delay is stored by id in format 2 and by end time in format 1, which becomes id 0",
    "[sm][snapshot]") {
  LockStateMachine sm;
  REQUIRE(sm.restore(Crafted{.format = 2, .in_delay = 1, .delay = 7}.bytes()).ok());
  REQUIRE(sm.lock_delays().size() == 1);
  CHECK(sm.lock_delays()[0].delay_id == 7);
  CHECK(sm.lock_delays()[0].delay_ms == 1'000);
  REQUIRE(sm.restore(Crafted{.format = 1, .in_delay = 1, .delay = 1'700'000'000'000}.bytes()).ok());
  REQUIRE(sm.lock_delays().size() == 1);
  CHECK(sm.lock_delays()[0].delay_id == 0);
  // An id from the future, or a delay value without a delay.
  CHECK_FALSE(sm.restore(Crafted{.format = 2, .in_delay = 1, .delay = 11}.bytes()).ok());
  CHECK_FALSE(sm.restore(Crafted{.format = 2, .in_delay = 0, .delay = 7}.bytes()).ok());
  CHECK_FALSE(sm.restore(Crafted{.format = 1, .in_delay = 0, .delay = 7}.bytes()).ok());
}

TEST_CASE("applied_index follows every applied entry, failed ones included", "[sm][snapshot]") {
  LockStateMachine sm;
  CHECK(sm.applied_index() == 0);
  sm.apply(3, testing::open_cmd());
  CHECK(sm.applied_index() == 3);
  sm.apply(10, testing::open_cmd(1));  // invalid TTL
  CHECK(sm.applied_index() == 10);
}

}  // namespace fencelock::sm
