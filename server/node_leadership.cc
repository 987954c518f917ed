// Node's leadership and membership changes: what a node does when the
// leader it knows, its role or the configuration changes (the core's
// SoftState and ConfState), and the record of leader changes its metrics
// keep.
#include "server/node.h"

namespace fencelock::server {

void Node::on_soft_state(const raft::SoftState& soft) {
  bool was_leader = leader();
  bool is_leader = soft.role == raft::Role::kLeader;
  follow_term();  // before the line below: a new leader comes with a new term
  if (soft.leader_id != soft_state_.leader_id) {
    logger_->info("{} leader is now {} at term {}", config_.id, soft.leader_id, raft_->term());
    note_leader(soft.leader_id);
  }
  soft_state_ = soft;
  responder_.set_leader(soft.leader_id);
  if (is_leader && !was_leader) {
    timers_.take_office(env_.now(), state_, raft_->term());
  }
  if (was_leader && !is_leader) {
    timers_.clear();
    reads_.fail_unconfirmed();
    // Retries carry the same (session, sequence): one whose original does
    // commit is answered with the recorded result. A node shutting down
    // handed leadership to an up-to-date follower: its proposals commit,
    // and it waits for them (docs/operations.md).
    if (!shutting_down_) requests_.fail_proposals("leadership lost; retry");
  }
}

void Node::note_leader(uint64_t leader_id) {
  if (leader_id != 0) {
    uint64_t last_known = 0;
    for (const LeaderChange& change : metrics_.recent_leaders) {
      if (change.leader_id != 0) last_known = change.leader_id;
    }
    if (leader_id != last_known) ++metrics_.leader_changes;
  }
  metrics_.recent_leaders.push_back(LeaderChange{env_.now(), raft_->term(), leader_id});
  if (metrics_.recent_leaders.size() > NodeMetrics::kRecentLeaderChanges) {
    metrics_.recent_leaders.pop_front();
  }
}

void Node::on_conf_state(const raftpb::ConfState& conf) {
  bool was_member = members_.self_is_member();
  members_.on_conf_state(conf, raft_->leaving());
  if (was_member && !members_.self_is_member()) {
    // Removed: the leader stops sending this node the log once the removal
    // commits, so a wait registered here (while it led) would never be
    // answered, or be answered by a node that no longer serves. Its client
    // asks the leader again, which answers with the wait's outcome.
    requests_.fail_waits("node " + std::to_string(config_.id) + " left the cluster; retry");
  }
}

}  // namespace fencelock::server
