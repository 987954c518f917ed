// Peer messages from the network (raft/message_check.h): check_message
// drops what no correct node sends, and RawNode::step refuses, without
// aborting, what would break its log even when the check is bypassed.
#include <catch2/catch.hpp>

#include "raft/membership.h"
#include "raft/message_check.h"
#include "tests/raft/test_cluster.h"

namespace fencelock::raft {
namespace {

using testing::add_learner;
using testing::add_voter;
using testing::remove_node;
using testing::Start;
using testing::TestCluster;

// A message built from named fields.
struct Msg {
  raftpb::MessageType type = raftpb::MSG_HEARTBEAT;
  uint64_t from = 1;
  uint64_t to = 2;
  uint64_t term = 0;
  uint64_t index = 0;
  uint64_t log_term = 0;
  uint64_t commit = 0;
  bool reject = false;

  raftpb::Message build() const {
    raftpb::Message m;
    m.set_type(type);
    m.set_from(from);
    m.set_to(to);
    m.set_term(term);
    m.set_index(index);
    m.set_log_term(log_term);
    m.set_commit(commit);
    m.set_reject(reject);
    return m;
  }
};

void add_entry(raftpb::Message& m, uint64_t index, uint64_t term,
               raftpb::EntryType type = raftpb::ENTRY_NORMAL) {
  raftpb::Entry* e = m.add_entries();
  e->set_index(index);
  e->set_term(term);
  e->set_type(type);
}

// A started 3-node cluster with leader 1 and a few entries committed everywhere.
struct StartedCluster {
  TestCluster c{{1, 2, 3}, [](Config& cfg) {
                  cfg.pre_vote = false;
                  cfg.check_quorum = false;
                }};
  StartedCluster() {
    c.start();
    c.campaign(1);
    REQUIRE(c.node(1).role() == Role::kLeader);
    for (int i = 0; i < 3; ++i) REQUIRE(c.node(1).propose("x").ok());
    c.stabilize();
    c.tick_all(1);
  }
  ~StartedCluster() { CHECK(c.refused().empty()); }
  uint64_t term() { return c.node(1).term(); }
};

MessageFault fault_of(const raftpb::Message& m, const ReceiverView& r) {
  MessageCheck check = check_message(m, r);
  INFO(check.reason);
  return check.fault;
}

// ------------------------------------------------------------ the reported crash

TEST_CASE(
    "a heartbeat of a newer term committing 2^62 is dropped by the follower, which stays up "
    "(the issue's crafted heartbeat; it tripped CoreLog::commit_to's check)",
    "[raft][message_check]") {
  StartedCluster s;
  RawNode& follower = s.c.node(2);
  const uint64_t term = follower.term();
  const uint64_t commit = follower.commit_index();
  raftpb::Message m =
      Msg{.type = raftpb::MSG_HEARTBEAT, .from = 3, .to = 2, .term = term + 1,
          .commit = uint64_t{1} << 62}
          .build();

  CHECK(check_message(m, follower).fault == MessageFault::kIndexOutOfRange);
  // Stepped anyway (the check bypassed), the core drops it: no abort, no change.
  Status status = follower.step(m);
  CHECK(status.code() == Error::kInvalidMessage);
  CHECK(follower.term() == term);
  CHECK(follower.commit_index() == commit);
  CHECK(follower.leader_id() == 1);

  // The cluster goes on committing.
  REQUIRE(s.c.node(1).propose("after").ok());
  s.c.stabilize();
  s.c.tick_all(1);
  CHECK(follower.commit_index() == s.c.node(1).commit_index());
}

TEST_CASE("an acknowledgement beyond the leader's log is dropped: it would count toward a commit",
          "[raft][message_check]") {
  StartedCluster s;
  RawNode& leader = s.c.node(1);
  const uint64_t last = leader.last_index();
  raftpb::Message m = Msg{.type = raftpb::MSG_APP_RESP, .from = 2, .to = 1, .term = s.term(),
                          .index = last + 1000}
                          .build();
  CHECK(check_message(m, leader).fault == MessageFault::kIndexOutOfRange);
  // Stepped, it would have made 2's match index last + 1000, and the
  // leader would have wanted a snapshot it does not have (an abort).
  CHECK(leader.step(m).code() == Error::kInvalidMessage);
  CHECK(leader.match_index(2) == last);
}

TEST_CASE("entries that do not follow the append's index are dropped, never overwrite a commit",
          "[raft][message_check]") {
  StartedCluster s;
  RawNode& follower = s.c.node(2);
  const uint64_t committed = follower.commit_index();
  REQUIRE(committed >= 2);
  raftpb::Message m = Msg{.type = raftpb::MSG_APP, .from = 1, .to = 2, .term = s.term(),
                          .index = follower.last_index(),
                          .log_term = s.term(), .commit = committed}
                          .build();
  // Claims index 1 with a new term: it would replace a committed entry.
  add_entry(m, 1, s.term());
  CHECK(check_message(m, follower).fault == MessageFault::kBadEntries);
  CHECK(follower.step(m).code() == Error::kInvalidMessage);
  CHECK(follower.commit_index() == committed);
  CHECK(s.c.storage(2).term(1) == s.c.storage(1).term(1));
}

TEST_CASE("a term near 2^64 is dropped: term + 1 would wrap", "[raft][message_check]") {
  StartedCluster s;
  raftpb::Message m =
      Msg{.type = raftpb::MSG_VOTE, .from = 3, .to = 2, .term = ~uint64_t{0}}.build();
  CHECK(check_message(m, s.c.node(2)).fault == MessageFault::kTermOutOfRange);
  CHECK(s.c.node(2).step(m).code() == Error::kInvalidMessage);
  CHECK(s.c.node(2).term() == s.term());
}

// ------------------------------------------------------------ each rule

TEST_CASE("check_message: type, recipient and sender", "[raft][message_check]") {
  ReceiverView r{.id = 2, .term = 5, .last_index = 10, .leader = false};
  CHECK(fault_of(Msg{.type = raftpb::MSG_NONE, .term = 5}.build(), r) == MessageFault::kUnknownType);
  raftpb::Message unknown = Msg{.term = 5}.build();
  unknown.set_type(static_cast<raftpb::MessageType>(99));
  CHECK(fault_of(unknown, r) == MessageFault::kUnknownType);
  CHECK(fault_of(Msg{.type = raftpb::MSG_PROP, .term = 5}.build(), r) == MessageFault::kNotFromPeer);
  CHECK(fault_of(Msg{.to = 3, .term = 5}.build(), r) == MessageFault::kWrongRecipient);
  CHECK(fault_of(Msg{.from = 0, .term = 5}.build(), r) == MessageFault::kBadSender);
  CHECK(fault_of(Msg{.from = 2, .term = 5}.build(), r) == MessageFault::kBadSender);
  // A sender the receiver's configuration does not name is not refused:
  // a lagging follower's new leader, a joiner's first leader (see header).
  CHECK(fault_of(Msg{.from = 42, .term = 5}.build(), r) == MessageFault::kNone);
}

TEST_CASE("check_message: terms", "[raft][message_check]") {
  ReceiverView r{.id = 2, .term = 5, .last_index = 10};
  CHECK(fault_of(Msg{.term = 5 + kMaxTermAhead}.build(), r) == MessageFault::kNone);
  CHECK(fault_of(Msg{.term = 6 + kMaxTermAhead}.build(), r) == MessageFault::kTermOutOfRange);
  ReceiverView old{.id = 2, .term = kMaxTerm - 1, .last_index = 10};
  CHECK(fault_of(Msg{.term = kMaxTerm + 1}.build(), old) == MessageFault::kTermOutOfRange);
  // Stale: answered on type and term alone, whatever the rest says.
  CHECK(fault_of(Msg{.term = 4, .commit = uint64_t{1} << 62}.build(), r) == MessageFault::kNone);
  // A forwarded read has no term and is read anyway.
  CHECK(fault_of(Msg{.type = raftpb::MSG_READ_INDEX, .term = 0}.build(), r) == MessageFault::kNone);
  CHECK(fault_of(Msg{.type = raftpb::MSG_READ_INDEX, .term = 0, .index = kMaxIndex + 1}.build(),
                 r) == MessageFault::kIndexOutOfRange);
}

TEST_CASE("check_message: a heartbeat commits at most the receiver's last index",
          "[raft][message_check]") {
  ReceiverView r{.id = 2, .term = 5, .last_index = 10};
  CHECK(fault_of(Msg{.term = 5, .commit = 10}.build(), r) == MessageFault::kNone);
  CHECK(fault_of(Msg{.term = 6, .commit = 10}.build(), r) == MessageFault::kNone);
  CHECK(fault_of(Msg{.term = 5, .commit = 11}.build(), r) == MessageFault::kCommitOutOfRange);
  CHECK(fault_of(Msg{.term = 6, .commit = uint64_t{1} << 62}.build(), r) ==
        MessageFault::kIndexOutOfRange);
  raftpb::Message with_entries = Msg{.term = 5}.build();
  add_entry(with_entries, 1, 5);
  CHECK(fault_of(with_entries, r) == MessageFault::kBadEntries);
}

TEST_CASE("check_message: an append's index, log term and entries", "[raft][message_check]") {
  ReceiverView r{.id = 2, .term = 5, .last_index = 10};
  Msg base{.type = raftpb::MSG_APP, .term = 5, .index = 10, .log_term = 4, .commit = 12};
  raftpb::Message ok = base.build();
  add_entry(ok, 11, 4);
  add_entry(ok, 12, 5, raftpb::ENTRY_CONF_CHANGE);
  // The leader's commit may exceed what it sends (the core takes the min).
  CHECK(fault_of(ok, r) == MessageFault::kNone);

  raftpb::Message gap = base.build();
  add_entry(gap, 12, 4);
  CHECK(fault_of(gap, r) == MessageFault::kBadEntries);
  raftpb::Message repeat = base.build();
  add_entry(repeat, 11, 4);
  add_entry(repeat, 11, 4);
  CHECK(fault_of(repeat, r) == MessageFault::kBadEntries);
  raftpb::Message future = base.build();
  add_entry(future, 11, 6);
  CHECK(fault_of(future, r) == MessageFault::kBadEntries);
  raftpb::Message backwards = base.build();
  add_entry(backwards, 11, 3);
  CHECK(fault_of(backwards, r) == MessageFault::kBadEntries);
  raftpb::Message bad_type = base.build();
  add_entry(bad_type, 11, 4, static_cast<raftpb::EntryType>(7));
  CHECK(fault_of(bad_type, r) == MessageFault::kBadEntries);

  Msg late_log_term = base;
  late_log_term.log_term = 6;
  CHECK(fault_of(late_log_term.build(), r) == MessageFault::kIndexOutOfRange);
  Msg far = base;
  far.index = kMaxIndex;
  raftpb::Message overflow = far.build();
  add_entry(overflow, kMaxIndex + 1, 4);
  CHECK(fault_of(overflow, r) == MessageFault::kIndexOutOfRange);
}

TEST_CASE("check_message: a leader's acknowledgements stay within its log",
          "[raft][message_check]") {
  ReceiverView leader{.id = 1, .term = 5, .last_index = 10, .leader = true};
  Msg ack{.type = raftpb::MSG_APP_RESP, .from = 2, .to = 1, .term = 5, .index = 10};
  CHECK(fault_of(ack.build(), leader) == MessageFault::kNone);
  ack.index = 11;
  CHECK(fault_of(ack.build(), leader) == MessageFault::kIndexOutOfRange);
  // A rejection names the rejected index and a hint, both checked against 2^60 only.
  Msg rejection = ack;
  rejection.reject = true;
  rejection.index = 50;
  CHECK(fault_of(rejection.build(), leader) == MessageFault::kNone);
  // A leader that stepped down and restarted (not leader): the core ignores it.
  ReceiverView follower{.id = 1, .term = 5, .last_index = 10, .leader = false};
  CHECK(fault_of(ack.build(), follower) == MessageFault::kNone);
}

TEST_CASE("check_message: a snapshot's metadata", "[raft][message_check]") {
  ReceiverView r{.id = 2, .term = 5, .last_index = 10};
  auto snap = [](uint64_t index, uint64_t term, std::vector<uint64_t> voters,
                 std::vector<uint64_t> learners = {}) {
    raftpb::Message m = Msg{.type = raftpb::MSG_SNAP, .term = 5}.build();
    auto* meta = m.mutable_snapshot()->mutable_metadata();
    meta->set_index(index);
    meta->set_term(term);
    for (uint64_t id : voters) meta->mutable_conf_state()->add_voters(id);
    for (uint64_t id : learners) meta->mutable_conf_state()->add_learners(id);
    return m;
  };
  CHECK(fault_of(snap(20, 4, {1, 2, 3}, {4}), r) == MessageFault::kNone);
  CHECK(fault_of(Msg{.type = raftpb::MSG_SNAP, .term = 5}.build(), r) == MessageFault::kBadSnapshot);
  CHECK(fault_of(snap(0, 4, {1}), r) == MessageFault::kBadSnapshot);
  CHECK(fault_of(snap(kMaxIndex + 1, 4, {1}), r) == MessageFault::kBadSnapshot);
  CHECK(fault_of(snap(20, 6, {1}), r) == MessageFault::kBadSnapshot);
  CHECK(fault_of(snap(20, 0, {1}), r) == MessageFault::kBadSnapshot);
  CHECK(fault_of(snap(20, 4, {1, 0}), r) == MessageFault::kBadSnapshot);
  CHECK(fault_of(snap(20, 4, {1, 1}), r) == MessageFault::kBadSnapshot);
  CHECK(fault_of(snap(20, 4, {1, 2}, {2}), r) == MessageFault::kBadSnapshot);
  raftpb::Message twice = snap(20, 4, {1, 2});
  for (int i = 0; i < 2; ++i) twice.mutable_snapshot()->mutable_metadata()->mutable_conf_state()->add_members()->set_id(2);
  CHECK(fault_of(twice, r) == MessageFault::kBadSnapshot);
}

// ------------------------------------------------------------ legitimate traffic

TEST_CASE(
    "membership change traffic passes the check: joiners, learners, promotions, removals and a "
    "removed leader's hand-over",
    "[raft][message_check][membership]") {
  TestCluster c({1, 2, 3},
                [](Config& cfg) {
                  cfg.pre_vote = false;
                  cfg.check_quorum = false;
                },
                Start::kBootstrapEntries);
  c.start();
  c.campaign(1);
  auto change = [&](uint64_t leader, const raftpb::ConfChange& cc) {
    auto result = c.node(leader).propose_conf_change(cc);
    INFO(result.status().to_string());
    REQUIRE(result.ok());
    c.stabilize();
    c.tick_all(2);
  };
  for (uint64_t id : {4, 5}) {
    c.add_joiner(id);
    change(1, add_learner(id));
    change(1, add_voter(id));
  }
  change(1, remove_node(2));
  REQUIRE(c.node(1).transfer_leadership(4).ok());
  c.stabilize();
  REQUIRE(c.node(4).role() == Role::kLeader);
  change(4, remove_node(1));
  c.tick_all(3);
  // A node cut off while it leads campaigns at ever higher terms when it
  // comes back (no pre-vote): its vote requests and the answers pass too.
  c.isolate(5);
  c.tick_all(30);
  c.heal();
  c.tick_all(30);
  for (uint64_t id : {3, 4, 5}) CHECK(c.node(id).voters() == std::set<uint64_t>{3, 4, 5});
  INFO(fmt::format("{}", fmt::join(c.refused(), "; ")));
  CHECK(c.refused().empty());
}

}  // namespace
}  // namespace fencelock::raft
