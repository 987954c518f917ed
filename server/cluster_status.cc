// Node::cluster_status: this member's view of the cluster, for the
// ClusterStatus request (fencelock status).
#include <map>

#include "server/node.h"

namespace fencelock::server {

clientpb::ClusterStatusResult Node::cluster_status() const {
  clientpb::ClusterStatusResult result;
  result.set_self_id(config_.id);
  std::map<uint64_t, raft::PeerProgress> progress;
  for (auto& peer : raft_->progress()) progress[peer.id] = peer;
  for (const auto& [id, address] : config_.peers) {
    auto* member = result.add_members();
    member->set_id(id);
    member->set_address(address);
    if (id == config_.id) {
      member->set_role(std::string(raft::role_name(raft_->role())));
      member->set_term(raft_->term());
      member->set_commit_index(raft_->commit_index());
      member->set_applied_index(applied_index_);
      member->set_reachable(true);
      member->set_address(config_.client_addr);
      continue;
    }
    std::string client_address = env_.peer_client_address(id);
    if (!client_address.empty()) member->set_address(client_address);
    member->set_role(id == soft_state_.leader_id ? "leader" : "follower");
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
