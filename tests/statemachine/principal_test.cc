// Principals in the state machine (docs/locks.md "Principals", "Limits"): a
// session belongs to the principal of its OpenSession, and only that
// principal may use it; each principal's sessions, holders plus waiters
// and value bytes are bounded, and so are the cluster's totals. The
// counters are kept incrementally and rebuilt on restore; the invariant
// checker recounts them.

#include <catch2/catch.hpp>
#include <string>

#include "statemachine/lock_state_machine.h"
#include "statemachine/snapshot_codec.h"
#include "tests/statemachine/sm_test_util.h"

namespace fencelock::sm {

namespace testing {
struct StateAccess {
  static void miscount_total_value_bytes(LockStateMachine& sm) { ++sm.totals_.value_bytes; }
  static void miscount_principal(LockStateMachine& sm, std::string_view principal) {
    ++sm.principals_.find(principal)->second.holders_and_waiters;
  }
};
}  // namespace testing

namespace {

using testing::AcquireArgs;
using testing::kNoByteLimit;

// Commands as a client of `principal` sends them (the server sets it).
lockpb::Command as(std::string principal, lockpb::Command command) {
  command.set_principal(std::move(principal));
  return command;
}

// A driver whose commands carry a principal.
class Principals {
 public:
  explicit Principals(Limits limits = {}) : sm(limits) {}

  ApplyResult apply(const lockpb::Command& command) { return sm.apply(++index, command); }

  uint64_t open(const std::string& principal) {
    ApplyResult r = apply(as(principal, testing::open_cmd()));
    return r.status.ok() ? r.session_id : 0;
  }
  ApplyResult acquire(const std::string& principal, uint64_t session, std::string lock,
                      const AcquireArgs& args = {}) {
    return apply(
        as(principal, testing::acquire_cmd(session, ++sequence[session], std::move(lock), args)));
  }
  uint64_t take(const std::string& principal, uint64_t session, std::string lock,
                const AcquireArgs& args = {}) {
    ApplyResult r = acquire(principal, session, std::move(lock), args);
    return r.granted ? r.granted->token() : 0;
  }
  ApplyResult wait(const std::string& principal, uint64_t session, std::string lock,
                   std::string value = "") {
    AcquireArgs args;
    args.wait_ms = 60'000;
    args.value = std::move(value);
    return acquire(principal, session, std::move(lock), args);
  }
  ApplyResult release(const std::string& principal, uint64_t session, std::string lock,
                      uint64_t token) {
    return apply(as(principal,
                    testing::release_cmd(session, ++sequence[session], std::move(lock), token)));
  }
  ApplyResult cancel(const std::string& principal, uint64_t session, std::string lock) {
    return apply(as(principal, testing::cancel_cmd(session, ++sequence[session], std::move(lock))));
  }
  ApplyResult close(const std::string& principal, uint64_t session) {
    return apply(as(principal, testing::close_cmd(session, ++sequence[session])));
  }

