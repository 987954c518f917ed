// Leader election: Raft §5.2, §5.4.1; pre-vote (dissertation §9.6);
// check-quorum (dissertation §6.2).
#include <catch2/catch.hpp>
#include <random>

#include "raft/random.h"
#include "tests/raft/test_cluster.h"

namespace fencelock::raft {
namespace {

using testing::entry;
using testing::log_with_terms;
using testing::null_logger;
using testing::TestCluster;

raftpb::Message vote_request(uint64_t from, uint64_t to, uint64_t term, uint64_t last_index,
                             uint64_t last_term, bool pre = false) {
  raftpb::Message m;
  m.set_type(pre ? raftpb::MSG_PRE_VOTE : raftpb::MSG_VOTE);
  m.set_from(from);
  m.set_to(to);
  m.set_term(term);
  m.set_index(last_index);
  m.set_log_term(last_term);
  return m;
}

// The vote responses in a Ready, which must wait for the persist.
std::vector<raftpb::Message> responses(RawNode& node, MemoryStorage& storage) {
  Ready rd = node.ready();
  CHECK(rd.messages.empty());
  if (rd.hard_state) storage.set_hard_state(*rd.hard_state);
  storage.append(rd.entries);
  node.advance();
  return rd.messages_after_persist;
}

TEST_CASE("a follower that hears no leader for an election timeout starts an election (§5.2)",
          "[raft][election]") {
  TestCluster c({1, 2, 3});
  c.start();
  RawNode& n = c.node(1);
  for (int i = 0; i < 9; ++i) n.tick();  // below election_ticks: nothing happens
  CHECK(n.role() == Role::kFollower);
  for (int i = 0; i < 11 && n.role() == Role::kFollower; ++i) n.tick();
  CHECK(n.role() == Role::kPreCandidate);
  CHECK(n.term() == 0);  // pre-vote does not raise the term
}

TEST_CASE(
    "a candidate with votes from a majority becomes leader and appends a no-op of its term "
    "(§5.2, §8)",
    "[raft][election]") {
  TestCluster c({1, 2, 3});
  c.start();
  c.campaign(1);
  CHECK(c.node(1).role() == Role::kLeader);
  CHECK(c.node(1).term() == 1);
  CHECK(c.node(2).leader_id() == 1);
  CHECK(c.node(3).leader_id() == 1);
  REQUIRE(c.storage(2).last_index() == 1);
  CHECK(c.storage(2).term(1) == 1);
  CHECK(c.node(1).commit_index() == 1);
  CHECK(c.node(3).commit_index() == 1);
}

TEST_CASE("a node grants at most one vote per term (§5.2)", "[raft][election]") {
  TestCluster c({1, 2, 3}, [](Config& cfg) { cfg.pre_vote = false; });
  c.start();
  RawNode& n = c.node(3);
  n.step(vote_request(1, 3, 5, 0, 0));
  auto first = responses(n, c.storage(3));
  REQUIRE(first.size() == 1);
  CHECK_FALSE(first[0].reject());
  CHECK(n.voted_for() == 1);
  CHECK(c.storage(3).initial_state().hard_state.vote() == 1);  // persisted before the answer

  n.step(vote_request(2, 3, 5, 0, 0));
  auto second = responses(n, c.storage(3));
  REQUIRE(second.size() == 1);
  CHECK(second[0].reject());
  CHECK(n.voted_for() == 1);

  n.step(vote_request(1, 3, 5, 0, 0));  // a retry from the same candidate is granted again
  auto retry = responses(n, c.storage(3));
  REQUIRE(retry.size() == 1);
  CHECK_FALSE(retry[0].reject());
}

TEST_CASE("candidate with a stale log is denied the vote (§5.4.1)", "[raft][election]") {
  TestCluster c({1, 2, 3}, [](Config& cfg) { cfg.pre_vote = false; });
  c.preload(3, log_with_terms({1, 1, 2}), 2);
  c.start();
  RawNode& n = c.node(3);
  SECTION("lower last term") {
    n.step(vote_request(1, 3, 3, 5, 1));
    auto r = responses(n, c.storage(3));
    REQUIRE(r.size() == 1);
    CHECK(r[0].reject());
  }
  SECTION("same last term, shorter log") {
    n.step(vote_request(1, 3, 3, 2, 2));
    auto r = responses(n, c.storage(3));
    REQUIRE(r.size() == 1);
    CHECK(r[0].reject());
  }
  SECTION("same last term, same length: granted") {
    n.step(vote_request(1, 3, 3, 3, 2));
    auto r = responses(n, c.storage(3));
    REQUIRE(r.size() == 1);
    CHECK_FALSE(r[0].reject());
  }
  SECTION("higher last term, shorter log: granted") {
    n.step(vote_request(1, 3, 3, 1, 3));
    auto r = responses(n, c.storage(3));
    REQUIRE(r.size() == 1);
    CHECK_FALSE(r[0].reject());
  }
}

TEST_CASE(
    "election timeouts are randomized from election_ticks to 2*election_ticks-1 and "
    "reproducible from the seed (§5.2)",
    "[raft][election]") {
  auto timeout_of = [](uint64_t seed) {
    MemoryStorage storage(testing::conf_of({1, 2, 3}));
    Config cfg;
    cfg.id = 1;
    cfg.seed = seed;
    RawNode n(cfg, storage, null_logger());
    int ticks = 0;
    while (n.role() == Role::kFollower) {
      n.tick();
      ++ticks;
    }
    return ticks;
  };
  std::set<int> seen;
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    int t = timeout_of(seed);
    CHECK(t >= 10);
    CHECK(t < 20);
    CHECK(t == timeout_of(seed));
    seen.insert(t);
  }
  CHECK(seen.size() >= 8);  // actually spread out
  std::mt19937_64 rng(Catch::rngSeed());
  for (int i = 0; i < 1000; ++i) CHECK(uniform_below(rng, 7) < 7);
}

TEST_CASE(
    "a partitioned node's pre-vote fails without raising its term, so it does not "
    "disrupt the leader when it returns (dissertation §9.6)",
    "[raft][election][prevote]") {
  TestCluster c({1, 2, 3});
  c.start();
  c.campaign(1);
  REQUIRE(c.node(1).role() == Role::kLeader);
  c.isolate(3);
  for (int i = 0; i < 100; ++i) {
    c.node(3).tick();
    c.process(3);
    c.stabilize();
  }
  CHECK(c.node(3).term() == 1);
  c.heal();
  c.tick_all(5);
  CHECK(c.node(1).role() == Role::kLeader);
  CHECK(c.node(1).term() == 1);
}

TEST_CASE(
    "without pre-vote, a returning partitioned node with a higher term deposes the leader "
    "(the problem pre-vote solves)",
    "[raft][election][prevote]") {
  TestCluster c({1, 2, 3}, [](Config& cfg) {
    cfg.pre_vote = false;
    cfg.check_quorum = false;
  });
  c.start();
  c.campaign(1);
  REQUIRE(c.node(1).role() == Role::kLeader);
  c.isolate(3);
  for (int i = 0; i < 100; ++i) {
    c.node(3).tick();
    c.process(3);
    c.stabilize();
  }
  CHECK(c.node(3).term() > 2);
  c.heal();
  c.tick_all(25);
  CHECK(c.node(1).term() > 1);  // the leader learned a higher term
}

TEST_CASE(
    "a leader that has not heard from a majority for an election timeout steps down "
    "(check-quorum, dissertation §6.2)",
    "[raft][election][checkquorum]") {
  TestCluster c({1, 2, 3});
  c.start();
  c.campaign(1);
  REQUIRE(c.node(1).role() == Role::kLeader);
  c.tick_all(25);
  CHECK(c.node(1).role() == Role::kLeader);  // heartbeats keep it in office
  c.isolate(1);
  for (int i = 0; i < 25; ++i) {
    c.node(1).tick();
    c.process(1);
    c.stabilize();
  }
  CHECK(c.node(1).role() == Role::kFollower);
  CHECK(c.node(1).leader_id() == 0);
  CHECK_FALSE(c.node(1).propose("x").ok());
}

TEST_CASE(
    "followers ignore a vote request while they hear from a leader (lease, "
    "dissertation §4.2.3)",
    "[raft][election][checkquorum]") {
  TestCluster c({1, 2, 3});
  c.start();
  c.campaign(1);
  REQUIRE(c.node(2).leader_id() == 1);
  c.node(2).step(vote_request(3, 2, 5, 1, 1));
  CHECK(c.node(2).term() == 1);  // ignored, term unchanged
  CHECK(c.node(2).voted_for() == 1);
  CHECK(c.node(2).leader_id() == 1);
}

TEST_CASE("a stale leader learns the new term from the answer to its append (§5.1)",
          "[raft][election]") {
  TestCluster c({1, 2, 3});
  c.start();
  c.campaign(1);
  c.isolate(1);
  c.tick_all(30);  // 2 or 3 takes over; 1 stays isolated (and steps down by check-quorum)
  uint64_t new_leader = c.node(2).role() == Role::kLeader ? 2 : 3;
  REQUIRE(c.node(new_leader).role() == Role::kLeader);
  c.heal();
  raftpb::Message stale;
  stale.set_type(raftpb::MSG_HEARTBEAT);
  stale.set_from(1);
  stale.set_to(new_leader);
  stale.set_term(1);
  c.deliver(stale);
  REQUIRE(!c.queue().empty());
  CHECK(c.queue().back().type() == raftpb::MSG_APP_RESP);
  CHECK(c.queue().back().term() == c.node(new_leader).term());
}

TEST_CASE(
    "a node answers a lower-term append with its term even without check-quorum or pre-vote "
    "(Raft Figure 2)",
    "[raft][election]") {
  // Simulator seed 101679 (raft level, 3 nodes): a node restarted with a
  // stale configuration campaigned at ever higher terms among members that
  // had left, never asking the leader; the leader's heartbeats, at a lower
  // term, were ignored, so the node never rejoined and never applied again.
  TestCluster c({1, 2, 3}, [](Config& config) {
    config.check_quorum = false;
    config.pre_vote = false;
  });
  c.start();
  c.campaign(1);
  c.isolate(3);
  for (int i = 0; i < 100; ++i) {  // campaigns on its own, term after term
    c.node(3).tick();
    c.process(3);
    c.stabilize();
  }
  c.heal();
  REQUIRE(c.node(3).term() > c.node(1).term());
  raftpb::Message heartbeat;
  heartbeat.set_type(raftpb::MSG_HEARTBEAT);
  heartbeat.set_from(1);
  heartbeat.set_to(3);
  heartbeat.set_term(c.node(1).term());
  c.deliver(heartbeat);
  REQUIRE(!c.queue().empty());
  CHECK(c.queue().back().type() == raftpb::MSG_APP_RESP);
  CHECK(c.queue().back().to() == 1);
  CHECK(c.queue().back().term() == c.node(3).term());
}

TEST_CASE("a restarted node recovers term, vote, log and commit from storage",
          "[raft][durability]") {
  TestCluster c({1, 2, 3});
  c.start();
  c.campaign(1);
  REQUIRE(c.node(1).propose("a").ok());
  c.stabilize();
  c.tick_all(2);
  uint64_t term = c.node(2).term();
  uint64_t vote = c.node(2).voted_for();
  uint64_t commit = c.node(2).commit_index();
  c.restart(2);
  CHECK(c.node(2).term() == term);
  CHECK(c.node(2).voted_for() == vote);
  CHECK(c.node(2).commit_index() == commit);
  CHECK(c.node(2).last_index() == 2);
  c.process(2);
  REQUIRE(c.applied(2).size() == 2);  // re-applies from the start: no snapshot
  CHECK(c.applied(2)[1].data() == "a");
}

}  // namespace
}  // namespace fencelock::raft
