#include "server/wire.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "tests/statemachine/sm_test_util.h"

namespace fencelock::server {
namespace {

const std::vector<std::pair<sm::Code, lockpb::ErrorCode>> kCodes = {
    {sm::Code::kOk, lockpb::OK},
    {sm::Code::kInvalidArgument, lockpb::INVALID_ARGUMENT},
    {sm::Code::kNotFound, lockpb::NOT_FOUND},
    {sm::Code::kSessionExpired, lockpb::SESSION_EXPIRED},
    {sm::Code::kLockNotHeld, lockpb::LOCK_NOT_HELD},
    {sm::Code::kTimeout, lockpb::TIMEOUT},
    {sm::Code::kCancelled, lockpb::CANCELLED},
    {sm::Code::kResourceExhausted, lockpb::RESOURCE_EXHAUSTED},
    {sm::Code::kFailedPrecondition, lockpb::FAILED_PRECONDITION},
    {sm::Code::kStaleSequence, lockpb::STALE_SEQUENCE},
    {sm::Code::kPermissionDenied, lockpb::PERMISSION_DENIED},
};

sm::LockView sample_lock() {
  sm::LockView lock;
  lock.name = "jobs/nightly";
  lock.holders.push_back(sm::HolderView{7, 41, lockpb::SHARED, "10.0.0.7:9000"});
  lock.holders.push_back(sm::HolderView{9, 43, lockpb::SHARED, ""});
  lock.waiters.push_back(sm::WaiterView{11, lockpb::EXCLUSIVE, 120, 5'000});
  lock.max_holders = 2;
  lock.lock_delay_ms = 3'000;
  lock.in_lock_delay = true;
  lock.lock_delay_id = 97;
  return lock;
}

// Every member at its widest: the longest name and value, the largest
// varints.
sm::LockView widest_lock(size_t holders, size_t waiters) {
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  sm::LockView lock;
  lock.name = std::string(512, 'n');
  for (size_t i = 0; i < holders; ++i) {
    lock.holders.push_back(sm::HolderView{kMax, kMax, lockpb::SHARED, std::string(1024, 'v')});
  }
  for (size_t i = 0; i < waiters; ++i) {
    lock.waiters.push_back(sm::WaiterView{kMax, lockpb::SHARED, kMax, kMax});
  }
  lock.max_holders = std::numeric_limits<uint32_t>::max();
  lock.lock_delay_ms = kMax;
  lock.in_lock_delay = true;
  lock.lock_delay_id = kMax;
  return lock;
}

sm::SessionView widest_session() {
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  constexpr uint32_t kMax32 = std::numeric_limits<uint32_t>::max();
  return sm::SessionView{kMax, std::string(sm::kMaxClientNameBytes, 'c'), kMax, kMax32, kMax32,
                         std::string(sm::kMaxPrincipalBytes, 'p')};
}

}  // namespace

TEST_CASE("the state machine's size bound of a read is at least its wire encoding", "[wire]") {
  for (size_t holders : {0, 1, 7}) {
    for (size_t waiters : {0, 1, 9}) {
      sm::LockPage page;
      page.locks.push_back(widest_lock(holders, waiters));
      page.locks.push_back(sm::LockView{});
      page.next_start_after = std::string(512, 'n');
      INFO(holders << " holders, " << waiters << " waiters");
      CHECK(to_wire(page).ByteSizeLong() <= sm::encoded_bytes_bound(page));
      clientpb::LockList one;
      *one.add_locks() = to_wire(page.locks[0]);
      CHECK(one.ByteSizeLong() <= sm::encoded_bytes_bound(page.locks[0]));
    }
  }
  sm::SessionPage sessions;
  for (int i = 0; i < 5; ++i) sessions.sessions.push_back(widest_session());
  sessions.sessions.push_back(sm::SessionView{});
  sessions.next_start_after = std::numeric_limits<uint64_t>::max();
  CHECK(to_wire(sessions).ByteSizeLong() <= sm::encoded_bytes_bound(sessions));
}

TEST_CASE("a page the state machine keeps within max_bytes fits in max_bytes on the wire",
          "[wire]") {
  sm::testing::Driver d;
  std::vector<uint64_t> sessions;
  for (int i = 0; i < 6; ++i) sessions.push_back(d.open());
  for (int i = 0; i < 40; ++i) {
    sm::testing::AcquireArgs args;
    args.mode = lockpb::SHARED;
    args.value = std::string(static_cast<size_t>(i * 25), 'v');
    const std::string name =
        "jobs/" + std::string(static_cast<size_t>(1 + i % 9), 'j') + std::to_string(i);
    for (size_t s = 0; s <= static_cast<size_t>(i) % sessions.size(); ++s) {
      REQUIRE(d.take(sessions[s], name, args) != 0);
    }
  }
  for (size_t budget : {size_t{1}, size_t{600}, size_t{2'000}, size_t{9'000}}) {
    INFO("budget " << budget);
    std::string after;
    size_t locks = 0;
    do {
      sm::LockPage page = d.sm.list_locks("", after, 0, budget);
      const size_t wire_bytes = to_wire(page).ByteSizeLong();
      if (page.locks.size() > 1) CHECK(wire_bytes <= budget);
      locks += page.locks.size();
      after = page.next_start_after;
    } while (!after.empty());
    CHECK(locks == 40);

    uint64_t after_id = 0;
    size_t listed = 0;
    do {
      sm::SessionPage page = d.sm.list_sessions(after_id, 0, budget);
      if (page.sessions.size() > 1) CHECK(to_wire(page).ByteSizeLong() <= budget);
      listed += page.sessions.size();
      after_id = page.next_start_after;
    } while (after_id != 0);
    CHECK(listed == sessions.size());
  }
}

TEST_CASE("every state machine code has its own wire code, OK for kOk", "[wire]") {
  std::set<int> seen;
  for (const auto& [code, wire] : kCodes) {
    INFO(sm::code_name(code));
    CHECK(to_wire(code) == wire);
    CHECK(seen.insert(to_wire(code)).second);
  }
  CHECK(kCodes.back().first == sm::kMaxCode);
  CHECK(static_cast<size_t>(sm::kMaxCode) + 1 == kCodes.size());
}

TEST_CASE("a state machine status keeps its message on the wire", "[wire]") {
  CHECK(to_wire(sm::Status()).ok());
  Status status = to_wire(sm::Status(sm::Code::kLockNotHeld, "not yours"));
  CHECK(status.code() == lockpb::LOCK_NOT_HELD);
  CHECK(status.message() == "not yours");
}

TEST_CASE("a lock view becomes a LockInfo field for field", "[wire]") {
  clientpb::LockInfo info = to_wire(sample_lock());
  CHECK(info.name() == "jobs/nightly");
  REQUIRE(info.holders_size() == 2);
  CHECK(info.holders(0).session_id() == 7);
  CHECK(info.holders(0).token() == 41);
  CHECK(info.holders(0).mode() == lockpb::SHARED);
  CHECK(info.holders(0).value() == "10.0.0.7:9000");
  CHECK(info.holders(1).token() == 43);
  REQUIRE(info.waiters_size() == 1);
  CHECK(info.waiters(0).session_id() == 11);
  CHECK(info.waiters(0).mode() == lockpb::EXCLUSIVE);
  CHECK(info.waiters(0).wait_id() == 120);
  CHECK(info.waiters(0).wait_ms() == 5'000);
  CHECK(info.max_holders() == 2);
  CHECK(info.lock_delay_ms() == 3'000);
  CHECK(info.in_lock_delay());
  CHECK(info.lock_delay_id() == 97);
}

TEST_CASE("pages keep their order and where the next page starts", "[wire]") {
  sm::LockPage locks;
  locks.locks.push_back(sample_lock());
  locks.locks.push_back(sample_lock());
  locks.locks[1].name = "jobs/weekly";
  locks.next_start_after = "jobs/weekly";
  clientpb::LockList list = to_wire(locks);
  REQUIRE(list.locks_size() == 2);
  CHECK(list.locks(0).name() == "jobs/nightly");
  CHECK(list.locks(1).name() == "jobs/weekly");
  CHECK(list.next_start_after() == "jobs/weekly");
  CHECK(to_wire(sm::LockPage()).next_start_after().empty());

  sm::SessionPage sessions;
  sessions.sessions.push_back(sm::SessionView{3, "worker-1", 10'000, 2, 1, "billing"});
  sessions.sessions.push_back(sm::SessionView{8, "worker-2", 500, 0, 0, ""});
  sessions.next_start_after = 8;
  clientpb::SessionList session_list = to_wire(sessions);
  REQUIRE(session_list.sessions_size() == 2);
  CHECK(session_list.sessions(0).session_id() == 3);
  CHECK(session_list.sessions(0).client_name() == "worker-1");
  CHECK(session_list.sessions(0).ttl_ms() == 10'000);
  CHECK(session_list.sessions(0).held_locks() == 2);
  CHECK(session_list.sessions(0).waiting_locks() == 1);
  CHECK(session_list.sessions(0).principal() == "billing");
  CHECK(session_list.sessions(1).session_id() == 8);
  CHECK(session_list.sessions(1).principal().empty());
  CHECK(session_list.next_start_after() == 8);
}

TEST_CASE("a sequencer status says whether it is current", "[wire]") {
  CHECK(to_wire(sm::SequencerStatus{true}).current());
  CHECK_FALSE(to_wire(sm::SequencerStatus{false}).current());
}

}  // namespace fencelock::server
