// Log replication and commitment: Raft §5.3 and §5.4.2 (Figures 7 and 8),
// the Ready persist-before-send contract, batching, pipelining, byte limits.
#include <catch2/catch.hpp>

#include "tests/raft/test_cluster.h"

namespace fencelock::raft {
namespace {

using testing::entry;
using testing::log_with_terms;
using testing::TestCluster;

void no_pre_vote(Config& cfg) {
  cfg.pre_vote = false;
  cfg.check_quorum = false;
}

raftpb::Message append_response(uint64_t from, uint64_t to, uint64_t term, uint64_t index) {
  raftpb::Message m;
  m.set_type(raftpb::MSG_APP_RESP);
  m.set_from(from);
  m.set_to(to);
  m.set_term(term);
  m.set_index(index);
  return m;
}

TEST_CASE(
    "a follower rejects an append whose previous entry does not match, hinting where to "
    "retry (§5.3)",
    "[raft][replication]") {
  TestCluster c({1, 2, 3});
  c.preload(2, log_with_terms({1, 1, 2, 2, 2}), 3);
  c.start();
  raftpb::Message m;
  m.set_type(raftpb::MSG_APP);
  m.set_from(1);
  m.set_to(2);
  m.set_term(3);
  m.set_index(7);
  m.set_log_term(3);
  *m.add_entries() = entry(8, 3);
  c.deliver(m);
  REQUIRE(c.queue().size() == 1);
  const raftpb::Message& resp = c.queue().front();
  CHECK(resp.type() == raftpb::MSG_APP_RESP);
  CHECK(resp.reject());
  CHECK(resp.index() == 7);
  CHECK(resp.reject_hint() == 5);  // our last entry; its term 2 <= 3
  CHECK(resp.log_term() == 2);
  CHECK(c.storage(2).last_index() == 5);  // nothing appended
}

TEST_CASE(
    "the leader brings every follower of Figure 7 into agreement with its log (§5.3), "
    "backtracking a term at a time",
    "[raft][replication][figure7]") {
  const std::vector<uint64_t> leader_log = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6};
  const std::vector<std::vector<uint64_t>> followers = {
      {1, 1, 1, 4, 4, 5, 5, 6, 6},           // (a) missing one entry
      {1, 1, 1, 4},                          // (b) missing many
      {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6},     // (c) an extra uncommitted entry
      {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7},  // (d) extra entries of a later term
      {1, 1, 1, 4, 4, 4, 4},                 // (e) missing and extra
      {1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3},     // (f) a leader of terms 2 and 3 that never replicated
  };
  for (size_t f = 0; f < followers.size(); ++f) {
    CAPTURE(f);
    TestCluster c({1, 2, 3}, no_pre_vote);
    c.preload(1, log_with_terms(leader_log), 7);
    c.preload(2, log_with_terms(followers[f]), 7);
    c.preload(3, {}, 7);  // votes for 1: the follower may have the more up-to-date log
    c.start();
    int rejections = 0;
    c.set_drop([&](const raftpb::Message& m) {
      if (m.type() == raftpb::MSG_APP_RESP && m.from() == 2 && m.reject()) ++rejections;
      return false;
    });
    c.campaign(1);
    REQUIRE(c.node(1).role() == Role::kLeader);
    REQUIRE(c.node(1).term() == 8);
    REQUIRE(c.node(1).propose("x").ok());
    c.stabilize();
    std::vector<uint64_t> expected = leader_log;
    expected.push_back(8);  // the leader's no-op
    expected.push_back(8);  // the proposal
    CHECK(c.terms_of(2) == expected);
    CHECK(c.terms_of(3) == expected);
    CHECK(rejections <= 2);  // the hint skips whole terms
  }
}

// Figure 8 of the Raft paper, with S1..S5 as nodes 1..5.
void figure8_setup(TestCluster& c) {
  // (b)/(c): S1 led term 2 and put index 2 on S1 and S2; S5 led term 3 and
  // wrote index 2 only locally; S3 got S1's entry later.
  c.preload(1, log_with_terms({1, 2}), 3, 0, 1);
  c.preload(2, log_with_terms({1, 2}), 3, 0, 1);
  c.preload(3, log_with_terms({1, 2}), 3, 0, 1);
  c.preload(4, log_with_terms({1}), 3, 0, 1);
  c.preload(5, log_with_terms({1, 3}), 3, 0, 1);
  c.start();
  // S1 wins term 4 with S2, S3, S4 (S5's log is more up to date than S1's).
  // Its own-term entry (the no-op at index 3) reaches nobody yet.
  c.set_drop([](const raftpb::Message& m) { return m.type() == raftpb::MSG_APP; });
  c.campaign(1);
  REQUIRE(c.node(1).role() == Role::kLeader);
  REQUIRE(c.node(1).term() == 4);
  // S2 and S3 acknowledge index 2: the term-2 entry is now on a majority.
  c.deliver(append_response(2, 1, 4, 2));
  c.deliver(append_response(3, 1, 4, 2));
}

TEST_CASE(
    "a leader never commits a previous-term entry by counting replicas (§5.4.2, "
    "Figure 8)",
    "[raft][replication][figure8]") {
  TestCluster c({1, 2, 3, 4, 5}, no_pre_vote);
  figure8_setup(c);
  CHECK(c.node(1).commit_index() == 1);  // index 2 is on a majority but not committed

  // (d): S1 crashes; S5 is elected by S2, S3, S4 and overwrites index 2.
  c.set_drop(nullptr);
  c.isolate(1);
  c.campaign(5);  // term 4: everyone already voted for S1
  if (c.node(5).role() != Role::kLeader) c.campaign(5);
  REQUIRE(c.node(5).role() == Role::kLeader);
  CHECK(c.terms_of(2) == std::vector<uint64_t>{1, 3, 5});
  CHECK(c.terms_of(3) == std::vector<uint64_t>{1, 3, 5});
  // Had S1 committed index 2, a committed entry would now be lost.
}

TEST_CASE(
    "with the §5.4.2 rule disabled (test-only bug), the Figure 8 leader commits an entry "
    "a later leader overwrites",
    "[raft][replication][figure8]") {
  TestCluster c({1, 2, 3, 4, 5}, [](Config& cfg) {
    no_pre_vote(cfg);
    cfg.test_only_inject_bug = InjectedBug::kCommitPreviousTermByCounting;
  });
  figure8_setup(c);
  CHECK(c.node(1).commit_index() == 2);  // the bug: committed by counting
  c.set_drop(nullptr);
  c.isolate(1);
  c.campaign(5);
  if (c.node(5).role() != Role::kLeader) c.campaign(5);
  REQUIRE(c.node(5).role() == Role::kLeader);
  CHECK(c.terms_of(2)[1] == 3);  // the "committed" term-2 entry is gone
}

TEST_CASE(
    "a previous-term entry commits once an entry of the leader's term is on a majority "
    "(§5.4.2, Figure 8 (e))",
    "[raft][replication][figure8]") {
  TestCluster c({1, 2, 3, 4, 5}, no_pre_vote);
  figure8_setup(c);
  c.set_drop([](const raftpb::Message& m) { return m.to() == 4 || m.to() == 5; });
  c.deliver(append_response(2, 1, 4, 3));
  c.deliver(append_response(3, 1, 4, 3));
  CHECK(c.node(1).commit_index() == 3);  // index 3 (term 4) and with it index 2
  // (e): now S5 can never win: a majority holds a term-4 entry.
  c.set_drop(nullptr);
  c.stabilize();
  c.isolate(1);
  for (int i = 0; i < 3; ++i) c.campaign(5);
  CHECK(c.node(5).role() != Role::kLeader);
}

TEST_CASE(
    "messages promising durable state wait for the persist; the leader's appends do not "
    "(Ready contract)",
    "[raft][ready]") {
  TestCluster c({1, 2, 3}, no_pre_vote);
  c.start();
  RawNode& n1 = c.node(1);
  while (n1.role() == Role::kFollower) n1.tick();
  Ready rd = n1.ready();
  REQUIRE(rd.hard_state);
  CHECK(rd.hard_state->vote() == 1);
  CHECK(rd.messages.empty());  // vote requests imply our vote for ourselves is durable
  CHECK(rd.messages_after_persist.size() == 2);
  c.storage(1).set_hard_state(*rd.hard_state);
  n1.advance();
  for (auto& m : rd.messages_after_persist) c.deliver(m);
  // Vote answers: after persist.
  std::vector<raftpb::Message> answers(c.queue().begin(), c.queue().end());
  c.queue().clear();
  REQUIRE(answers.size() == 2);
  for (auto& m : answers) CHECK(m.type() == raftpb::MSG_VOTE_RESP);
  (void)n1.step(answers[0]);
  REQUIRE(n1.role() == Role::kLeader);
  Ready lead = n1.ready();
  REQUIRE(lead.entries.size() == 1);  // the no-op, to persist
  CHECK(lead.messages.size() == 2);   // ... while its appends may go out already
  for (auto& m : lead.messages) CHECK(m.type() == raftpb::MSG_APP);
  CHECK(lead.messages_after_persist.empty());
  CHECK(lead.committed_entries.empty());
  c.storage(1).append(lead.entries);
  n1.advance();
  // A follower's acknowledgement waits for its persist.
  (void)c.node(2).step(lead.messages[0]);
  Ready follower = c.node(2).ready();
  CHECK(follower.entries.size() == 1);
  CHECK(follower.messages.empty());
  REQUIRE(follower.messages_after_persist.size() == 1);
  CHECK(follower.messages_after_persist[0].type() == raftpb::MSG_APP_RESP);
  c.node(2).advance();
}

TEST_CASE("the leader counts itself in the commit quorum only after advance() (persisted)",
          "[raft][ready]") {
  TestCluster c({1});
  c.start();
  c.campaign(1);
  REQUIRE(c.node(1).role() == Role::kLeader);
  auto id = c.node(1).propose("a");
  REQUIRE(id.ok());
  Ready rd = c.node(1).ready();
  REQUIRE(rd.entries.size() == 1);
  CHECK(rd.committed_entries.empty());
  CHECK(c.node(1).commit_index() == id.value().index - 1);
  c.storage(1).append(rd.entries);
  c.node(1).advance();
  CHECK(c.node(1).commit_index() == id.value().index);
  Ready next = c.node(1).ready();
  REQUIRE(next.committed_entries.size() == 1);
  CHECK(next.committed_entries[0].data() == "a");
  c.node(1).advance();
}

TEST_CASE("propose returns the entry's index and term on the leader, NOT_LEADER elsewhere",
          "[raft][propose]") {
  TestCluster c({1, 2, 3});
  c.start();
  CHECK(c.node(1).propose("x").code() == Error::kNotLeader);
  c.campaign(1);
  auto a = c.node(1).propose("a");
  auto b = c.node(1).propose("b");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a.value() == ProposalId{2, 1});
  CHECK(b.value() == ProposalId{3, 1});
  auto f = c.node(2).propose("c");
  CHECK(f.code() == Error::kNotLeader);
  CHECK(f.status().message() == "leader is 1");
  c.stabilize();
  REQUIRE(c.applied(1).size() == 3);
  CHECK(c.applied(1)[2].index() == 3);
  CHECK(c.applied(1)[2].data() == "b");
  c.tick_all(1);  // followers learn the commit from the heartbeat
  REQUIRE(c.applied(3).size() == 3);
  CHECK(c.applied(3)[2].data() == "b");
}

