#include "tests/sim/node/sim_operator.h"

#include <fmt/format.h>

#include <iterator>

namespace fencelock::sim {

namespace {

using std::chrono::milliseconds;

// How many MemberList polls the operator waits for a learner to catch up
// before asking for its promotion anyway (the leader refuses a learner too
// far behind, and the operator then asks again).
constexpr int kCatchUpPolls = 20;
// A learner this close to the leader's last index is caught up.
constexpr uint64_t kCaughtUpLag = 5;

template <typename Set>
uint64_t nth(const Set& set, uint64_t n) {
  return *std::next(set.begin(), static_cast<long>(n));
}

}  // namespace

SimOperator::SimOperator(OperatorHost& host, SimClient& client, SimOperatorOptions options)
    : host_(host), client_(client), options_(std::move(options)), rng_(options_.seed) {
  voters_.insert(options_.founders.begin(), options_.founders.end());
}

void SimOperator::trace(const std::string& line) { host_.trace("operator: " + line); }

void SimOperator::after_ms(uint64_t ms, Then then) {
  host_.at(host_.now() + ms * 1000, std::move(then));
}

void SimOperator::start() {
  host_.at(options_.start_at, [this] {
    trace(fmt::format("starts: voters {}, min {} max {}, {} fresh ids", fmt::join(voters_, ","),
                      options_.min_voters, options_.max_voters, options_.fresh_ids.size()));
    next();
  });
}

void SimOperator::heal() {
  healed_ = true;
  if (!busy_) finish();
}

void SimOperator::until_ok(clientpb::Request request, std::string what,
                           std::function<void(const clientpb::Response&)> then) {
  client_.request(request, milliseconds(0),
                  [this, request, what, then](const clientpb::Response& response) {
                    if (response.code() == lockpb::OK) {
                      then(response);
                      return;
                    }
                    trace(fmt::format("{} answered {}: {}; asks again", what,
                                      lockpb::ErrorCode_Name(response.code()), response.message()));
                    after_ms(20 + pick(200), [this, request, what, then] {
                      until_ok(request, what, then);
                    });
                  });
}

void SimOperator::list(std::function<void(const clientpb::MemberListResult&)> then) {
  clientpb::Request request;
  request.mutable_member_list();
  until_ok(request, "member list", [this, then](const clientpb::Response& response) {
    last_list_ = response.member_list();
    then(response.member_list());
  });
}

std::map<uint64_t, std::string> SimOperator::peers_from(const clientpb::MemberListResult& list) const {
  std::map<uint64_t, std::string> peers;
  for (const auto& member : list.members()) peers[member.id()] = member.peer_address();
  return peers;
}

// --- Choosing what to do -------------------------------------------------------------

void SimOperator::next() {
  busy_ = false;
  if (healed_) {
    finish();
    return;
  }
  busy_ = true;
  auto then = [this] {
    after_ms(options_.pause_min_ms + pick(options_.pause_span_ms), [this] { next(); });
  };
  size_t voters = voters_.size();
  bool fresh = next_fresh_ < options_.fresh_ids.size();
  if (!learners_.empty() && chance(60)) {
    uint64_t learner = nth(learners_, pick(learners_.size()));
    if (voters < options_.max_voters && chance(75)) {
      trace(fmt::format("promotes the learner {}", learner));
      catch_up(learner, kCatchUpPolls, [this, learner, then] { promote(learner, then); });
    } else {
      trace(fmt::format("removes the learner {}", learner));
      remove(learner, then);
    }
    return;
  }
  uint64_t roll = pick(100);
  if (roll < 35 && fresh && voters < options_.max_voters) {
    // Grow: add, and usually promote.
    add([this, then](uint64_t id) {
      if (chance(85)) {
        catch_up(id, kCatchUpPolls, [this, id, then] { promote(id, then); });
      } else {
        then();  // left a learner for now
      }
    });
  } else if (roll < 65 && voters > options_.min_voters) {
    remove_some_voter(then);
  } else if (roll < 90 && fresh) {
    // Replace a voter: the new one first, unless that would make too many.
    if (voters < options_.max_voters) {
      add([this, then](uint64_t id) {
        catch_up(id, kCatchUpPolls, [this, id, then] {
          promote(id, [this, then] { remove_some_voter(then); });
        });
      });
    } else {
      remove_some_voter([this, then] {
        add([this, then](uint64_t id) {
          catch_up(id, kCatchUpPolls, [this, id, then] { promote(id, then); });
        });
      });
    }
  } else {
    list([this, then](const clientpb::MemberListResult& list) {
      trace(fmt::format("lists {} members, leader {}, conf index {}", list.members_size(),
                        list.leader_id(), list.conf_index()));
      then();
    });
  }
}

void SimOperator::finish() {
  busy_ = true;
  trace(fmt::format("asks for the final member list: voters {} learners {}",
                    fmt::join(voters_, ","), fmt::join(learners_, ",")));
  ask_final();
}

void SimOperator::ask_final() {
  list([this](const clientpb::MemberListResult& list) { judge_final(list); });
}

void SimOperator::judge_final(const clientpb::MemberListResult& list) {
  switch (host_.final_list(list)) {
    case OperatorHost::Verdict::kDone:
      done_ = true;
      trace("done");
      return;
    case OperatorHost::Verdict::kAskAgain:
      after_ms(50, [this] { ask_final(); });
      return;
    case OperatorHost::Verdict::kWait:
      // The same list, once the members have applied more.
      after_ms(10, [this, list] { judge_final(list); });
      return;
  }
}

// --- The operations ------------------------------------------------------------------

void SimOperator::add(std::function<void(uint64_t)> then) {
  uint64_t id = options_.fresh_ids[next_fresh_++];
  std::string address = node_address(id);
  auto send = [this, id, address, then](bool started) {
    clientpb::Request request;
    request.mutable_member_add()->set_id(id);
    request.mutable_member_add()->set_peer_address(address);
    request.mutable_member_add()->set_client_address(address);
    trace(fmt::format("adds node {} as a learner", id));
    host_.change_under_way(id);
    until_ok(request, fmt::format("add of node {}", id),
             [this, id, started, then](const clientpb::Response& response) {
               ++adds_;
               learners_.insert(id);
               trace(fmt::format("node {} is a learner", id));
               if (!started) {
                 // As fencelockd --join: the members it was told of, itself included.
                 host_.start_joiner(id, peers_from(response.member_list()));
               }
               then(id);
             });
  };
  if (chance(30)) {
    // The new node runs before it is added: it waits, knowing the members.
    list([this, id, address, send](const clientpb::MemberListResult& list) {
      auto peers = peers_from(list);
      peers[id] = address;
      host_.start_joiner(id, peers);
      send(true);
    });
  } else {
    send(false);
  }
}

void SimOperator::catch_up(uint64_t id, int polls, Then then) {
  list([this, id, polls, then](const clientpb::MemberListResult& list) {
    uint64_t match = 0;
    for (const auto& member : list.members()) {
      if (member.id() == id) match = member.match_index();
    }
    if (match + kCaughtUpLag >= list.last_index() || polls <= 0) {
      trace(fmt::format("learner {} holds {} of {}", id, match, list.last_index()));
      then();
      return;
    }
    after_ms(50 + pick(150), [this, id, polls, then] { catch_up(id, polls - 1, then); });
  });
}

void SimOperator::promote(uint64_t id, Then then) {
  clientpb::Request request;
  request.mutable_member_promote()->set_id(id);
  trace(fmt::format("promotes node {}", id));
  host_.change_under_way(id);
  until_ok(request, fmt::format("promotion of node {}", id), [this, id, then](const clientpb::Response&) {
    ++promotes_;
    learners_.erase(id);
    voters_.insert(id);
    trace(fmt::format("node {} is a voter", id));
    then();
  });
}

void SimOperator::remove_some_voter(Then then) {
  // Learns the leader first: sometimes it is the one to go.
  list([this, then](const clientpb::MemberListResult& list) {
    if (voters_.size() <= 1) {
      then();
      return;
    }
    uint64_t id = nth(voters_, pick(voters_.size()));
    if (voters_.contains(list.leader_id()) && chance(40)) id = list.leader_id();
    bool leader = id == list.leader_id();
    remove(id, [this, leader, then] {
      if (leader) ++leader_removals_;
      then();
    });
  });
}

void SimOperator::remove(uint64_t id, Then then) {
  clientpb::Request request;
  request.mutable_member_remove()->set_id(id);
  trace(fmt::format("removes node {}{}", id,
                    last_list_ && last_list_->leader_id() == id ? " (the leader, as it last knew)" : ""));
  host_.change_under_way(id);
  until_ok(request, fmt::format("removal of node {}", id), [this, id, then](const clientpb::Response&) {
    ++removes_;
    voters_.erase(id);
    learners_.erase(id);
    removed_.insert(id);
    trace(fmt::format("node {} is removed", id));
    host_.removed(id);
    then();
  });
}

}  // namespace fencelock::sim
