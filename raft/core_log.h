#pragma once
// CoreLog: the node's whole log as the core sees it, stitched from two parts
// (etcd-io/raft's raftLog + unstable):
//
//   [ storage: persisted, read through LogStorage ][ unstable: not yet persisted ]
//
// Entries and a received snapshot enter the unstable part; Ready hands them
// to the driver, and Advance marks them stable once the driver has written
// them to storage. Also tracks commit_index and the applied index (the last
// entry handed to the driver to apply), and the configuration at every
// point of the log (Membership), which follows appends, truncations and
// snapshots.
//
// Thread-safety: not thread-safe; owned by one RawNode.

#include <cstdint>
#include <optional>
#include <vector>

#include "raft/log_storage.h"
#include "raft/membership.h"

namespace fencelock::raft {

class CoreLog {
 public:
  // Starts from what `storage` holds: committed = applied = the compaction
  // point; the configuration is the snapshot's (storage's initial one), at
  // the snapshot's index, followed by every ConfChange entry stored after
  // it (entries kept below the snapshot are already in its configuration).
  explicit CoreLog(const LogStorage& storage);

  // The configuration at every index still in the log (membership.h).
  const Membership& membership() const { return membership_; }
  // Uses `conf` as the configuration at the base of the log when neither
  // storage nor the log names any (a cluster started without bootstrap
  // entries, as the Raft tests do). Ignored otherwise.
  void set_default_configuration(const raftpb::ConfState& conf);

  // First index still in the log (a pending snapshot's index + 1, else storage's).
  uint64_t first_index() const;
  // Last index, counting unstable entries and a pending snapshot.
  uint64_t last_index() const;
  // Term of last_index(); aborts if unavailable (a damaged store).
  uint64_t last_term() const;
  // commit_index: the highest index known committed. Never decreases.
  uint64_t committed() const { return committed_; }
  // The last index handed to the driver to apply (in a Ready that was advanced).
  uint64_t applied() const { return applied_; }

  // Last index known to be persisted (0 while a received snapshot is unpersisted).
  uint64_t last_stable_index() const;

  // Term of the entry at `index`, or nullopt when it is compacted away or
  // beyond the last index. term(0) is 0.
  std::optional<uint64_t> term(uint64_t index) const;

  bool match_term(uint64_t index, uint64_t term) const;

  // Raft §5.4.1: a log ending in (last_index, last_term) is at least as
  // up to date as ours.
  bool is_up_to_date(uint64_t last_index, uint64_t last_term) const;

  // The follower's AppendEntries consistency check (Raft §5.3): if our entry
  // at `index` has `log_term`, appends `entries` (replacing any conflicting
  // suffix), commits up to min(committed, last new index) and returns the
  // last new index; otherwise returns nullopt and changes nothing.
  // Aborts if a committed entry would be replaced.
  std::optional<uint64_t> maybe_append(uint64_t index, uint64_t log_term, uint64_t committed,
                                       std::vector<raftpb::Entry> entries);

  // Appends entries (contiguous, starting at most at last_index() + 1,
  // above committed()) to the unstable part, truncating a conflicting suffix.
  void append(std::vector<raftpb::Entry> entries);

  // The largest index <= `index` whose term is <= `term` (or whose term is
  // unknown because it is compacted): the fast-backtracking hint.
  uint64_t find_conflict_by_term(uint64_t index, uint64_t term) const;

  // Entries in [lo, hi), at least one when lo < hi, stopping before the
  // total size would exceed max_bytes. nullopt when lo is compacted away.
  // Requires hi <= last_index() + 1.
  std::optional<std::vector<raftpb::Entry>> slice(uint64_t lo, uint64_t hi,
                                                  uint64_t max_bytes) const;

  // Raft §5.4.2: commits max_index only if its entry is of `term`.
  bool maybe_commit(uint64_t max_index, uint64_t term);
  // Raises committed to `index` (never lowers it). Requires index <= last_index().
  void commit_to(uint64_t index);
  void applied_to(uint64_t index);

  // Replaces the log with a snapshot received from the leader.
  void restore(const raftpb::Snapshot& snapshot);

  const std::vector<raftpb::Entry>& unstable_entries() const { return unstable_; }
  const std::optional<raftpb::Snapshot>& unstable_snapshot() const { return unstable_snapshot_; }
  // Entries in (applied, committed].
  std::vector<raftpb::Entry> next_committed_entries() const;
  bool has_next_committed_entries() const;

  // The driver persisted entries up to (index, term) / the snapshot at `index`.
  void stable_to(uint64_t index, uint64_t term);
  void stable_snapshot_to(uint64_t index);

  // The unstable snapshot if any, else the storage's latest snapshot as a
  // leader sends it (LogStorage::snapshot_to_send).
  raftpb::Snapshot snapshot() const;

 private:
  const LogStorage& storage_;
  Membership membership_;
  std::optional<raftpb::Snapshot> unstable_snapshot_;
  std::vector<raftpb::Entry> unstable_;  // unstable_[k].index() == unstable_offset_ + k
  uint64_t unstable_offset_;
  uint64_t committed_;
  uint64_t applied_;
};

}  // namespace fencelock::raft