TEST_CASE(
    "a new commit index rides on the next append or heartbeat, never on an empty append of its "
    "own",
    "[raft][commit]") {
  TestCluster c({1, 2, 3});
  c.start();
  c.campaign(1);
  c.tick_all(1);
  size_t followers_applied = c.applied(2).size();
  std::vector<raftpb::Message> sent;
  c.set_drop([&](const raftpb::Message& m) {
    sent.push_back(m);
    return false;
  });
  REQUIRE(c.node(1).propose("a").ok());
  c.stabilize();
  // The leader applied "a"; followers hold it but were not told it committed.
  CHECK(c.applied(1).back().data() == "a");
  CHECK(c.applied(2).size() == followers_applied);
  for (const auto& m : sent) {
    if (m.type() == raftpb::MSG_APP) CHECK(m.entries_size() > 0);
  }
  // The next proposal's append carries the commit of "a".
  sent.clear();
  REQUIRE(c.node(1).propose("b").ok());
  c.stabilize();
  bool carried = false;
  for (const auto& m : sent) {
    if (m.type() == raftpb::MSG_APP && m.entries_size() > 0 && m.entries(0).data() == "b") {
      carried = carried || m.commit() >= m.index();
    }
  }
  CHECK(carried);
  REQUIRE(c.applied(2).size() == followers_applied + 1);
  CHECK(c.applied(2).back().data() == "a");
  // At rest, the heartbeat carries the commit of "b".
  c.tick_all(1);
  CHECK(c.applied(2).back().data() == "b");
  CHECK(c.applied(3).back().data() == "b");
}

