// Token epochs (docs/locks.md "Sequencers"): a state restored from a
// snapshot and moved into the next epoch grants tokens above any its old
// cluster could ever grant, and no epoch's tokens wrap.

#include <catch2/catch.hpp>

#include "statemachine/lock_state_machine.h"
#include "statemachine/snapshot_codec.h"
#include "tests/statemachine/sm_test_util.h"

namespace fencelock::sm {
namespace {

using testing::AcquireArgs;
using testing::Driver;

constexpr uint64_t kEpochSize = uint64_t{1} << kTokenEpochBits;

// An empty state in snapshot `format` with `next_token` in `epoch`
// (format 3 only) at `applied_index`.
std::string empty_state(uint32_t format, uint64_t next_token, uint64_t epoch,
                        uint64_t applied_index = 0) {
  detail::SnapshotWriter w;
  w.put_u32(0x4D534C46);
  w.put_u32(format);
  w.put_u64(applied_index);
  w.put_u64(next_token);
  if (format >= 3) w.put_u64(epoch);
  w.put_u64(0);  // sessions
  w.put_u64(0);  // locks
  return std::move(w).finish();
}

// Restores `bytes` into `driver`, which goes on after its applied index.
void restore_into(Driver& driver, const std::string& bytes) {
  REQUIRE(driver.sm.restore(bytes).ok());
  driver.index = driver.sm.applied_index();
}

}  // namespace

TEST_CASE("epoch ranges: epoch 0 starts at 1, epoch e at e << 48, the last ends at UINT64_MAX",
          "[sm][epoch]") {
  CHECK(first_token_of_epoch(0) == 1);
  CHECK(token_epoch_end(0) == kEpochSize);
  CHECK(first_token_of_epoch(1) == kEpochSize);
  CHECK(token_epoch_end(1) == 2 * kEpochSize);
  CHECK(first_token_of_epoch(kMaxTokenEpoch) == kMaxTokenEpoch << kTokenEpochBits);
  CHECK(token_epoch_end(kMaxTokenEpoch) == UINT64_MAX);
  LockStateMachine fresh;
  CHECK(fresh.token_epoch() == 0);
  CHECK(fresh.next_token() == 1);
}

TEST_CASE("tokens after a restore exceed every token the old cluster could issue after the backup",
          "[sm][epoch]") {
  // An old cluster far into epoch 0 (as if it had granted 2^48 - 6
  // tokens already).
  Driver old_cluster;
  restore_into(old_cluster, empty_state(3, kEpochSize - 5, 0));
  uint64_t a = old_cluster.open();
  uint64_t b = old_cluster.open();
  REQUIRE(old_cluster.take(a, "x", {.value = "va"}) == kEpochSize - 5);
  REQUIRE(old_cluster.wait(b, "x").queued);
  REQUIRE(old_cluster.take(b, "y") == kEpochSize - 4);
  const std::string backup = old_cluster.sm.snapshot();
  const uint64_t backup_index = old_cluster.sm.applied_index();

  // After the backup the old cluster grants every token its epoch has left.
  uint64_t last_old = kEpochSize - 4;
  for (;;) {
    REQUIRE(old_cluster.release(b, "y", last_old).status.ok());
    ApplyResult next = old_cluster.acquire(b, "y");
    if (!next.granted) {
      CHECK(next.status.code() == Code::kResourceExhausted);
      break;
    }
    last_old = next.granted->token();
  }
  CHECK(last_old == token_epoch_end(0) - 1);

  // The restore knows none of that, only the backup.
  Driver restored;
  restore_into(restored, backup);
  CHECK(restored.sm.token_epoch() == 0);
  REQUIRE(restored.sm.advance_token_epoch().ok());
  CHECK(restored.sm.token_epoch() == 1);
  CHECK(restored.sm.next_token() == kEpochSize);
  CHECK(restored.sm.applied_index() == backup_index);
  // Holders, queues and values are those of the backup.
  LockView x = restored.sm.describe("x").value();
  REQUIRE(x.holders.size() == 1);
  CHECK(x.holders[0].token == kEpochSize - 5);
  CHECK(x.holders[0].value == "va");
  REQUIRE(x.waiters.size() == 1);
  CHECK(x.waiters[0].session_id == b);

  // Every token the restored state grants exceeds every token epoch 0
  // could ever hold: a release hands "x" to the waiter, a new lock too.
  restored.sequence[a] = 1;
  restored.sequence[b] = 2;
  ApplyResult handed = restored.release(a, "x", kEpochSize - 5);
  REQUIRE(handed.status.ok());
  REQUIRE(handed.grants.size() == 1);
  CHECK(handed.grants[0].sequencer.token() == kEpochSize);
  CHECK(handed.grants[0].sequencer.token() > last_old);
  uint64_t fresh = restored.take(restored.open(), "z");
  CHECK(fresh == kEpochSize + 1);

  // A restore of a backup taken in epoch 1 (say, of the restored cluster)
  // moves to epoch 2, above everything epoch 1 could grant.
  Driver again;
  restore_into(again, restored.sm.snapshot());
  CHECK(again.sm.token_epoch() == 1);
  REQUIRE(again.sm.advance_token_epoch().ok());
  CHECK(again.sm.token_epoch() == 2);
  CHECK(again.sm.next_token() == 2 * kEpochSize);
}

TEST_CASE("a token floor starts the new epoch higher, in its own epoch if it names a later one",
          "[sm][epoch]") {
  LockStateMachine sm;
  REQUIRE(sm.advance_token_epoch(kEpochSize + 500).ok());
  CHECK(sm.token_epoch() == 1);
  CHECK(sm.next_token() == kEpochSize + 500);
  // A floor below the next epoch's start changes nothing more.
  LockStateMachine low;
  REQUIRE(low.advance_token_epoch(10).ok());
  CHECK(low.token_epoch() == 1);
  CHECK(low.next_token() == kEpochSize);
  // A floor in a later epoch moves there.
  LockStateMachine far;
  REQUIRE(far.advance_token_epoch(7 * kEpochSize + 3).ok());
  CHECK(far.token_epoch() == 7);
  CHECK(far.next_token() == 7 * kEpochSize + 3);
  // A floor that leaves no token, and the last epoch, are refused unchanged.
  LockStateMachine last;
  REQUIRE(last.advance_token_epoch(first_token_of_epoch(kMaxTokenEpoch)).ok());
  CHECK(last.token_epoch() == kMaxTokenEpoch);
  const std::string before = last.snapshot();
  Status no_epoch = last.advance_token_epoch();
  CHECK(no_epoch.code() == Code::kResourceExhausted);
  CHECK(last.snapshot() == before);
  LockStateMachine none;
  CHECK(none.advance_token_epoch(UINT64_MAX).code() == Code::kInvalidArgument);
  CHECK(none.token_epoch() == 0);
  CHECK(none.next_token() == 1);
}

TEST_CASE("a grant that would cross its epoch's end fails RESOURCE_EXHAUSTED and nothing wraps",
          "[sm][epoch]") {
  Driver d;
  uint64_t a = d.open();
  uint64_t b = d.open();
  REQUIRE(d.sm.advance_token_epoch(2 * kEpochSize - 2).ok());
  CHECK(d.take(a, "x") == 2 * kEpochSize - 2);
  REQUIRE(d.wait(b, "x").queued);
  CHECK(d.take(a, "y") == 2 * kEpochSize - 1);
  CHECK(d.sm.next_token() == token_epoch_end(1));

  // A new lock: refused, and not created.
  ApplyResult refused = d.acquire(b, "z");
  CHECK(refused.status.code() == Code::kResourceExhausted);
  CHECK(refused.status.message().find("used up") != std::string::npos);
  CHECK_FALSE(refused.granted);
  CHECK(d.sm.describe("z").code() == Code::kNotFound);

  // A release does not hand the lock to the waiter: it stays queued, to
  // end by its deadline.
  ApplyResult released = d.release(a, "x", 2 * kEpochSize - 2);
  CHECK(released.status.ok());
  CHECK(released.grants.empty());
  LockView x = d.sm.describe("x").value();
  CHECK(x.holders.empty());
  CHECK(x.waiters.size() == 1);
  // A busy lock still queues; a try-acquire of a free lock does not wrap.
  ApplyResult try_free = d.acquire(a, "x");
  CHECK(try_free.status.code() == Code::kTimeout);  // behind the waiter, no wait
  CHECK(d.sm.next_token() == token_epoch_end(1));

  // Such a state survives a snapshot (a grantable head waits for a token).
  LockStateMachine copy;
  REQUIRE(copy.restore(d.sm.snapshot()).ok());
  CHECK(copy.snapshot() == d.sm.snapshot());
  // And a restore into the next epoch grants again.
  REQUIRE(copy.advance_token_epoch().ok());
  CHECK(copy.next_token() == 2 * kEpochSize);
}

TEST_CASE("snapshots keep the token epoch (format 3) and read formats 1 and 2 as epoch 0",
          "[sm][epoch][snapshot]") {
  Driver d;
  uint64_t a = d.open();
  REQUIRE(d.take(a, "x") == 1);
  REQUIRE(d.sm.advance_token_epoch().ok());
  const std::string bytes = d.sm.snapshot();
  LockStateMachine copy;
  REQUIRE(copy.restore(bytes).ok());
  CHECK(copy.token_epoch() == 1);
  CHECK(copy.next_token() == kEpochSize);
  CHECK(copy.snapshot() == bytes);

  // Hand-made states: a next token outside its epoch is damage.
  LockStateMachine sm;
  CHECK(sm.restore(empty_state(3, kEpochSize, 1)).ok());
  CHECK(sm.restore(empty_state(3, 2 * kEpochSize, 1)).ok());  // used up
  CHECK(sm.restore(empty_state(2, 7, 0)).ok());
  CHECK(sm.token_epoch() == 0);
  CHECK(sm.restore(empty_state(1, 7, 0)).ok());
  CHECK(sm.token_epoch() == 0);
  for (auto [next, epoch] : {std::pair<uint64_t, uint64_t>{kEpochSize - 1, 1},
                             {2 * kEpochSize + 1, 1},
                             {0, 0},
                             {5, kMaxTokenEpoch + 1}}) {
    Status status = sm.restore(empty_state(3, next, epoch));
    CHECK(status.code() == Code::kInvalidArgument);
    CHECK(status.message().starts_with("damaged snapshot:"));
  }
  CHECK_FALSE(sm.restore(empty_state(2, kEpochSize + 1, 0)).ok());  // past epoch 0
}

}  // namespace fencelock::sm
