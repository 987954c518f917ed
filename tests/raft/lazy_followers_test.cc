// Prompt and lazy followers (Config::lazy_followers, Ready::persist_lazily):
// which appends the leader marks lazy_persist, when a follower's Ready may
// be persisted late, and how a prompt follower that stops answering is
// replaced.
#include <catch2/catch.hpp>

#include "tests/raft/test_cluster.h"

namespace fencelock::raft {
namespace {

using testing::entry;
using testing::TestCluster;

bool prompt(RawNode& leader, uint64_t peer) {
  for (const auto& p : leader.progress()) {
    if (p.id == peer) return p.prompt;
  }
  FAIL("no progress for " << peer);
  return false;
}

// The appends node 1 queues for `to` after a proposal, not yet delivered.
std::vector<raftpb::Message> appends_after_proposal(TestCluster& c, uint64_t to) {
  REQUIRE(c.node(1).propose("x").ok());
  c.process(1);
  std::vector<raftpb::Message> out;
  for (const auto& m : c.queue()) {
    if (m.type() == raftpb::MSG_APP && m.to() == to && m.entries_size() > 0) out.push_back(m);
  }
  return out;
}

raftpb::Message append(uint64_t from, uint64_t to, uint64_t term, uint64_t prev, bool lazy) {
  raftpb::Message m;
  m.set_type(raftpb::MSG_APP);
  m.set_from(from);
  m.set_to(to);
  m.set_term(term);
  m.set_index(prev);
  m.set_log_term(prev == 0 ? 0 : term);
  *m.add_entries() = entry(prev + 1, term);
  m.set_lazy_persist(lazy);
  return m;
}

TEST_CASE(
    "a leader of three counts on the first follower to answer and marks its appends to the "
    "other lazy",
    "[raft][lazy]") {
  TestCluster c({1, 2, 3});
  c.start();
  c.campaign(1);
  REQUIRE(c.node(1).role() == Role::kLeader);
  // The FIFO network delivers node 2's answers first.
  CHECK(prompt(c.node(1), 2));
  CHECK_FALSE(prompt(c.node(1), 3));
  auto to2 = appends_after_proposal(c, 2);
  auto to3 = appends_after_proposal(c, 3);
  REQUIRE_FALSE(to2.empty());
  REQUIRE_FALSE(to3.empty());
  for (const auto& m : to2) CHECK_FALSE(m.lazy_persist());
  for (const auto& m : to3) CHECK(m.lazy_persist());
  // The lazy follower still gets and acknowledges everything.
  c.stabilize();
  CHECK(c.storage(3).last_index() == c.storage(1).last_index());
  CHECK(c.node(1).match_index(3) == c.storage(1).last_index());
}

TEST_CASE("a leader of five counts on two followers and marks appends to the other two lazy",
          "[raft][lazy]") {
  TestCluster c({1, 2, 3, 4, 5});
  c.start();
  c.campaign(1);
  REQUIRE(c.node(1).role() == Role::kLeader);
  int prompt_count = 0;
  for (uint64_t peer : {2, 3, 4, 5}) prompt_count += prompt(c.node(1), peer) ? 1 : 0;
  CHECK(prompt_count == 2);
  REQUIRE(c.node(1).propose("x").ok());
  c.process(1);
  int lazy = 0, eager = 0;
  for (const auto& m : c.queue()) {
    if (m.type() != raftpb::MSG_APP || m.entries_size() == 0) continue;
    (m.lazy_persist() ? lazy : eager) += 1;
    CHECK(m.lazy_persist() == !prompt(c.node(1), m.to()));
  }
  CHECK(lazy == 2);
  CHECK(eager == 2);
}

TEST_CASE(
    "a prompt follower that misses a heartbeat round is replaced by the next to acknowledge "
    "everything committed",
    "[raft][lazy]") {
  TestCluster c({1, 2, 3});
  c.start();
  c.campaign(1);
  REQUIRE(prompt(c.node(1), 2));
  c.isolate(2);
  // Two heartbeat rounds (heartbeat_ticks is 1): the second finds node 2
  // silent since the first.
  for (int i = 0; i < 2; ++i) {
    c.node(1).tick();
    c.process(1);
    c.stabilize();
  }
  // The place is empty: nobody is lazy until a follower acknowledges
  // everything committed again. A heartbeat answer does not qualify.
  for (const auto& m : appends_after_proposal(c, 3)) CHECK_FALSE(m.lazy_persist());
  CHECK(prompt(c.node(1), 2));
  CHECK(prompt(c.node(1), 3));
  c.stabilize();  // node 3 acknowledges the proposal
  CHECK_FALSE(prompt(c.node(1), 2));
  CHECK(prompt(c.node(1), 3));
  for (const auto& m : appends_after_proposal(c, 3)) CHECK_FALSE(m.lazy_persist());
  for (const auto& m : appends_after_proposal(c, 2)) CHECK(m.lazy_persist());
  // Commits go on with node 3 alone.
  c.stabilize();
  CHECK(c.node(1).commit_index() == c.storage(1).last_index());
}

TEST_CASE("while fewer than quorum-1 followers are prompt, no append is lazy", "[raft][lazy]") {
  // Node 1 campaigns; before any follower has answered it as leader, its
  // first appends (the no-op) are all prompt.
  TestCluster d({1, 2, 3}, [](Config& cfg) { cfg.pre_vote = false; });
  d.start();
  for (int i = 0; i < 100 && d.node(1).role() != Role::kCandidate; ++i) {
    d.node(1).tick();
    d.process(1);
  }
  REQUIRE(d.node(1).role() == Role::kCandidate);
  // Deliver only the votes, then look at the leader's first appends.
  while (!d.queue().empty() && d.node(1).role() != Role::kLeader) {
    raftpb::Message m = d.queue().front();
    d.queue().pop_front();
    d.deliver(m);
  }
  REQUIRE(d.node(1).role() == Role::kLeader);
  int appends = 0;
  for (const auto& m : d.queue()) {
    if (m.type() != raftpb::MSG_APP || m.from() != 1) continue;
    ++appends;
    CHECK_FALSE(m.lazy_persist());
  }
  CHECK(appends == 2);
}

TEST_CASE("a follower that is behind does not take the place of a prompt one", "[raft][lazy]") {
  TestCluster c({1, 2, 3}, [](Config& cfg) {
    cfg.pre_vote = false;
    cfg.check_quorum = false;  // so node 3 may unseat a live leader
  });
  c.start();
  c.campaign(1);
  for (int i = 0; i < 5; ++i) REQUIRE(c.node(1).propose("x").ok());
  c.stabilize();
  // Node 2 misses entries; node 1 loses leadership to node 3, whose first
  // answers come from node 2 rejecting (it is behind) and node 1.
  c.isolate(2);
  for (int i = 0; i < 5; ++i) REQUIRE(c.node(1).propose("y").ok());
  c.stabilize();
  c.heal();
  c.campaign(3);
  REQUIRE(c.node(3).role() == Role::kLeader);
  // Whoever answered first, the one chosen had everything committed.
  size_t prompt_count = 0;
  for (uint64_t peer : {1, 2}) {
    if (prompt(c.node(3), peer) && !prompt(c.node(3), peer == 1 ? 2 : 1)) {
      ++prompt_count;
      CHECK(c.node(3).match_index(peer) >= c.node(3).commit_index());
    }
  }
  CHECK(prompt_count == 1);
}

TEST_CASE("with lazy_followers off, no append is lazy", "[raft][lazy]") {
  TestCluster c({1, 2, 3}, [](Config& cfg) { cfg.lazy_followers = false; });
  c.start();
  c.campaign(1);
  for (uint64_t peer : {2, 3}) CHECK(prompt(c.node(1), peer));
  for (const auto& m : appends_after_proposal(c, 3)) CHECK_FALSE(m.lazy_persist());
}

TEST_CASE(
    "a follower may persist lazily only entries that all came lazy, owing only acknowledgements",
    "[raft][lazy]") {
  TestCluster c({1, 2, 3});
  c.start();
  RawNode& n = c.node(2);

  SECTION("a lazy append") {
    REQUIRE(n.step(append(1, 2, 1, 0, true)).ok());
    Ready rd = n.ready();
    CHECK(rd.persist_lazily);
    CHECK(rd.entries.size() == 1);
    n.advance();
  }
  SECTION("a prompt append") {
    REQUIRE(n.step(append(1, 2, 1, 0, false)).ok());
    Ready rd = n.ready();
    CHECK_FALSE(rd.persist_lazily);
    n.advance();
  }
  SECTION("a lazy and a prompt append in one Ready") {
    REQUIRE(n.step(append(1, 2, 1, 0, true)).ok());
    REQUIRE(n.step(append(1, 2, 1, 1, false)).ok());
    Ready rd = n.ready();
    CHECK_FALSE(rd.persist_lazily);
    CHECK(rd.entries.size() == 2);
    n.advance();
  }
  SECTION("the flag lasts one Ready") {
    REQUIRE(n.step(append(1, 2, 1, 0, false)).ok());
    Ready first = n.ready();
    CHECK_FALSE(first.persist_lazily);
    c.storage(2).append(first.entries);
    if (first.hard_state) c.storage(2).set_hard_state(*first.hard_state);
    n.advance();
    REQUIRE(n.step(append(1, 2, 1, 1, true)).ok());
    Ready rd = n.ready();
    CHECK(rd.persist_lazily);
    n.advance();
  }
  SECTION("a vote owed in the same Ready") {
    REQUIRE(n.step(append(1, 2, 1, 0, true)).ok());
    raftpb::Message vote;
    vote.set_type(raftpb::MSG_VOTE);
    vote.set_from(3);
    vote.set_to(2);
    vote.set_term(5);
    vote.set_index(1);
    vote.set_log_term(1);
    vote.set_context("CampaignTransfer");  // past the leader lease
    REQUIRE(n.step(vote).ok());
    Ready rd = n.ready();
    CHECK_FALSE(rd.persist_lazily);
    n.advance();
  }
  SECTION("nothing new to write") {
    raftpb::Message heartbeat;
    heartbeat.set_type(raftpb::MSG_HEARTBEAT);
    heartbeat.set_from(1);
    heartbeat.set_to(2);
    heartbeat.set_term(1);
    REQUIRE(n.step(heartbeat).ok());
    Ready rd = n.ready();
    CHECK_FALSE(rd.persist_lazily);
    n.advance();
  }
}

}  // namespace
}  // namespace fencelock::raft
