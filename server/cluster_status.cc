// Node::cluster_status: this member's view of the cluster, for the
// ClusterStatus request (fencelock status).
#include <map>
#include <set>

#include "server/node.h"

namespace fencelock::server {

clientpb::ClusterStatusResult Node::cluster_status() const {
  clientpb::ClusterStatusResult result;
  result.set_self_id(config_.id);
  result.set_dropped_peer_messages(peer_guard_.stats().dropped);
  std::map<uint64_t, raft::PeerProgress> progress;
  for (auto& peer : raft_->progress()) progress[peer.id] = peer;
  std::set<uint64_t> ids(raft_->voters().begin(), raft_->voters().end());
  ids.insert(raft_->learners().begin(), raft_->learners().end());
  ids.insert(config_.id);  // a removed node or a joiner still reports itself
  for (uint64_t id : ids) {
    auto* member = result.add_members();
    member->set_id(id);
    member->set_address(members_.client_address(id));
    bool learner = raft_->learners().contains(id);
    if (id == config_.id) {
      std::string role(raft::role_name(raft_->role()));
      if (!members_.self_is_member()) role = "removed";
      if (learner) role = "learner";
      member->set_role(role);
      member->set_term(raft_->term());
      member->set_commit_index(raft_->commit_index());
      member->set_applied_index(applied_index_);
      member->set_reachable(true);
      continue;
    }
    member->set_role(id == soft_state_.leader_id ? "leader" : learner ? "learner" : "follower");
    member->set_term(id == soft_state_.leader_id ? raft_->term() : 0);
    if (auto it = progress.find(id); it != progress.end()) {
      member->set_commit_index(it->second.match_index);
      member->set_persist(it->second.prompt ? "prompt" : "lazy");
    }
    member->set_reachable(env_.peer_connected(id));
  }
  return result;
}

}  // namespace fencelock::server