TEST_CASE(
    "proposals made between two ready() calls go out as one append per follower "
    "(batching)",
    "[raft][batching]") {
  TestCluster c({1, 2, 3});
  c.start();
  c.campaign(1);
  for (int i = 0; i < 5; ++i) REQUIRE(c.node(1).propose("p" + std::to_string(i)).ok());
  Ready rd = c.node(1).ready();
  CHECK(rd.entries.size() == 5);
  REQUIRE(rd.messages.size() == 2);
  for (const auto& m : rd.messages) {
    CHECK(m.type() == raftpb::MSG_APP);
    CHECK(m.entries_size() == 5);
  }
  c.storage(1).append(rd.entries);
  c.node(1).advance();
}

TEST_CASE(
    "a replicating follower gets up to max_inflight_msgs appends without waiting for "
    "acknowledgements (pipelining)",
    "[raft][pipelining]") {
  TestCluster c({1, 2, 3}, [](Config& cfg) { cfg.max_inflight_msgs = 3; });
  c.start();
  c.campaign(1);
  int appends_to_2 = 0, appends_to_3 = 0;
  c.set_drop([&](const raftpb::Message& m) {
    if (m.type() == raftpb::MSG_APP && m.entries_size() > 0) {
      if (m.to() == 2) ++appends_to_2;
      if (m.to() == 3) ++appends_to_3;
    }
    return m.type() == raftpb::MSG_APP_RESP && m.from() == 2;  // 2 never acknowledges
  });
  for (int i = 0; i < 6; ++i) {
    REQUIRE(c.node(1).propose("p").ok());
    c.stabilize();
  }
  CHECK(appends_to_2 == 3);
  CHECK(appends_to_3 == 6);
  auto progress = c.node(1).progress();
  REQUIRE(progress.size() == 3);
  CHECK(progress[1].state == ProgressState::kReplicate);
  CHECK(progress[1].match_index == 1);
  CHECK(c.node(1).match_index(3) == 7u);
  CHECK(c.node(1).commit_index() == 7);  // 1 and 3 are a majority
}

