#pragma once
// EntryCache: the most recently appended log entries, kept in memory so the
// leader reads what it replicates (and the core reads terms near the end of
// the log) without touching RocksDB.
//
// Invariant kept by the owner (DiskLog): when not empty, the cache holds a
// contiguous suffix of the log, [first_index(), last_index()] with
// last_index() equal to the log's last index. Eviction only drops the oldest
// entries, which keeps that invariant.
//
// Thread-safety: not thread-safe; used by the one thread that owns DiskLog.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

#include "proto/raft.pb.h"

namespace fencelock::storage {

class EntryCache {
 public:
  // Keeps at most `max_entries` entries and at most `max_bytes` of
  // Entry::ByteSizeLong(); zero for either disables the cache.
  EntryCache(size_t max_entries, uint64_t max_bytes);

  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }
  uint64_t bytes() const { return bytes_; }
  // Index of the oldest / newest cached entry. Require !empty().
  uint64_t first_index() const;
  uint64_t last_index() const;
  bool contains(uint64_t index) const;

  // The cached entry at `index`. Requires contains(index). The reference is
  // valid until the next call of a non-const method.
  const raftpb::Entry& at(uint64_t index) const;

  // Appends `entries`, contiguous and starting at most at last_index() + 1
  // (checked by the caller): cached entries at or after the first new index
  // are dropped first (the conflicting suffix). Then evicts the oldest
  // entries down to the limits. Copies the entries.
  void append(std::vector<raftpb::Entry>::const_iterator begin,
              std::vector<raftpb::Entry>::const_iterator end);

  // Drops every cached entry at or below `index` (log compaction).
  void drop_through(uint64_t index);

  void clear();

 private:
  void truncate_from(uint64_t index);
  void evict();

  size_t max_entries_;
  uint64_t max_bytes_;
  uint64_t bytes_ = 0;
  std::deque<raftpb::Entry> entries_;
};

}  // namespace fencelock::storage
