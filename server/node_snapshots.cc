// Node's state machine snapshots (server/node.h): taking one off the loop
// (maybe_snapshot, continue_snapshot, finish_snapshot), and installing one
// from the leader (try_snapshot before the step, restore after it).

#include <spdlog/spdlog.h>

#include <set>

#include "common/check.h"
#include "server/node.h"
#include "storage/snapshot_file.h"

namespace fencelock::server {

namespace {

// Locks a snapshot's image takes per turn of the loop: a few ms of walking
// a large, scattered lock table (docs/design.md, "Durability").
constexpr size_t kImageSliceLocks = 4096;

double as_ms(SteadyClock::duration duration) {
  return std::chrono::duration<double, std::milli>(duration).count();
}

}  // namespace

// What a state machine snapshot taken off the loop carries from one step to
// the next (maybe_snapshot, continue_snapshot, the Env's background thread,
// finish_snapshot).
struct Node::SnapshotJob {
  storage::SnapshotTicket ticket;
  raftpb::ConfState conf_state;
  // Taken and destroyed on the loop; the background work only reads it.
  sm::LockStateMachine::Image image;
  // Set by the background work.
  std::shared_ptr<const std::string> data;
  Status status;
  SteadyTime started;
  // The loop's share: the image's slices, the longest of them.
  SteadyClock::duration image_on_loop{};
  SteadyClock::duration longest_slice{};
  SteadyClock::duration last_slice{};
  int slices = 0;
  SteadyTime handed_off;
};

void Node::SnapshotJobDeleter::operator()(SnapshotJob* job) const { delete job; }

bool Node::try_snapshot(const raftpb::Message& message) {
  trial_.reset();
  const raftpb::SnapshotMetadata& meta = message.snapshot().metadata();
  // The cases RawNode::restore ignores: no restore will follow.
  if (message.term() < raft_->term() || meta.index() <= raft_->commit_index()) return true;
  auto state = std::make_unique<sm::LockStateMachine>(config_.limits);
  sm::Status status = state->restore(message.snapshot().data());
  if (!status.ok()) {
    peer_guard_.drop(message, raft::MessageFault::kBadSnapshot,
                     "its data does not restore: " + status.to_string(), *raft_, env_.now());
    return false;
  }
  trial_ = TrialSnapshot{meta.index(), meta.term(), std::move(state)};
  return true;
}
void Node::restore(const raftpb::Snapshot& snapshot) {
  if (trial_ && trial_->index == snapshot.metadata().index() &&
      trial_->term == snapshot.metadata().term()) {
    // Restored before the step (try_snapshot); LockStateMachine::restore
    // ends in the same move.
    state_ = std::move(*trial_->state);
  } else {
    sm::Status status = state_.restore(snapshot.data());
    FL_CHECK(status.ok(), "{} snapshot at index {} from the leader does not restore: {}",
             config_.id, snapshot.metadata().index(), status.to_string());
  }
  trial_.reset();
  ++metrics_.snapshots_installed;
  last_snapshot_index_ = snapshot.metadata().index();
  applied_index_ = std::max(applied_index_, snapshot.metadata().index());
  if (applied_index_ == snapshot.metadata().index()) applied_term_ = snapshot.metadata().term();
  std::set<uint64_t> pending;
  for (const auto& wait : state_.pending_waits()) pending.insert(wait.wait_id);
  requests_.fail_after_snapshot(snapshot.metadata().index(), pending);
  lock_stats_.restored(env_.now(), state_);
  logger_->info("{} restored snapshot at index {} term {}", config_.id, snapshot.metadata().index(),
                snapshot.metadata().term());
  env_.restored(snapshot.metadata());
  if (leader()) timers_.take_office(env_.now(), state_, raft_->term());
}
void Node::maybe_snapshot() {
  if (snapshot_job_ || applied_index_ < last_snapshot_index_ + config_.snapshot_every) return;
  // The synced write that records the snapshot (finish_snapshot) makes the
  // commit index written before it durable too, so a restart never finds a
  // snapshot beyond its commit.
  driver_.flush_commit();
  Result<storage::SnapshotTicket> ticket = log_.begin_snapshot(applied_index_);
  FL_CHECK(ticket.ok(), "{} cannot take a snapshot at {}: {}", config_.id, applied_index_,
           ticket.status().to_string());
  std::unique_ptr<SnapshotJob, SnapshotJobDeleter> job(new SnapshotJob());
  job->ticket = ticket.value();
  // The configuration in force at the snapshot's index, not the latest: a
  // later change may not be committed yet (TEST ONLY: the latest, with
  // kSnapshotLatestConf).
  job->conf_state = config_.test_only_inject_bug == InjectedBug::kSnapshotLatestConf
                        ? raft_->conf_state()
                        : raft_->conf_state_at(applied_index_);
  job->started = env_.now();
  state_.begin_image();
  job->image_on_loop = env_.now() - job->started;
  job->longest_slice = job->image_on_loop;
  snapshot_job_ = std::move(job);
  continue_snapshot();
}

void Node::continue_snapshot() {
  SnapshotJob& job = *snapshot_job_;
  const SteadyTime start = env_.now();
  const bool walked = state_.continue_image(kImageSliceLocks);
  const SteadyClock::duration slice = env_.now() - start;
  job.image_on_loop += slice;
  job.longest_slice = std::max(job.longest_slice, slice);
  job.last_slice = slice;
  ++job.slices;
  if (!walked) {
    // The next slice after whatever is queued: requests, messages, writes.
    env_.post([this] { continue_snapshot(); });
    return;
  }
  job.image = state_.take_image();
  // The work sees the job, not the node; the job lives until done.
  job.handed_off = env_.now();
  handing_off_snapshot_ = true;
  env_.run_in_background(
      [job = &job, &log = log_] {
        auto data = std::make_shared<const std::string>(job->image.encode());
        job->status = log.write_snapshot(job->ticket, *data);
        job->data = std::move(data);
      },
      [this] { finish_snapshot(); });
  handing_off_snapshot_ = false;
}

void Node::finish_snapshot() {
  // Recording it writes the log, which a write in flight may be using.
  if (driver_.defer([this] { finish_snapshot(); })) return;
  auto job = std::move(snapshot_job_);
  FL_CHECK(job, "{} finishes a snapshot it did not start", config_.id);
  const size_t sessions = job->image.session_count();
  const size_t locks = job->image.lock_count();
  job->image = {};  // on the loop, as the state machine requires
  const uint64_t index = job->ticket.index;
  FL_CHECK(job->status.ok(), "{} cannot save snapshot at {}: {}", config_.id, index,
           job->status.to_string());
  if (index <= log_.snapshot_metadata().index()) {
    // A snapshot from the leader was installed meanwhile.
    log_.abandon_snapshot(job->ticket);
    logger_->info("{} dropped its snapshot at index {}: the log holds a newer one", config_.id,
                  index);
    return;
  }
  const SteadyTime recording = env_.now();
  Status status = log_.finish_snapshot(job->ticket, job->conf_state, job->data);
  FL_CHECK(status.ok(), "{} cannot save snapshot at {}: {}", config_.id, index, status.to_string());
  status = log_.compact_to_snapshot();
  FL_CHECK(status.ok(), "{} cannot compact log: {}", config_.id, status.to_string());
  last_snapshot_index_ = index;
  ++metrics_.snapshots_taken;
  metrics_.snapshot_bytes_total += job->data->size();
  metrics_.last_snapshot_bytes = job->data->size();
  const SteadyTime now = env_.now();
  const SteadyClock::duration record = now - recording;
  SteadyClock::duration on_loop = job->image_on_loop + record;
  SteadyClock::duration longest = std::max(job->longest_slice, record);
  if (handing_off_snapshot_) {
    // An Env that ran the work at once (test_only_snapshot_on_loop) held
    // the loop from the last slice to now.
    on_loop = job->image_on_loop + (now - job->handed_off);
    longest = std::max(job->longest_slice, job->last_slice + (now - job->handed_off));
  }
  // Unlinking the previous file (hundreds of MiB) takes tens of ms.
  std::vector<std::string> obsolete = log_.obsolete_snapshot_files();
  if (!obsolete.empty()) {
    env_.run_in_background(
        [files = std::move(obsolete), sync = !config_.unsafe_no_fsync] {
          storage::remove_files(files, sync);
        },
        [] {});
  }
  logger_->info(
      "{} saved snapshot at index {} ({} sessions, {} locks, {} bytes) in {:.0f} ms; the loop "
      "spent {:.1f} ms on it, at most {:.1f} ms at a time (image: {} slices, {:.1f} ms; record: "
      "{:.1f} ms)",
      config_.id, index, sessions, locks, job->data->size(), as_ms(now - job->started),
      as_ms(on_loop), as_ms(longest), job->slices,
      as_ms(job->image_on_loop), as_ms(record));
}

}  // namespace fencelock::server