TEST_CASE("an append carries at most max_size_per_msg bytes of entries (at least one entry)",
          "[raft][flowcontrol]") {
  TestCluster c({1, 2, 3}, [](Config& cfg) { cfg.max_size_per_msg = 1000; });
  c.start();
  c.campaign(1);
  c.isolate(2);
  for (int i = 0; i < 10; ++i) REQUIRE(c.node(1).propose(std::string(300, 'a' + i)).ok());
  c.stabilize();
  c.heal();
  size_t largest = 0;
  c.set_drop([&](const raftpb::Message& m) {
    if (m.type() == raftpb::MSG_APP) {
      uint64_t bytes = 0;
      for (const auto& e : m.entries()) bytes += e.ByteSizeLong();
      if (m.entries_size() > 1) CHECK(bytes <= 1000);
      largest = std::max(largest, static_cast<size_t>(m.entries_size()));
    }
    return false;
  });
  c.tick_all(3);
  CHECK(largest == 3);
  CHECK(c.storage(2).last_index() == 11);
  CHECK(c.terms_of(2) == c.terms_of(1));
}

}  // namespace
}  // namespace fencelock::raft

namespace fencelock::raft {
namespace {

TEST_CASE(
    "a Ready must be synced when it writes entries or changes the term or vote, not for a "
    "commit index alone (Figure 2's persistent state)",
    "[raft][ready]") {
  TestCluster c({1, 2, 3}, no_pre_vote);
  c.start();
  RawNode& n1 = c.node(1);
  for (int i = 0; i < 100 && n1.role() == Role::kFollower; ++i) n1.tick();
  REQUIRE(n1.role() == Role::kCandidate);
  Ready campaign = n1.ready();
  CHECK(campaign.must_sync);  // a new term and a vote for itself
  CHECK(campaign.hard_state.has_value());
  c.storage(1).set_hard_state(*campaign.hard_state);
  for (auto& m : campaign.messages_after_persist) c.queue().push_back(m);
  n1.advance();
  c.stabilize();
  REQUIRE(n1.role() == Role::kLeader);

  REQUIRE(n1.propose("x").ok());
  Ready append = n1.ready();
  CHECK(append.must_sync);  // entries
  CHECK_FALSE(append.entries.empty());
  c.storage(1).append(append.entries);
  for (auto& m : append.messages) c.queue().push_back(m);
  n1.advance();
  // The followers' acknowledgements commit the entry: the next Ready moves
  // the commit index only.
  while (!c.queue().empty()) {
    raftpb::Message m = c.queue().front();
    c.queue().pop_front();
    if (m.to() == 1) {
      REQUIRE(n1.step(m).ok());
    } else {
      c.deliver(m);
    }
  }
  Ready commit = n1.ready();
  REQUIRE(commit.hard_state.has_value());
  CHECK(commit.hard_state->commit() == n1.last_index());
  CHECK(commit.entries.empty());
  CHECK_FALSE(commit.must_sync);
  n1.advance();
}

}  // namespace
}  // namespace fencelock::raft
