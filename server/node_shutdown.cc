// Node's graceful shutdown (server/node.h): a leader hands leadership to
// the most up-to-date follower, then the node waits (bounded) for its
// proposals in flight to be applied before it stops.

#include <spdlog/spdlog.h>

#include "server/node.h"

namespace fencelock::server {

namespace {
// How long a graceful shutdown waits for leadership to move and in-flight
// proposals to be applied.
constexpr auto kShutdownGrace = std::chrono::seconds(3);
}  // namespace

void Node::shutdown(std::function<void()> done) {
  if (driver_.defer([this, done] { shutdown(done); })) return;
  if (shutting_down_ || shutdown_done_) return;
  shutting_down_ = true;
  shutdown_done_ = std::move(done);
  shutdown_deadline_ = env_.now() + kShutdownGrace;
  if (raft_->role() != raft::Role::kLeader || raft_->voters().size() <= 1) {
    logger_->info("{} shutting down", config_.id);
    return;
  }
  uint64_t best = 0;
  uint64_t best_match = 0;
  for (const auto& progress : raft_->progress()) {
    if (progress.id == config_.id) continue;
    if (best == 0 || progress.match_index > best_match) {
      best = progress.id;
      best_match = progress.match_index;
    }
  }
  if (best == 0) return;
  logger_->info("{} shutting down: transferring leadership to {}", config_.id, best);
  raft::Status status = raft_->transfer_leadership(best);
  transferring_ = status.ok();
  if (!status.ok()) {
    logger_->warn("{} leadership transfer failed: {}", config_.id, status.to_string());
  }
  schedule_ready();
}

void Node::finish_shutdown_if_done(SteadyTime now) {
  bool moved = !transferring_ || !leader();
  bool drained = requests_.pending_proposals() == 0;
  if (!(moved && drained) && now < shutdown_deadline_) return;
  if (!drained) {
    logger_->warn("{} shutting down with {} proposals not yet applied", config_.id,
                  requests_.pending_proposals());
  }
  shutting_down_ = false;
  env_.stop();
  auto done = std::move(shutdown_done_);
  if (done) env_.post(std::move(done));
}

}  // namespace fencelock::server
