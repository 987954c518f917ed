#include "raft/progress.h"

#include <algorithm>

namespace fencelock::raft {

std::string_view progress_state_name(ProgressState state) {
  switch (state) {
    case ProgressState::kProbe:
      return "probe";
    case ProgressState::kReplicate:
      return "replicate";
    case ProgressState::kSnapshot:
      return "snapshot";
  }
  return "unknown";
}

bool Progress::is_paused() const {
  switch (state_) {
    case ProgressState::kProbe:
      return probe_sent_;
    case ProgressState::kReplicate:
      return inflight_.size() >= max_inflight_;
    case ProgressState::kSnapshot:
      return true;
  }
  return true;
}

void Progress::become_probe() {
  if (state_ == ProgressState::kSnapshot) {
    // The snapshot may have arrived even though nobody said so: start
    // probing just after it rather than from match_index.
    next_index_ = std::max(match_index_ + 1, pending_snapshot_ + 1);
  } else {
    next_index_ = match_index_ + 1;
  }
  state_ = ProgressState::kProbe;
  probe_sent_ = false;
  pending_snapshot_ = 0;
  inflight_.clear();
}

void Progress::become_replicate() {
  state_ = ProgressState::kReplicate;
  next_index_ = match_index_ + 1;
  probe_sent_ = false;
  pending_snapshot_ = 0;
  inflight_.clear();
}

void Progress::become_snapshot(uint64_t index) {
  state_ = ProgressState::kSnapshot;
  pending_snapshot_ = index;
  next_index_ = index + 1;
  snapshot_ticks_ = 0;
  probe_sent_ = false;
  inflight_.clear();
}

bool Progress::maybe_update(uint64_t index) {
  bool updated = false;
  if (match_index_ < index) {
    match_index_ = index;
    updated = true;
    probe_sent_ = false;
  }
  next_index_ = std::max(next_index_, index + 1);
  while (!inflight_.empty() && inflight_.front() <= index) inflight_.pop_front();
  return updated;
}

bool Progress::maybe_decrease_to(uint64_t rejected, uint64_t match_hint) {
  if (state_ == ProgressState::kReplicate) {
    if (rejected <= match_index_) return false;  // stale: already known to match there
    next_index_ = match_index_ + 1;
    return true;
  }
  if (next_index_ == 0 || next_index_ - 1 != rejected) return false;  // answers an older probe
  next_index_ = std::max(std::min(rejected, match_hint + 1), match_index_ + 1);
  probe_sent_ = false;
  return true;
}

void Progress::on_append_sent(uint64_t last_index) {
  if (state_ == ProgressState::kReplicate) {
    if (last_index != 0) {
      next_index_ = last_index + 1;
      inflight_.push_back(last_index);
    }
  } else if (state_ == ProgressState::kProbe) {
    probe_sent_ = true;
  }
}

void Progress::on_heartbeat_response() {
  probe_sent_ = false;
  if (state_ == ProgressState::kReplicate && inflight_.size() >= max_inflight_) {
    inflight_.pop_front();
  }
}

bool Progress::snapshot_timed_out(int timeout_ticks) {
  if (state_ != ProgressState::kSnapshot) return false;
  return ++snapshot_ticks_ >= timeout_ticks;
}

}  // namespace fencelock::raft