  LockStateMachine sm;
  uint64_t index = 0;
  std::map<uint64_t, uint64_t> sequence;
};

AcquireArgs with_value(size_t bytes) {
  AcquireArgs args;
  args.value = std::string(bytes, 'v');
  return args;
}

// Everything a user can see of the state, and its applied index left out:
// what "changes nothing" compares.
std::string visible_state(const LockStateMachine& sm) {
  std::string out;
  for (const LockView& lock : sm.list_locks("", "", 0, kNoByteLimit).locks) {
    out += lock.name + ":";
    for (const HolderView& h : lock.holders) {
      out += " h" + std::to_string(h.session_id) + "/" + std::to_string(h.token) + "/" + h.value;
    }
    for (const WaiterView& w : lock.waiters) out += " w" + std::to_string(w.session_id);
    out += "\n";
  }
  for (const SessionView& s : sm.list_sessions(0, 0, kNoByteLimit).sessions) {
    out += "s" + std::to_string(s.session_id) + " " + s.principal + "\n";
  }
  out += "next " + std::to_string(sm.next_token());
  return out;
}

// --- Ownership ---

TEST_CASE("another principal cannot release, close, acquire with or cancel on a session",
          "[sm][principal]") {
  Principals d;
  const uint64_t alice = d.open("alice");
  const uint64_t other = d.open("alice");
  const uint64_t token = d.take("alice", alice, "x");
  REQUIRE(token != 0);
  REQUIRE(d.take("alice", other, "y") != 0);
  REQUIRE(d.wait("alice", alice, "y").queued);
  const std::string before = visible_state(d.sm);
  const Usage usage = d.sm.usage_of("alice");

  for (const ApplyResult& refused :
       {d.release("bob", alice, "x", token), d.close("bob", alice), d.acquire("bob", alice, "z"),
        d.cancel("bob", alice, "y"), d.release("", alice, "x", token), d.close("", alice)}) {
    CHECK(refused.status.code() == Code::kPermissionDenied);
    CHECK(refused.status.message().find("another principal") != std::string::npos);
    CHECK_FALSE(refused.granted);
    CHECK_FALSE(refused.duplicate);
    CHECK(refused.grants.empty());
    CHECK(refused.ended_waits.empty());
  }
  CHECK(visible_state(d.sm) == before);
  CHECK(d.sm.usage_of("alice") == usage);
  CHECK(d.sm.usage_of("bob") == Usage{});
  CHECK_FALSE(d.sm.check_invariants());
}

TEST_CASE("the owner can use its session after another principal was refused on it",
          "[sm][principal]") {
  Principals d;
  const uint64_t alice = d.open("alice");
  const uint64_t token = d.take("alice", alice, "x");
  REQUIRE(token != 0);
  // A refused request with a higher sequence number does not move the
  // session's sequence on, or the owner's next request would be stale.
  ApplyResult refused =
      d.apply(as("bob", testing::release_cmd(alice, 1'000'000, "x", token)));
  CHECK(refused.status.code() == Code::kPermissionDenied);
  CHECK(d.release("alice", alice, "x", token).status.ok());
  CHECK(d.wait("alice", alice, "y").granted);
  CHECK(d.cancel("alice", alice, "nope").status.code() == Code::kNotFound);
  CHECK(d.close("alice", alice).status.ok());
  CHECK(d.sm.session_count() == 0);
  CHECK(d.sm.usage_by_principal().empty());
}

TEST_CASE("another principal's retry is refused, not answered with the recorded result",
          "[sm][principal]") {
  Principals d;
  const uint64_t alice = d.open("alice");
  ApplyResult granted = d.acquire("alice", alice, "x");
  REQUIRE(granted.granted);
  // The exact retry of alice's Acquire would answer her grant (a token
  // bob could then present as his).
  ApplyResult retry = d.apply(as("bob", testing::acquire_cmd(alice, d.sequence[alice], "x")));
  CHECK(retry.status.code() == Code::kPermissionDenied);
  CHECK_FALSE(retry.duplicate);
  CHECK_FALSE(retry.granted);
  ApplyResult own = d.apply(as("alice", testing::acquire_cmd(alice, d.sequence[alice], "x")));
  CHECK(own.duplicate);
  REQUIRE(own.granted);
  CHECK(own.granted->token() == granted.granted->token());
}

TEST_CASE("sessions of principal \"\" work as before authentication", "[sm][principal]") {
  testing::Driver d;  // commands carry no principal
  const uint64_t a = d.open();
  const uint64_t b = d.open();
  const uint64_t token = d.take(a, "x");
  REQUIRE(token != 0);
  REQUIRE(d.wait(b, "x").queued);
  CHECK(d.release(a, "x", token).grants.size() == 1);
  CHECK(d.close(b).status.ok());
  CHECK(d.sm.usage_of("").sessions == 1);
  CHECK(d.sm.list_sessions(0, 0, kNoByteLimit).sessions[0].principal.empty());
  // Authenticated principals cannot use them, nor they an authenticated one's.
  CHECK(d.sm.apply(++d.index, as("alice", testing::close_cmd(a, 10))).status.code() ==
        Code::kPermissionDenied);
  const uint64_t alice = d.sm.apply(++d.index, as("alice", testing::open_cmd())).session_id;
  CHECK(d.sm.apply(++d.index, testing::close_cmd(alice, 1)).status.code() ==
        Code::kPermissionDenied);
}

TEST_CASE("leader commands act on every principal's sessions", "[sm][principal]") {
  Principals d;
  const uint64_t alice = d.open("alice");
  const uint64_t bob = d.open("bob");
  AcquireArgs delayed;
  delayed.lock_delay_ms = 1000;
  REQUIRE(d.take("alice", alice, "x", delayed) != 0);
  ApplyResult queued = d.wait("bob", bob, "x");
  REQUIRE(queued.queued);
  // The leader's deadline CancelWait (sequence 0, no principal).
  ApplyResult deadline = d.apply(testing::cancel_cmd(bob, 0, "x", queued.wait_id));
  CHECK(deadline.status.ok());
  REQUIRE(deadline.ended_waits.size() == 1);
  CHECK(deadline.ended_waits[0].reason == Code::kTimeout);
  // ExpireSession and EndLockDelay.
  ApplyResult expired = d.apply(testing::expire_cmd(alice));
  CHECK(expired.status.ok());
  REQUIRE(expired.lock_delays_started.size() == 1);
  CHECK(d.apply(testing::end_delay_cmd("x", expired.lock_delays_started[0].delay_id)).status.ok());
  CHECK(d.sm.lock_count() == 0);
  // An operator's ForceRelease names no session: any principal's goes.
  REQUIRE(d.take("bob", bob, "y") != 0);
  CHECK(d.apply(as("carol", testing::force_cmd("y"))).status.ok());
  CHECK(d.sm.usage_of("bob").holders_and_waiters == 0);
  CHECK_FALSE(d.sm.check_invariants());
}

TEST_CASE("a leader command that carries a principal is refused", "[sm][principal]") {
  Principals d;
  const uint64_t alice = d.open("alice");
  AcquireArgs delayed;
  delayed.lock_delay_ms = 1000;
  REQUIRE(d.take("alice", alice, "x", delayed) != 0);
  const uint64_t bob = d.open("bob");
  ApplyResult queued = d.wait("bob", bob, "x");
  REQUIRE(queued.queued);
  CHECK(d.apply(as("mallory", testing::expire_cmd(alice))).status.code() ==
        Code::kInvalidArgument);
  CHECK(d.apply(as("mallory", testing::end_delay_cmd("x", 0))).status.code() ==
        Code::kInvalidArgument);
  // A CancelWait of sequence 0 with a principal is a client's: refused on
  // another's session, and for its sequence 0 on its own.
  CHECK(d.apply(as("mallory", testing::cancel_cmd(bob, 0, "x", queued.wait_id))).status.code() ==
        Code::kPermissionDenied);
  CHECK(d.apply(as("bob", testing::cancel_cmd(bob, 0, "x", queued.wait_id))).status.code() ==
        Code::kInvalidArgument);
  CHECK(d.sm.session_count() == 2);
  CHECK(d.sm.describe("x").value().waiters.size() == 1);
}

TEST_CASE("authorize tells the server whose session a keepalive names", "[sm][principal]") {
  Principals d;
  const uint64_t alice = d.open("alice");
  const uint64_t anonymous = d.open("");
  CHECK(d.sm.authorize(alice, "alice").ok());
  CHECK(d.sm.authorize(alice, "bob").code() == Code::kPermissionDenied);
  CHECK(d.sm.authorize(alice, "").code() == Code::kPermissionDenied);
  CHECK(d.sm.authorize(anonymous, "").ok());
  CHECK(d.sm.authorize(anonymous, "alice").code() == Code::kPermissionDenied);
  CHECK(d.sm.authorize(999, "alice").code() == Code::kSessionExpired);
}

TEST_CASE("list_sessions shows each session's principal", "[sm][principal][read]") {
  Principals d;
  d.open("alice");
  d.open("");
  d.open("b\xC3\xA9la");
  SessionPage page = d.sm.list_sessions(0, 0, kNoByteLimit);
  REQUIRE(page.sessions.size() == 3);
  CHECK(page.sessions[0].principal == "alice");
  CHECK(page.sessions[1].principal.empty());
  CHECK(page.sessions[2].principal == "b\xC3\xA9la");
}

TEST_CASE("OpenSession refuses a principal that is too long or not UTF-8", "[sm][principal]") {
  Principals d;
  CHECK(d.open(std::string(kMaxPrincipalBytes, 'p')) != 0);
  CHECK(d.apply(as(std::string(kMaxPrincipalBytes + 1, 'p'), testing::open_cmd()))
            .status.code() == Code::kInvalidArgument);
  CHECK(d.apply(as("\xC3", testing::open_cmd())).status.code() == Code::kInvalidArgument);
  CHECK(d.sm.session_count() == 1);
}

// --- Bounds ---

TEST_CASE("max_sessions_per_principal: reached exactly, the next refused, a closed one reusable",
          "[sm][principal][limits]") {
  Limits limits;
  limits.max_sessions_per_principal = 2;
  Principals d(limits);
  const uint64_t first = d.open("alice");
  REQUIRE(first != 0);
  REQUIRE(d.open("alice") != 0);
  ApplyResult refused = d.apply(as("alice", testing::open_cmd()));
  CHECK(refused.status.code() == Code::kResourceExhausted);
  CHECK(refused.status.message().find("max_sessions_per_principal") != std::string::npos);
  CHECK(refused.status.message().find("\"alice\"") != std::string::npos);
  CHECK(d.sm.session_count() == 2);
  // Another principal has its own.
  const uint64_t bob = d.open("bob");
  CHECK(bob != 0);
  CHECK(d.open("bob") != 0);
  CHECK(d.open("bob") == 0);
  REQUIRE(d.close("alice", first).status.ok());
  CHECK(d.open("alice") != 0);
  REQUIRE(d.apply(testing::expire_cmd(bob)).status.ok());
  CHECK(d.sm.usage_of("bob").sessions == 1);
  CHECK(d.open("bob") != 0);
  CHECK_FALSE(d.sm.check_invariants());
}

TEST_CASE("max_holders_and_waiters_per_principal counts holders and waiters together",
          "[sm][principal][limits]") {
  Limits limits;
  limits.max_holders_and_waiters_per_principal = 3;
  Principals d(limits);
  const uint64_t a1 = d.open("alice");
  const uint64_t a2 = d.open("alice");
  const uint64_t bob = d.open("bob");
  REQUIRE(d.take("bob", bob, "busy") != 0);
  const uint64_t x = d.take("alice", a1, "x");
  REQUIRE(x != 0);
  REQUIRE(d.take("alice", a2, "y") != 0);
  ApplyResult third = d.wait("alice", a1, "busy");
  REQUIRE(third.queued);
  CHECK(d.sm.usage_of("alice").holders_and_waiters == 3);
  const std::string before = visible_state(d.sm);
  const size_t locks = d.sm.lock_count();
  ApplyResult refused = d.acquire("alice", a2, "z");
  CHECK(refused.status.code() == Code::kResourceExhausted);
  CHECK(refused.status.message().find("max_holders_and_waiters_per_principal") !=
        std::string::npos);
  CHECK(refused.status.message().find("\"alice\"") != std::string::npos);
  CHECK(d.wait("alice", a2, "busy").status.code() == Code::kResourceExhausted);
  CHECK(visible_state(d.sm) == before);
  CHECK(d.sm.lock_count() == locks);
  // Re-acquiring a held lock adds nothing and is answered with the grant.
  CHECK(d.take("alice", a1, "x") == x);
  // A grant moves a waiter to the holders: still 3.
  REQUIRE(d.release("bob", bob, "busy", d.sm.describe("busy").value().holders[0].token)
              .grants.size() == 1);
  CHECK(d.sm.usage_of("alice").holders_and_waiters == 3);
  // Each way out frees one: release, cancel, force-release, close.
  REQUIRE(d.release("alice", a1, "x", x).status.ok());
  CHECK(d.take("alice", a2, "z") != 0);
  CHECK(d.acquire("alice", a2, "w").status.code() == Code::kResourceExhausted);
  REQUIRE(d.apply(testing::force_cmd("z")).status.ok());
  REQUIRE(d.take("bob", bob, "busy2") != 0);
  REQUIRE(d.wait("alice", a2, "busy2").queued);
  REQUIRE(d.cancel("alice", a2, "busy2").status.ok());
  CHECK(d.sm.usage_of("alice").holders_and_waiters == 2);
  REQUIRE(d.close("alice", a1).status.ok());
  CHECK(d.sm.usage_of("alice").holders_and_waiters == 1);
  CHECK_FALSE(d.sm.check_invariants());
}

TEST_CASE("max_value_bytes_per_principal: values of holders and waiters, exactly to the bound",
          "[sm][principal][limits]") {
  Limits limits;
  limits.max_value_bytes_per_principal = 1000;
  Principals d(limits);
  const uint64_t alice = d.open("alice");
  const uint64_t bob = d.open("bob");
  REQUIRE(d.take("bob", bob, "busy") != 0);
  const uint64_t x = d.take("alice", alice, "x", with_value(600));
  REQUIRE(x != 0);
  REQUIRE(d.wait("alice", alice, "busy", std::string(300, 'w')).queued);
  CHECK(d.sm.usage_of("alice").value_bytes == 900);
  ApplyResult refused = d.acquire("alice", alice, "y", with_value(101));
  CHECK(refused.status.code() == Code::kResourceExhausted);
  CHECK(refused.status.message().find("max_value_bytes_per_principal") != std::string::npos);
  CHECK(refused.status.message().find("\"alice\"") != std::string::npos);
  CHECK(d.sm.describe("y").code() == Code::kNotFound);
  REQUIRE(d.take("alice", alice, "y", with_value(100)) != 0);
  CHECK(d.sm.usage_of("alice").value_bytes == 1000);
  // At the bound: a lock without a value still goes.
  CHECK(d.take("alice", alice, "plain") != 0);
  CHECK(d.acquire("alice", alice, "z", with_value(1)).status.code() == Code::kResourceExhausted);
  // Bob's values are his own.
  CHECK(d.take("bob", bob, "b", with_value(1000)) != 0);
  // The waiter's value is granted with it: still counted.
  REQUIRE(d.release("bob", bob, "busy", d.sm.describe("busy").value().holders[0].token)
              .grants.size() == 1);
  CHECK(d.sm.usage_of("alice").value_bytes == 1000);
  REQUIRE(d.release("alice", alice, "x", x).status.ok());
  CHECK(d.sm.usage_of("alice").value_bytes == 400);
  CHECK(d.take("alice", alice, "z", with_value(600)) != 0);
  CHECK_FALSE(d.sm.check_invariants());
}

TEST_CASE("the cluster's bounds on holders and waiters and on value bytes span principals",
          "[sm][principal][limits]") {
  Limits limits;
  limits.max_holders_and_waiters = 3;
  limits.max_value_bytes = 500;
  Principals d(limits);
  const uint64_t alice = d.open("alice");
  const uint64_t bob = d.open("bob");
  REQUIRE(d.take("alice", alice, "a", with_value(300)) != 0);
  ApplyResult bytes = d.acquire("bob", bob, "b", with_value(201));
  CHECK(bytes.status.code() == Code::kResourceExhausted);
  CHECK(bytes.status.message().find("max_value_bytes") != std::string::npos);
  CHECK(bytes.status.message().find("\"bob\"") != std::string::npos);
  REQUIRE(d.take("bob", bob, "b", with_value(200)) != 0);
  const uint64_t c = d.take("bob", bob, "c");
  REQUIRE(c != 0);
  ApplyResult count = d.acquire("alice", alice, "d");
  CHECK(count.status.code() == Code::kResourceExhausted);
  CHECK(count.status.message().find("max_holders_and_waiters") != std::string::npos);
  CHECK(count.status.message().find("\"alice\"") != std::string::npos);
  CHECK(d.sm.total_usage() == Usage{2, 3, 500});
  REQUIRE(d.release("bob", bob, "c", c).status.ok());
  CHECK(d.take("alice", alice, "d") != 0);
  CHECK_FALSE(d.sm.check_invariants());
}

// --- Snapshots and the invariant checker ---

TEST_CASE("a snapshot keeps principals and restore rebuilds the same counters",
          "[sm][principal][snapshot]") {
  Principals d;
  const uint64_t alice = d.open("alice");
  const uint64_t bob = d.open("bob");
  const uint64_t anonymous = d.open("");
  REQUIRE(d.take("alice", alice, "x", with_value(10)) != 0);
  REQUIRE(d.wait("bob", bob, "x", std::string(20, 'w')).queued);
  REQUIRE(d.take("", anonymous, "y", with_value(5)) != 0);
  REQUIRE(d.take("bob", bob, "z") != 0);

  LockStateMachine copy;
  REQUIRE(copy.restore(d.sm.snapshot()).ok());
  CHECK(copy.usage_by_principal() == d.sm.usage_by_principal());
  CHECK(copy.total_usage() == d.sm.total_usage());
  CHECK(copy.total_usage() == Usage{3, 4, 35});
  CHECK(copy.usage_of("bob") == Usage{1, 2, 20});
  CHECK_FALSE(copy.check_invariants());
  CHECK(copy.snapshot() == d.sm.snapshot());
  // Ownership survives the restore.
  CHECK(copy.apply(++d.index, as("alice", testing::close_cmd(bob, 99))).status.code() ==
        Code::kPermissionDenied);
  CHECK(copy.authorize(anonymous, "").ok());
}

TEST_CASE("snapshot format 3 restores with every session of principal \"\"",
          "[sm][principal][snapshot]") {
  // One session (id 1, "worker") holding "x" with a 4-byte value, one
  // (id 2) waiting for it with a 2-byte value: format 3 as it was written
  // before principals.
  detail::SnapshotWriter w;
  w.put_u32(0x4D534C46);  // "FLSM"
  w.put_u32(3);
  w.put_u64(4);  // applied index
  w.put_u64(2);  // next token
  w.put_u64(0);  // token epoch
  w.put_u64(2);
  for (uint64_t id : {1, 2}) {
    w.put_u64(id);
    w.put_u32(10'000);
    w.put_u64(1);                                // last sequence
    w.put_u8(2);                                 // kAcquire
    w.put_u8(0);                                 // OK
    w.put_u8(id == 2 ? 1 : 0);                   // queued
    w.put_u64(id == 1 ? 1 : 0);                  // last token
    w.put_u64(0x1234 + id);                      // fingerprint
    w.put_bytes("worker");
  }
  w.put_u64(1);
  w.put_bytes("x");
  w.put_u32(0);
  w.put_u32(0);
  w.put_u8(0);
  w.put_u64(0);
  w.put_u32(1);
  w.put_u64(1);
  w.put_u64(1);
  w.put_u8(lockpb::EXCLUSIVE);
  w.put_bytes("vvvv");
  w.put_u32(1);
  w.put_u64(2);
  w.put_u64(4);
  w.put_u64(5'000);
  w.put_u8(lockpb::EXCLUSIVE);
  w.put_bytes("ww");
  const std::string format3 = std::move(w).finish();

  LockStateMachine sm;
  REQUIRE(sm.restore(format3).ok());
  CHECK(sm.usage_by_principal() ==
        std::vector<std::pair<std::string, Usage>>{{"", Usage{2, 2, 6}}});
  CHECK(sm.total_usage() == Usage{2, 2, 6});
  CHECK_FALSE(sm.check_invariants());
  for (const SessionView& s : sm.list_sessions(0, 0, kNoByteLimit).sessions) {
    CHECK(s.principal.empty());
  }
  CHECK(sm.authorize(1, "").ok());
  CHECK(sm.apply(5, as("alice", testing::release_cmd(1, 2, "x", 1))).status.code() ==
        Code::kPermissionDenied);
  ApplyResult released = sm.apply(6, testing::release_cmd(1, 2, "x", 1));
  CHECK(released.status.ok());
  CHECK(released.grants.size() == 1);
  CHECK(sm.total_usage() == Usage{2, 1, 2});
  // Written again in the current format, with the principal.
  LockStateMachine again;
  REQUIRE(again.restore(sm.snapshot()).ok());
  CHECK(again.snapshot() == sm.snapshot());
}

TEST_CASE("a snapshot with a principal that is not UTF-8 is refused as damaged",
          "[sm][principal][snapshot]") {
  Principals d;
  d.open("ab");
  std::string bytes = d.sm.snapshot();
  bytes.resize(bytes.size() - 8);  // without its checksum
  // The principal's two bytes come just before the lock count.
  const size_t at = bytes.size() - 8 - 2;
  REQUIRE(bytes.substr(at, 2) == "ab");
  bytes[at] = '\xC3';
  const uint64_t checksum = detail::fnv1a64(bytes);
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((checksum >> (8 * i)) & 0xFF));
  LockStateMachine sm;
  Status restored = sm.restore(bytes);
  CHECK(restored.code() == Code::kInvalidArgument);
  CHECK(restored.message() == "damaged snapshot: bad principal");
}

TEST_CASE("the invariant checker finds counters that differ from a recount",
          "[sm][principal][invariants]") {
  Principals d;
  const uint64_t alice = d.open("alice");
  REQUIRE(d.take("alice", alice, "x", with_value(3)) != 0);
  CHECK_FALSE(d.sm.check_invariants());

  testing::StateAccess::miscount_principal(d.sm, "alice");
  auto broken = d.sm.check_invariants();
  REQUIRE(broken);
  CHECK(broken->find("usage of principal \"alice\"") != std::string::npos);

  Principals e;
  const uint64_t bob = e.open("bob");
  REQUIRE(e.take("bob", bob, "x", with_value(3)) != 0);
  testing::StateAccess::miscount_total_value_bytes(e.sm);
  broken = e.sm.check_invariants();
  REQUIRE(broken);
  CHECK(broken->find("the cluster's usage") != std::string::npos);
}

}  // namespace
}  // namespace fencelock::sm
