// Snapshots of format 1, as written by the state machine before format 2
// (statemachine/lock_state_machine.cc, "Snapshots"), must keep restoring:
// a node upgraded in place finds one in its store. The bytes below were
// produced by that code from the command sequence described beside them.

#include <catch2/catch.hpp>
#include <string>

#include "statemachine/lock_state_machine.h"
#include "tests/statemachine/sm_test_util.h"

namespace fencelock::sm {
namespace {

std::string from_hex(std::string_view hex) {
  std::string bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    bytes.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return bytes;
}

// Limits max_waiters_per_lock = 2; entries at consecutive indexes from 1:
//   sessions 1 "alpha" (TTL default), 2 "b\xC3\xA9ta" (TTL 2000), 3..8 "client"
//   1: Acquire x EXCLUSIVE lock_delay 3000 value "payload" (seq 1) -> token 1
//   2: Acquire x SHARED wait 5000 now 1000 value "w" (seq 1) -> queued, wait 10
//   3: Acquire jobs/y SHARED max_holders 2 (seq 1) -> token 2;
//      Release jobs/y token 999 (seq 2) -> LOCK_NOT_HELD
//   4: Acquire z lock_delay 2000 (seq 1) -> token 3
//   5: Acquire z wait 700 now 400 (seq 1) -> queued, wait 14
//   ExpireSession 4 now 500 -> z in lock-delay, 5 still waiting
//   6: CancelWait nope (seq 1) -> NOT_FOUND
//   7: Acquire jobs/y SHARED max_holders 2 (seq 1) -> token 4;
//      Acquire jobs/y EXCLUSIVE (seq 2) -> FAILED_PRECONDITION
//   8: Acquire x (seq 1) -> TIMEOUT
//   session 20: Acquire "" (seq 1) -> INVALID_ARGUMENT
//   session 22: Acquire x wait 100 now 9 (seq 1) -> queued, wait 23
//   session 24: Acquire x wait 100 now 9 (seq 1) -> RESOURCE_EXHAUSTED
// Applied index 25, next token 5.
const std::string kFormat1 = from_hex(
    "464c534d01000000190000000000000005000000000000000a00000000000000"
    "0100000000000000102700000100000000000000020000010000000000000005"
    "000000616c7068610200000000000000d0070000010000000000000002000100"
    "000000000000000500000062c3a9746103000000000000001027000002000000"
    "00000000030300000000000000000006000000636c69656e7405000000000000"
    "00102700000100000000000000020001000000000000000006000000636c6965"
    "6e740600000000000000102700000100000000000000040d0000000000000000"
    "0006000000636c69656e74070000000000000010270000020000000000000002"
    "0700000000000000000006000000636c69656e74080000000000000010270000"
    "0100000000000000020400000000000000000006000000636c69656e74140000"
    "0000000000102700000100000000000000020500000000000000000006000000"
    "636c69656e741600000000000000102700000100000000000000020001000000"
    "000000000006000000636c69656e741800000000000000102700000100000000"
    "000000020800000000000000000006000000636c69656e740300000000000000"
    "060000006a6f62732f7902000000000000000000000000000000000200000003"
    "0000000000000002000000000000000100000000070000000000000004000000"
    "00000000010000000000000000010000007800000000b80b0000000000000000"
    "000000010000000100000000000000010000000000000000070000007061796c"
    "6f61640200000002000000000000000a00000000000000701700000000000001"
    "0100000077160000000000000017000000000000006d00000000000000000000"
    "0000010000007a00000000d007000001c4090000000000000000000001000000"
    "05000000000000000e000000000000004c040000000000000000000000e90d71"
    "1043a30493");

}  // namespace

TEST_CASE("a snapshot of format 1 restores its sessions, locks, waiters and lock-delays",
          "[sm][snapshot][format1]") {
  LockStateMachine sm;
  REQUIRE(sm.restore(kFormat1).ok());
  CHECK(sm.applied_index() == 25);
  CHECK(sm.next_token() == 5);
  CHECK(sm.session_count() == 10);
  CHECK(sm.lock_count() == 3);

  auto x = sm.describe("x");
  REQUIRE(x.ok());
  REQUIRE(x.value().holders.size() == 1);
  CHECK(x.value().holders[0].session_id == 1);
  CHECK(x.value().holders[0].token == 1);
  CHECK(x.value().holders[0].value == "payload");
  CHECK(x.value().lock_delay_ms == 3000);
  REQUIRE(x.value().waiters.size() == 2);
  CHECK(x.value().waiters[0].session_id == 2);
  CHECK(x.value().waiters[0].mode == lockpb::SHARED);
  CHECK(x.value().waiters[0].wait_id == 10);
  CHECK(x.value().waiters[1].session_id == 22);
  CHECK(x.value().waiters[1].wait_id == 23);
  // Format 1 kept a wait's deadline in the old leader's clock, not its
  // duration: the restored waits have none, and a leader ends them at once.
  CHECK(x.value().waiters[0].wait_ms == 0);
  CHECK(x.value().waiters[1].wait_ms == 0);
  for (const PendingWait& wait : sm.pending_waits()) CHECK(wait.wait_ms == 0);

  auto y = sm.describe("jobs/y");
  REQUIRE(y.ok());
  REQUIRE(y.value().holders.size() == 2);
  CHECK(y.value().holders[0].token == 2);
  CHECK(y.value().holders[1].session_id == 7);
  CHECK(y.value().max_holders == 2);

  auto z = sm.describe("z");
  REQUIRE(z.ok());
  CHECK(z.value().in_lock_delay);
  CHECK(z.value().holders.size() == 0);
  REQUIRE(z.value().waiters.size() == 1);
  CHECK(z.value().waiters[0].session_id == 5);

  auto sessions = sm.list_sessions(0, 0, testing::kNoByteLimit);
  REQUIRE(sessions.sessions.size() == 10);
  CHECK(sessions.sessions[0].client_name == "alpha");
  CHECK(sessions.sessions[1].client_name == "b\xC3\xA9ta");
  CHECK(sessions.sessions[1].ttl_ms == 2000);
  // Before principals: every session is principal "", counted on restore
  // (holders: x 1, jobs/y 3 and 7; waiters: x 2 "w" and 22, z 5).
  for (const SessionView& s : sessions.sessions) CHECK(s.principal.empty());
  CHECK(sm.usage_by_principal() ==
        std::vector<std::pair<std::string, Usage>>{{"", Usage{10, 6, 8}}});
  CHECK_FALSE(sm.check_invariants());
}

TEST_CASE("a session's last request restored from format 1 answers its retry as recorded",
          "[sm][snapshot][format1]") {
  LockStateMachine sm;
  REQUIRE(sm.restore(kFormat1).ok());
  uint64_t index = sm.applied_index();
  testing::AcquireArgs shared_wait;
  shared_wait.mode = lockpb::SHARED;
  shared_wait.wait_ms = 5000;
  testing::AcquireArgs wait_100;
  wait_100.wait_ms = 100;

  ApplyResult a = sm.apply(++index, testing::acquire_cmd(1, 1, "x"));
  CHECK(a.status.ok());
  REQUIRE(a.granted);
  CHECK(a.granted->token() == 1);
  ApplyResult b = sm.apply(++index, testing::acquire_cmd(2, 1, "x", shared_wait));
  CHECK(b.status.ok());
  CHECK(b.queued);
  CHECK(b.wait_id == 10);
  CHECK(sm.apply(++index, testing::release_cmd(3, 2, "jobs/y", 999)).status.code() ==
        Code::kLockNotHeld);
  CHECK(sm.apply(++index, testing::cancel_cmd(6, 1, "nope")).status.code() == Code::kNotFound);
  CHECK(sm.apply(++index, testing::acquire_cmd(7, 2, "jobs/y")).status.code() ==
        Code::kFailedPrecondition);
  CHECK(sm.apply(++index, testing::acquire_cmd(8, 1, "x")).status.code() == Code::kTimeout);
  CHECK(sm.apply(++index, testing::acquire_cmd(20, 1, "")).status.code() == Code::kInvalidArgument);
  CHECK(sm.apply(++index, testing::acquire_cmd(24, 1, "x", wait_100)).status.code() ==
        Code::kResourceExhausted);
  CHECK(sm.next_token() == 5);
}

TEST_CASE(
    "a last request restored from format 1 is matched by kind only, then by what it asked once "
    "the session makes a new one",
    "[sm][snapshot][format1]") {
  LockStateMachine sm;
  REQUIRE(sm.restore(kFormat1).ok());
  // Session 8's last request was Acquire x (seq 1) -> TIMEOUT; format 1 did
  // not keep which lock it named.
  CHECK(sm.apply(26, testing::acquire_cmd(8, 1, "elsewhere")).status.code() == Code::kTimeout);
  CHECK(sm.apply(27, testing::release_cmd(8, 1, "x", 1)).status.code() == Code::kInvalidArgument);
  CHECK(sm.apply(28, testing::acquire_cmd(8, 2, "w")).granted);
  CHECK(sm.apply(29, testing::acquire_cmd(8, 2, "elsewhere")).status.code() ==
        Code::kInvalidArgument);
}

TEST_CASE(
    "a lock-delay restored from format 1 has id 0 and runs in full from the leader's taking "
    "office",
    "[sm][snapshot][format1]") {
  LockStateMachine sm;
  REQUIRE(sm.restore(kFormat1).ok());
  // Format 1 kept the end time in the old leader's clock; what is left is
  // the lock's delay, to be run in full, and id 0.
  REQUIRE(sm.lock_delays().size() == 1);
  CHECK(sm.lock_delays()[0].lock == "z");
  CHECK(sm.lock_delays()[0].delay_ms == 2'000);
  CHECK(sm.lock_delays()[0].delay_id == 0);
  CHECK(sm.apply(26, testing::end_delay_cmd("z", 25)).grants.empty());
  ApplyResult ended = sm.apply(27, testing::end_delay_cmd("z", 0));
  REQUIRE(ended.status.ok());
  REQUIRE(ended.grants.size() == 1);
  CHECK(ended.grants[0].session_id == 5);
  CHECK(ended.grants[0].wait_id == 14);
  CHECK(ended.grants[0].sequencer.token() == 5);
}

TEST_CASE("an EndLockDelay written before format 2 (until_ms) ends a delay from format 1",
          "[sm][snapshot][format1]") {
  LockStateMachine sm;
  REQUIRE(sm.restore(kFormat1).ok());
  // lockpb::Command{end_lock_delay{lock "z", until_ms 2500}} as that leader wrote it.
  const std::string earlier_end("\x3a\x06\x0a\x01z\x10\xc4\x13", 8);
  ApplyResult ended = sm.apply(26, earlier_end);
  REQUIRE(ended.status.ok());
  REQUIRE(ended.grants.size() == 1);
  CHECK(ended.grants[0].session_id == 5);
}

TEST_CASE("a state restored from format 1 is written in the current format and restores the same",
          "[sm][snapshot][format1]") {
  LockStateMachine sm;
  REQUIRE(sm.restore(kFormat1).ok());
  const std::string current = sm.snapshot();
  CHECK(current != kFormat1);
  LockStateMachine copy;
  REQUIRE(copy.restore(current).ok());
  CHECK(copy.snapshot() == current);
  CHECK(copy.describe("x").value() == sm.describe("x").value());
  CHECK(copy.list_sessions(0, 0, testing::kNoByteLimit) ==
        sm.list_sessions(0, 0, testing::kNoByteLimit));
  CHECK(copy.apply(26, testing::release_cmd(3, 2, "jobs/y", 999)).status.code() ==
        Code::kLockNotHeld);
}

}  // namespace fencelock::sm
