#include "raft/driver.h"

#include "common/check.h"

namespace fencelock::raft {

std::string_view write_mode_name(WriteMode mode) {
  switch (mode) {
    case WriteMode::kNow:
      return "now";
    case WriteMode::kOverlap:
      return "overlap";
    case WriteMode::kLazy:
      return "lazy";
  }
  return "unknown";
}

void Driver::handle_ready() {
  while (!writing_ && node_.has_ready()) {
    Ready rd = node_.ready();
    if (!rd.hard_state && unsaved_commit_) rd.hard_state = *unsaved_commit_;
    unsaved_commit_.reset();
    if (rd.conf_state) host_.on_conf_state(*rd.conf_state);
    // Step 1 allows the leader's own messages out before and during its write.
    for (const auto& message : rd.messages) host_.send(message);
    if (rd.soft_state) host_.on_soft_state(*rd.soft_state);
    if (rd.snapshot) {
      // Rare (InstallSnapshot): the whole Ready in order, here.
      FL_CHECK(host_.write(rd, WriteMode::kNow), "node {}: a snapshot's write must be done at once",
               node_.id());
      host_.restore(*rd.snapshot);
      apply(rd);
      finish(rd, /*apply_now=*/false);
      continue;
    }
    // The role is the one of this Ready: only ready() changes what it
    // reports, and nothing calls the core before advance().
    bool leader = node_.role() == Role::kLeader;
    if (!rd.must_sync) {
      // Nothing a message depends on: a commit index waits for the next
      // write (a follower restarted with an older one applies less until
      // the leader repeats it).
      if (rd.hard_state) unsaved_commit_ = *rd.hard_state;
      finish(rd, /*apply_now=*/true);
      continue;
    }
    // Step 3 before step 1 on the leader: its committed entries are on a
    // quorum's disks already, so their answers need not wait for its write.
    if (leader) apply(rd);
    WriteMode mode = leader ? WriteMode::kOverlap
                     : rd.persist_lazily ? WriteMode::kLazy
                                         : WriteMode::kNow;
    writing_ = true;
    in_flight_applied_ = leader;
    in_flight_ = std::move(rd);
    if (!host_.write(*in_flight_, mode)) return;
    writing_ = false;
    Ready done = std::move(*in_flight_);
    in_flight_.reset();
    finish(done, /*apply_now=*/!in_flight_applied_);
  }
}

bool Driver::defer(std::function<void()> input) {
  if (!writing_) return false;
  deferred_.push_back(std::move(input));
  return true;
}

void Driver::write_done() {
  FL_CHECK(writing_ && in_flight_, "node {}: write_done() without a write in flight", node_.id());
  writing_ = false;
  Ready rd = std::move(*in_flight_);
  in_flight_.reset();
  finish(rd, /*apply_now=*/!in_flight_applied_);
  // Inputs that arrived during the write, in their order. Each goes through
  // its handler again, so one that starts another write holds the rest.
  for (auto& input : std::exchange(deferred_, {})) input();
}

void Driver::flush_commit() {
  if (writing_ || !unsaved_commit_) return;
  host_.write_commit(*unsaved_commit_);
  unsaved_commit_.reset();
}

void Driver::apply(const Ready& rd) {
  for (const auto& entry : rd.committed_entries) host_.apply(entry);
  for (const auto& read_state : rd.read_states) host_.on_read_state(read_state);
}

void Driver::finish(Ready& rd, bool apply_now) {
  // Step 2: what promises durable state, only now.
  for (const auto& message : rd.messages_after_persist) host_.send(message);
  // Step 3, where it did not come first.
  if (apply_now) apply(rd);
  // Step 4.
  node_.advance();
  host_.advanced();
}

}  // namespace fencelock::raft
