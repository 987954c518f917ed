// A ConfChange leaves the leader only once the leader has written it. Found
// by the node-level simulator (fencelock-sim --level node --membership every
// --nodes 3, seeds 404421, 406059, 407599): a two-voter cluster removing a
// voter deadlocked when the leader sent the change before writing it and
// then crashed without it.
#include <catch2/catch.hpp>

#include "tests/raft/test_cluster.h"

namespace fencelock::raft {
namespace {

using testing::TestCluster;

bool carries_conf_change(const raftpb::Message& m) {
  if (m.type() != raftpb::MSG_APP) return false;
  for (const auto& entry : m.entries()) {
    if (entry.type() == raftpb::ENTRY_CONF_CHANGE) return true;
  }
  return false;
}

raftpb::ConfChange remove(uint64_t id) {
  raftpb::ConfChange change;
  change.set_type(raftpb::ConfChange::REMOVE_NODE);
  change.set_node_id(id);
  return change;
}

// Node 1 leads {1, 2} with an entry of its term committed.
void elect_one(TestCluster& c) {
  c.start();
  c.campaign(1);
  REQUIRE(c.node(1).role() == Role::kLeader);
  REQUIRE(c.node(1).commit_index() == c.node(1).last_index());
}

TEST_CASE("a leader sends a ConfChange only after writing it", "[raft][membership]") {
  TestCluster c({1, 2});
  elect_one(c);
  REQUIRE(c.node(1).propose_conf_change(remove(2)).ok());
  Ready rd = c.node(1).ready();
  for (const auto& m : rd.messages) CHECK_FALSE(carries_conf_change(m));
  bool after_persist = false;
  for (const auto& m : rd.messages_after_persist) after_persist |= carries_conf_change(m);
  CHECK(after_persist);
  // Written, it goes with the leader's ordinary replication again.
  c.storage(1).append(rd.entries);
  if (rd.hard_state) c.storage(1).set_hard_state(*rd.hard_state);
  for (const auto& m : rd.messages) c.queue().push_back(m);
  for (const auto& m : rd.messages_after_persist) c.queue().push_back(m);
  c.node(1).advance();
  c.stabilize();
  CHECK(c.node(1).voters() == std::set<uint64_t>{1});
  CHECK(c.node(2).voters() == std::set<uint64_t>{1});
  CHECK(c.node(1).commit_index() == c.node(1).conf_index());
}

TEST_CASE(
    "a two-voter cluster whose leader crashes before writing the removal of the other voter "
    "elects a leader again",
    "[raft][membership]") {
  TestCluster c({1, 2});
  elect_one(c);
  REQUIRE(c.node(1).propose_conf_change(remove(2)).ok());
  Ready rd = c.node(1).ready();
  // What may leave before the write reaches node 2; then node 1 crashes,
  // its write never made.
  for (const auto& m : rd.messages) c.deliver(m);
  c.queue().clear();
  c.restart(1);
  c.tick_all(60);
  bool led = c.node(1).role() == Role::kLeader || c.node(2).role() == Role::kLeader;
  CHECK(led);
}

}  // namespace
}  // namespace fencelock::raft
