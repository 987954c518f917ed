#pragma once
// MemoryStorage: an in-memory LogStorage for unit tests and the simulator.
// The driver writes to it what Ready() asked to persist; the simulator keeps
// exactly this object across a simulated crash.
//
// Thread-safety: not thread-safe; one thread.

#include <cstdint>
#include <vector>

#include "raft/log_storage.h"

namespace fencelock::raft {

class MemoryStorage final : public LogStorage {
 public:
  // An empty log with the given initial configuration.
  explicit MemoryStorage(raftpb::ConfState conf_state = {});

  InitialState initial_state() const override;
  std::vector<raftpb::Entry> entries(uint64_t lo, uint64_t hi, uint64_t max_bytes) const override;
  uint64_t term(uint64_t index) const override;
  uint64_t first_index() const override;
  uint64_t last_index() const override;
  raftpb::Snapshot snapshot() const override;

  void set_hard_state(const raftpb::HardState& hard_state);
  // What initial_state() returns, without copying the configuration.
  const raftpb::HardState& hard_state() const { return hard_state_; }

  // Appends `entries`, which must be contiguous and start at most at
  // last_index() + 1; an entry at an existing index replaces it and every
  // entry after it (the conflicting suffix). Entries at or below the
  // snapshot index are ignored.
  void append(const std::vector<raftpb::Entry>& entries);

  // Replaces the whole log with `snapshot` (a follower receiving
  // InstallSnapshot). A snapshot older than the current one is ignored.
  void apply_snapshot(const raftpb::Snapshot& snapshot);

  // Records a snapshot of the state machine at `index` (<= last_index())
  // without discarding entries; compact() discards them.
  void create_snapshot(uint64_t index, const raftpb::ConfState& conf_state, std::string data);

  // Discards entries up to and including `index` (<= last_index()).
  void compact(uint64_t index);

 private:
  raftpb::HardState hard_state_;
  raftpb::Snapshot snapshot_;
  // entries_[0] is a dummy holding the index and term of the compaction
  // point, so term(first_index() - 1) needs no special case.
  std::vector<raftpb::Entry> entries_;
};

}  // namespace fencelock::raft
