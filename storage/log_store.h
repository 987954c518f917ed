#pragma once
// LogStore: the durable Raft log as the server's driver writes it: the
// read-only raft::LogStorage the core reads, plus the writes a Ready and a
// state machine snapshot need. storage::DiskLog (RocksDB) is the one
// fencelockd runs; the node-level simulator has one over a simulated disk
// that loses unsynced writes on a crash.
//
// Error policy: a failed write or sync aborts (FL_CHECK) naming what failed,
// because a node that lost durability must not go on acknowledging; a
// caller's contract violation returns INVALID_ARGUMENT and changes nothing.
//
// Thread-safety: implementations are not thread-safe. One thread at a time
// calls them: the node's loop, or the thread it hands one write to while it
// leaves the log alone.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "raft/log_storage.h"

namespace fencelock::storage {

class LogStore : public raft::LogStorage {
 public:
  // Persists one Ready's `hard_state` (nullable: unchanged) and `entries`
  // (contiguous, starting at most at last_index() + 1; an entry at an
  // existing index replaces it and everything after it) as one atomic
  // write, synced when `sync` (Ready::must_sync). INVALID_ARGUMENT for a
  // gap or non-contiguous entries.
  virtual Status save(const raftpb::HardState* hard_state,
                      const std::vector<raftpb::Entry>& entries, bool sync) = 0;

  // Installs a snapshot received from the leader, durably: it replaces the
  // whole log (first_index() becomes its index + 1). An older snapshot than
  // the current one is ignored.
  virtual Status apply_snapshot(const raftpb::Snapshot& snapshot) = 0;

  // Records, durably, a snapshot of the local state machine at `index` (in
  // [first_index() - 1, last_index()]) with configuration `conf_state`.
  virtual Status create_snapshot(uint64_t index, const raftpb::ConfState& conf_state,
                                 std::string_view data) = 0;

  // Discards entries up to the latest snapshot, keeping the configured
  // number of entries below it for followers slightly behind.
  virtual Status compact_to_snapshot() = 0;

  // Where the log lives, for messages ("/var/lib/fencelock/3", "sim disk 3").
  virtual std::string location() const = 0;
};

}  // namespace fencelock::storage
