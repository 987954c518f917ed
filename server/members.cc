#include "server/members.h"

#include <optional>
#include <set>

#include "raft/membership.h"

namespace fencelock::server {

namespace {

const raftpb::Member* find_member(const raftpb::ConfState& conf, uint64_t id) {
  for (const auto& member : conf.members()) {
    if (member.id() == id) return &member;
  }
  return nullptr;
}

// The note of a request the configuration `conf` already satisfies (the
// node is a member with those addresses, a voter, not a member), or
// nullopt when it takes a change.
std::optional<std::string> already_done(const clientpb::Request& request,
                                        const raftpb::ConfState& conf) {
  switch (request.kind_case()) {
    case clientpb::Request::kMemberAdd: {
      const auto& add = request.member_add();
      const raftpb::Member* known = find_member(conf, add.id());
      if (raft::is_member(conf, add.id()) && known != nullptr &&
          known->peer_address() == add.peer_address() &&
          known->client_address() == add.client_address()) {
        return "node " + std::to_string(add.id()) + " is already a member";
      }
      return std::nullopt;
    }
    case clientpb::Request::kMemberPromote:
      if (raft::is_voter(conf, request.member_promote().id())) {
        return "node " + std::to_string(request.member_promote().id()) + " is already a voter";
      }
      return std::nullopt;
    case clientpb::Request::kMemberRemove:
      if (!raft::is_member(conf, request.member_remove().id())) {
        return "node " + std::to_string(request.member_remove().id()) + " is not a member";
      }
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

ErrorCode code_of(raft::Error error) {
  switch (error) {
    case raft::Error::kNotLeader:
      return lockpb::NOT_LEADER;
    case raft::Error::kTransferring:
    case raft::Error::kChangeInProgress:
      return lockpb::UNAVAILABLE;  // the client library retries these
    default:
      return lockpb::FAILED_PRECONDITION;
  }
}

}  // namespace

Members::Members(Env& env, Responder& responder, const NodeConfig& config,
                 std::shared_ptr<spdlog::logger> logger)
    : env_(env),
      responder_(responder),
      self_id_(config.id),
      self_client_address_(config.client_addr),
      fallback_peers_(config.peers),
      logger_(std::move(logger)) {}

void Members::on_conf_state(const raftpb::ConfState& conf, const std::vector<uint64_t>& leaving) {
  bool was_member = self_is_member();
  for (const auto& member : conf_.members()) {
    if (!raft::is_member(conf, member.id())) departed_[member.id()] = member.peer_address();
  }
  conf_ = conf;
  leaving_ = std::set<uint64_t>(leaving.begin(), leaving.end());
  if (was_member && !self_is_member()) {
    logger_->warn("{} is no longer a member of the cluster: it stops serving and campaigning",
                  self_id_);
  } else if (!was_member && self_is_member()) {
    logger_->info("{} is a {} of the cluster", self_id_,
                  raft::is_voter(conf_, self_id_) ? "voter" : "learner");
  }
  env_.set_peers(peer_addresses());
}

void Members::set_leaving(const std::vector<uint64_t>& leaving) {
  std::set<uint64_t> now(leaving.begin(), leaving.end());
  if (now == leaving_) return;
  leaving_ = std::move(now);
  env_.set_peers(peer_addresses());
}

bool Members::self_is_member() const { return raft::is_member(conf_, self_id_); }

std::string Members::client_address(uint64_t id) const {
  if (id == self_id_) return self_client_address_;
  const raftpb::Member* member = find_member(conf_, id);
  if (member != nullptr && !member->client_address().empty()) return member->client_address();
  return env_.peer_client_address(id);
}

std::map<uint64_t, std::string> Members::peer_addresses() const {
  // Until this node holds a configuration (it is joining), the members it
  // was told of, so it can answer the leader.
  if (conf_.voters_size() == 0 && conf_.learners_size() == 0) return fallback_peers_;
  std::map<uint64_t, std::string> out;
  auto add = [&](uint64_t id) {
    const raftpb::Member* member = find_member(conf_, id);
    if (member != nullptr && !member->peer_address().empty()) {
      out[id] = member->peer_address();
    } else if (auto it = fallback_peers_.find(id); it != fallback_peers_.end()) {
      out[id] = it->second;
    }
  };
  for (uint64_t id : conf_.voters()) add(id);
  for (uint64_t id : conf_.learners()) add(id);
  for (uint64_t id : leaving_) {
    if (auto it = departed_.find(id); it != departed_.end() && !it->second.empty()) {
      out[id] = it->second;
    } else {
      add(id);
    }
  }
  return out;
}

clientpb::MemberListResult Members::list(const raft::RawNode& raft) const {
  clientpb::MemberListResult result;
  std::map<uint64_t, raft::PeerProgress> progress;
  for (const auto& peer : raft.progress()) progress[peer.id] = peer;
  std::set<uint64_t> ids(conf_.voters().begin(), conf_.voters().end());
  ids.insert(conf_.learners().begin(), conf_.learners().end());
  auto addresses = peer_addresses();
  for (uint64_t id : ids) {
    auto* info = result.add_members();
    info->set_id(id);
    if (auto it = addresses.find(id); it != addresses.end()) info->set_peer_address(it->second);
    info->set_client_address(client_address(id));
    info->set_learner(raft::is_learner(conf_, id));
    info->set_leader(id == raft.leader_id());
    if (auto it = progress.find(id); it != progress.end()) {
      info->set_match_index(it->second.match_index);
      info->set_reachable(id == self_id_ || it->second.recent_active);
    }
  }
  result.set_leader_id(raft.leader_id());
  result.set_last_index(raft.last_index());
  result.set_commit_index(raft.commit_index());
  result.set_conf_index(raft.conf_index());
  result.set_conf_committed(raft.conf_index() <= raft.commit_index());
  return result;
}

void Members::answer_list(const Caller& caller, const raft::RawNode& raft, std::string note) {
  clientpb::Response response;
  response.set_message(std::move(note));
  *response.mutable_member_list() = list(raft);
  responder_.respond(caller, std::move(response));
}

void Members::handle(raft::RawNode& raft, bool leader, const Caller& caller,
                     const clientpb::Request& request) {
  if (!leader) {
    responder_.not_leader(caller);
    return;
  }
  // Every answer below but the list reads the configuration, and some are
  // final: "already a voter" to a retry whose first attempt is still in the
  // log would be lost with that entry if another leader overwrote it. So
  // only a committed configuration answers (propose_conf_change refuses
  // while one is pending anyway), and it is the core's latest, not conf_,
  // which follows Ready::conf_state and can be a Ready behind.
  const raftpb::ConfState& conf = raft.conf_state();
  bool change_request = request.kind_case() == clientpb::Request::kMemberAdd ||
                        request.kind_case() == clientpb::Request::kMemberPromote ||
                        request.kind_case() == clientpb::Request::kMemberRemove;
  if (change_request && raft.conf_index() > raft.commit_index()) {
    responder_.error(caller, lockpb::UNAVAILABLE,
                     "the membership change at index " + std::to_string(raft.conf_index()) +
                         " is not committed yet; retry");
    return;
  }
  raftpb::ConfChange change;
  switch (request.kind_case()) {
    case clientpb::Request::kMemberList:
      answer_list(caller, raft);
      return;
    case clientpb::Request::kMemberAdd: {
      const auto& add = request.member_add();
      if (add.id() == 0 || add.peer_address().empty() || add.client_address().empty()) {
        responder_.error(caller, lockpb::INVALID_ARGUMENT,
                         "member add needs a positive id, a peer address and a client address");
        return;
      }
      if (already_done(request, conf)) {
        confirm(raft, caller, request);
        return;
      }
      if (raft::is_member(conf, add.id())) {
        responder_.error(caller, lockpb::FAILED_PRECONDITION,
                         "node " + std::to_string(add.id()) +
                             " is already a member with other addresses; remove it first");
        return;
      }
      for (const auto& member : conf.members()) {
        if (member.peer_address() == add.peer_address() ||
            member.client_address() == add.client_address()) {
          responder_.error(caller, lockpb::FAILED_PRECONDITION,
                           "node " + std::to_string(member.id()) + " already uses that address");
          return;
        }
      }
      change.set_type(raftpb::ConfChange::ADD_LEARNER);
      change.set_node_id(add.id());
      change.mutable_member()->set_id(add.id());
      change.mutable_member()->set_peer_address(add.peer_address());
      change.mutable_member()->set_client_address(add.client_address());
      break;
    }
    case clientpb::Request::kMemberPromote: {
      uint64_t id = request.member_promote().id();
      if (already_done(request, conf)) {
        confirm(raft, caller, request);
        return;
      }
      if (!raft::is_learner(conf, id)) {
        responder_.error(caller, lockpb::NOT_FOUND,
                         "node " + std::to_string(id) + " is not a learner; add it first");
        return;
      }
      uint64_t match = raft.match_index(id).value_or(0);
      if (match + kPromoteMaxLag < raft.last_index()) {
        responder_.error(caller, lockpb::FAILED_PRECONDITION,
                         "learner " + std::to_string(id) + " is not caught up: it holds index " +
                             std::to_string(match) + " of " + std::to_string(raft.last_index()) +
                             "; retry once it is within " + std::to_string(kPromoteMaxLag));
        return;
      }
      change.set_type(raftpb::ConfChange::ADD_VOTER);
      change.set_node_id(id);
      break;
    }
    case clientpb::Request::kMemberRemove: {
      uint64_t id = request.member_remove().id();
      if (already_done(request, conf)) {
        confirm(raft, caller, request);
        return;
      }
      if (id == self_id_) {
        remove_leader(raft, caller);
        return;
      }
      change.set_type(raftpb::ConfChange::REMOVE_NODE);
      change.set_node_id(id);
      break;
    }
    default:
      responder_.error(caller, lockpb::UNKNOWN_REQUEST, "not a member request");
      return;
  }
  propose(raft, caller, change);
}

void Members::refuse(const Caller& caller, const raft::Status& status) {
  if (status.code() == raft::Error::kNotLeader) {
    responder_.not_leader(caller);
  } else {
    responder_.error(caller, code_of(status.code()), status.message());
  }
}

void Members::propose(raft::RawNode& raft, const Caller& caller, const raftpb::ConfChange& change) {
  auto proposed = raft.propose_conf_change(change);
  if (!proposed.ok()) {
    refuse(caller, proposed.status());
    return;
  }
  remember(proposed.value(), Pending{caller, proposed.value().term, std::nullopt});
}

void Members::confirm(raft::RawNode& raft, const Caller& caller, const clientpb::Request& request) {
  // This leader may have been deposed without knowing it yet, its
  // configuration a stale prefix (a node it never saw added "is not a
  // member"). An entry of its term that commits proves it led then; the
  // answer is decided against the configuration at that entry.
  auto proposed = raft.propose("");
  if (!proposed.ok()) {
    refuse(caller, proposed.status());
    return;
  }
  remember(proposed.value(), Pending{caller, proposed.value().term, request});
}

void Members::remember(const raft::ProposalId& id, Pending pending) {
  auto [it, inserted] = pending_.try_emplace(id.index, pending);
  if (!inserted) {
    // An older proposal at this index was overwritten by another leader's.
    responder_.error(it->second.caller, lockpb::UNAVAILABLE,
                     "the membership change was lost in a leader change; retry");
    it->second = std::move(pending);
  }
}

void Members::remove_leader(raft::RawNode& raft, const Caller& caller) {
  uint64_t best = 0;
  uint64_t best_match = 0;
  for (const auto& peer : raft.progress()) {
    if (peer.id == self_id_ || peer.learner || !raft::is_voter(raft.conf_state(), peer.id)) continue;
    if (best == 0 || peer.match_index > best_match) {
      best = peer.id;
      best_match = peer.match_index;
    }
  }
  if (best == 0) {
    responder_.error(caller, lockpb::FAILED_PRECONDITION,
                     "node " + std::to_string(self_id_) + " is the last voter");
    return;
  }
  raft::Status status = raft.transfer_leadership(best);
  if (!status.ok()) {
    responder_.error(caller, code_of(status.code()), status.message());
    return;
  }
  responder_.error(caller, lockpb::UNAVAILABLE,
                   "node " + std::to_string(self_id_) + " leads: handing leadership to node " +
                       std::to_string(best) + " before it is removed; retry");
}

void Members::applied(const raftpb::Entry& entry, const raft::RawNode& raft) {
  // Changes proposed at earlier indices lost them to another leader's entries.
  while (!pending_.empty() && pending_.begin()->first < entry.index()) {
    responder_.error(pending_.begin()->second.caller, lockpb::UNAVAILABLE,
                     "the membership change was lost in a leader change; retry");
    pending_.erase(pending_.begin());
  }
  auto it = pending_.find(entry.index());
  if (it == pending_.end()) return;
  Pending pending = it->second;
  pending_.erase(it);
  if (pending.term != entry.term()) {
    responder_.error(pending.caller, lockpb::UNAVAILABLE,
                     "the membership change was lost in a leader change; retry");
    return;
  }
  if (pending.check) {
    auto note = already_done(*pending.check, raft.conf_state_at(entry.index()));
    if (!note) {
      responder_.error(pending.caller, lockpb::UNAVAILABLE,
                       "the membership changed while the request was checked; retry");
      return;
    }
    answer_list(pending.caller, raft, *note);
    return;
  }
  answer_list(pending.caller, raft);
}

}  // namespace fencelock::server
