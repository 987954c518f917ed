// InstallSnapshot (Raft §7), ReadIndex (dissertation §6.4) and leadership
// transfer (dissertation §3.10).
#include <catch2/catch.hpp>

#include "tests/raft/test_cluster.h"

namespace fencelock::raft {
namespace {

using testing::TestCluster;

TEST_CASE(
    "a follower that needs compacted entries gets a snapshot, which Ready hands to the "
    "driver (§7)",
    "[raft][snapshot]") {
  TestCluster c({1, 2, 3});
  c.start();
  c.campaign(1);
  c.isolate(3);
  for (int i = 0; i < 10; ++i) REQUIRE(c.node(1).propose("p" + std::to_string(i)).ok());
  c.stabilize();
  REQUIRE(c.node(1).applied_index() == 11);
  // The driver snapshots its state machine at 11 and discards the log.
  c.storage(1).create_snapshot(11, testing::conf_of({1, 2, 3}), "state@11");
  c.storage(1).compact(11);
  REQUIRE(c.node(1).propose("after").ok());
  int snapshots = 0;
  c.set_drop([&](const raftpb::Message& m) {
    if (m.type() == raftpb::MSG_SNAP) {
      ++snapshots;
      CHECK(m.snapshot().metadata().index() == 11);
      CHECK(m.snapshot().data() == "state@11");
    }
    return false;
  });
  c.heal();
  c.tick_all(3);
  CHECK(snapshots == 1);
  CHECK(c.storage(3).snapshot().metadata().index() == 11);
  CHECK(c.storage(3).last_index() == 12);
  CHECK(c.terms_of(3) == c.terms_of(1));
  // Node 3 applied the no-op before its isolation, then the snapshot, then
  // only the entry after it.
  REQUIRE(c.applied(3).size() == 2);
  CHECK(c.applied(3)[0].index() == 1);
  CHECK(c.applied(3)[1].index() == 12);
  CHECK(c.applied(3)[1].data() == "after");
  auto progress = c.node(1).progress();
  CHECK(progress[2].state == ProgressState::kReplicate);
  CHECK(progress[2].match_index == 12);
}

TEST_CASE("a lost snapshot is retried after an election timeout", "[raft][snapshot]") {
  TestCluster c({1, 2, 3});
  c.start();
  c.campaign(1);
  c.isolate(3);
  for (int i = 0; i < 5; ++i) REQUIRE(c.node(1).propose("p").ok());
  c.stabilize();
  c.storage(1).create_snapshot(6, testing::conf_of({1, 2, 3}), "s");
  c.storage(1).compact(6);
  c.heal();
  int snapshots = 0;
  c.set_drop([&](const raftpb::Message& m) {
    if (m.type() != raftpb::MSG_SNAP) return false;
    return ++snapshots == 1;  // the first one is lost
  });
  c.tick_all(30);
  CHECK(snapshots >= 2);
  CHECK(c.storage(3).last_index() == 6);
}

TEST_CASE("report_snapshot lets the leader probe again without waiting for a timeout",
          "[raft][snapshot]") {
  TestCluster c({1, 2, 3});
  c.start();
  c.campaign(1);
  c.isolate(3);
  for (int i = 0; i < 5; ++i) REQUIRE(c.node(1).propose("p").ok());
  c.stabilize();
  c.storage(1).create_snapshot(6, testing::conf_of({1, 2, 3}), "s");
  c.storage(1).compact(6);
  c.heal();
  c.set_drop([](const raftpb::Message& m) { return m.type() == raftpb::MSG_SNAP; });
  c.tick_all(1);
  auto progress = c.node(1).progress();
  REQUIRE(progress[2].state == ProgressState::kSnapshot);
  c.set_drop(nullptr);
  c.node(1).report_snapshot(3, false);
  CHECK(c.node(1).progress()[2].state == ProgressState::kProbe);
  c.tick_all(2);
  CHECK(c.storage(3).last_index() == 6);
  CHECK(c.node(1).progress()[2].state == ProgressState::kReplicate);
}

TEST_CASE(
    "the leader answers ReadIndex with its commit index once a heartbeat round confirms "
    "its leadership (dissertation §6.4)",
    "[raft][readindex]") {
  TestCluster c({1, 2, 3});
  c.start();
  c.campaign(1);
  REQUIRE(c.node(1).propose("a").ok());
  c.stabilize();
  REQUIRE(c.node(1).read_index("r1").ok());
  c.process(1);
  CHECK(c.read_states(1).empty());  // not before a majority answered
  c.stabilize();
  REQUIRE(c.read_states(1).size() == 1);
  CHECK(c.read_states(1)[0].context == "r1");
  CHECK(c.read_states(1)[0].index == 2);

  // Partitioned from the majority, the leader confirms nothing.
  c.isolate(1);
  REQUIRE(c.node(1).read_index("r2").ok());
  c.stabilize();
  CHECK(c.read_states(1).size() == 1);
}

TEST_CASE(
    "a new leader holds ReadIndex requests until an entry of its term commits "
    "(dissertation §6.4)",
    "[raft][readindex]") {
  TestCluster c({1, 2, 3});
  c.start();
  c.set_drop([](const raftpb::Message& m) { return m.type() == raftpb::MSG_APP; });
  c.campaign(1);
  REQUIRE(c.node(1).role() == Role::kLeader);
  REQUIRE(c.node(1).commit_index() == 0);
  REQUIRE(c.node(1).read_index("early").ok());
  c.stabilize();
  CHECK(c.read_states(1).empty());
  c.set_drop(nullptr);
  c.tick_all(2);
  REQUIRE(c.read_states(1).size() == 1);
  CHECK(c.read_states(1)[0].index == 1);
}

TEST_CASE(
    "a follower forwards ReadIndex to the leader and gets the read state; without a "
    "leader it answers NOT_LEADER",
    "[raft][readindex]") {
  TestCluster c({1, 2, 3});
  c.start();
  CHECK(c.node(2).read_index("x").code() == Error::kNotLeader);
  c.campaign(1);
  REQUIRE(c.node(2).read_index("f1").ok());
  c.stabilize();
  REQUIRE(c.read_states(2).size() == 1);
  CHECK(c.read_states(2)[0].context == "f1");
  CHECK(c.read_states(2)[0].index == 1);
}

TEST_CASE(
    "leadership transfer sends TimeoutNow once the target is up to date, and the target "
    "wins at once (dissertation §3.10)",
    "[raft][transfer]") {
  TestCluster c({1, 2, 3});
  c.start();
  c.campaign(1);
  c.isolate(3);
  REQUIRE(c.node(1).propose("a").ok());
  c.stabilize();
  c.heal();
  REQUIRE(c.node(1).transfer_leadership(3).ok());
  CHECK(c.node(1).lead_transferee() == 3);
  CHECK(c.node(1).propose("refused").code() == Error::kTransferring);  // during the transfer
  c.stabilize();
  CHECK(c.node(3).role() == Role::kLeader);
  CHECK(c.node(3).term() == 2);
  CHECK(c.node(1).role() == Role::kFollower);
  CHECK(c.node(1).leader_id() == 3);
  CHECK(c.terms_of(3) == std::vector<uint64_t>{1, 1, 2});
}

TEST_CASE(
    "leadership transfer is refused off the leader and to a non-voter, and abandoned "
    "after an election timeout",
    "[raft][transfer]") {
  TestCluster c({1, 2, 3});
  c.start();
  c.campaign(1);
  CHECK(c.node(2).transfer_leadership(3).code() == Error::kNotLeader);
  CHECK(c.node(1).transfer_leadership(9).code() == Error::kInvalidArgument);
  CHECK(c.node(1).transfer_leadership(1).code() == Error::kInvalidArgument);
  c.isolate(3);
  REQUIRE(c.node(1).transfer_leadership(3).ok());
  c.tick_all(12);
  CHECK(c.node(1).role() == Role::kLeader);
  CHECK(c.node(1).lead_transferee() == 0);
  CHECK(c.node(1).propose("ok again").ok());
}

}  // namespace
}  // namespace fencelock::raft

namespace fencelock::raft {
namespace {

TEST_CASE(
    "a node restarted with a snapshot beyond its hard state's commit index counts the snapshot "
    "as committed",
    "[raft][snapshot][restart]") {
  // The commit index is written without fsync, so after a machine crash the
  // durable hard state can name an older commit than a synced snapshot the
  // state machine was restored from.
  MemoryStorage storage(testing::conf_of({1, 2, 3}));
  std::vector<raftpb::Entry> entries;
  for (uint64_t i = 1; i <= 10; ++i) entries.push_back(testing::entry(i, 1));
  storage.append(entries);
  storage.create_snapshot(8, testing::conf_of({1, 2, 3}), "state@8");
  raftpb::HardState hard_state;
  hard_state.set_term(1);
  hard_state.set_commit(5);
  storage.set_hard_state(hard_state);
  Config config;
  config.id = 2;
  config.applied = 8;
  RawNode node(config, storage, testing::null_logger());
  CHECK(node.commit_index() == 8);
  CHECK(node.applied_index() == 8);
  Ready rd = node.ready();
  CHECK(rd.committed_entries.empty());  // nothing up to the snapshot is applied again
  node.advance();
}

}  // namespace
}  // namespace fencelock::raft
