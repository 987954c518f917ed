#pragma once
// Progress: the leader's view of one follower's log (Raft Figure 2's
// next_index and match_index) plus the flow control etcd-io/raft layers on
// top of it:
//
//   kProbe      the leader does not know where the follower's log ends; it
//               sends one AppendEntries per heartbeat interval and waits for
//               the answer (after a rejection, or on becoming leader).
//   kReplicate  the follower is known to match; the leader pipelines up to
//               max_inflight_msgs AppendEntries without waiting, moving
//               next_index optimistically.
//   kSnapshot   the follower needs entries the leader has compacted; an
//               InstallSnapshot is in flight and appends are paused.
//
// Thread-safety: not thread-safe; owned by one RawNode.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string_view>

namespace fencelock::raft {

enum class ProgressState { kProbe, kReplicate, kSnapshot };

std::string_view progress_state_name(ProgressState state);

class Progress {
 public:
  // A follower about which nothing is known yet: probing from `next_index`,
  // pipelining at most `max_inflight_msgs` appends once replicating.
  Progress(uint64_t next_index, size_t max_inflight_msgs)
      : next_index_(next_index), max_inflight_(max_inflight_msgs) {}

  // Raft Figure 2: highest index known replicated on the follower, and the
  // next index to send it. pending_snapshot is the index of the snapshot in
  // flight (kSnapshot only); inflight_count the unacknowledged appends.
  uint64_t match_index() const { return match_index_; }
  uint64_t next_index() const { return next_index_; }
  ProgressState state() const { return state_; }
  uint64_t pending_snapshot() const { return pending_snapshot_; }
  size_t inflight_count() const { return inflight_.size(); }

  // Whether the follower answered anything since the last check-quorum round.
  bool recent_active() const { return recent_active_; }
  void set_recent_active(bool active) { recent_active_ = active; }

  // Whether the leader must not send more AppendEntries now: a probe is
  // unanswered, the pipeline is full, or a snapshot is in flight.
  bool is_paused() const;

  void become_probe();
  void become_replicate();
  // Pauses appends until the follower acknowledges the snapshot at `index`.
  void become_snapshot(uint64_t index);

  // An acknowledgement up to `index`. Returns true when it raised
  // match_index (a stale or duplicate answer returns false). Unpauses a probe.
  bool maybe_update(uint64_t index);

  // A rejection of the append whose previous index was `rejected`, with the
  // follower's hint that its log matches at most up to `match_hint`. Returns
  // false when the rejection is stale (answers an earlier next_index).
  bool maybe_decrease_to(uint64_t rejected, uint64_t match_hint);

  // Records an AppendEntries just sent whose last entry is `last_index`
  // (0 for an empty append).
  void on_append_sent(uint64_t last_index);

  // A heartbeat answer: lets a probe retry and, when the pipeline is full,
  // frees one slot so a lost append cannot stall the follower forever.
  void on_heartbeat_response();

  // Counts one leader tick in kSnapshot; returns true when the snapshot has
  // been unanswered for `timeout_ticks`, so the caller should probe again.
  bool snapshot_timed_out(int timeout_ticks);

 private:
  uint64_t match_index_ = 0;
  uint64_t next_index_;
  ProgressState state_ = ProgressState::kProbe;
  bool probe_sent_ = false;
  bool recent_active_ = false;
  uint64_t pending_snapshot_ = 0;
  int snapshot_ticks_ = 0;
  size_t max_inflight_;
  std::deque<uint64_t> inflight_;  // last index of each unacknowledged append, ascending
};

}  // namespace fencelock::raft
