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
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "raft/log_storage.h"

namespace fencelock::storage {

// A state machine snapshot being taken in steps (LogStore::begin_snapshot).
struct SnapshotTicket {
  uint64_t index = 0;
  uint64_t term = 0;
};

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
  // [first_index() - 1, last_index()]) with configuration `conf_state`:
  // begin_snapshot, write_snapshot and finish_snapshot at once.
  virtual Status create_snapshot(uint64_t index, const raftpb::ConfState& conf_state,
                                 std::string_view data) = 0;

  // A snapshot of the local state machine taken off the loop, in three steps
  // (server::Node serialises and writes it on the Env's background thread):
  //  1. begin_snapshot(index), on the loop: `index` must be in
  //     [first_index() - 1, last_index()] and newer than the latest snapshot
  //     (INVALID_ARGUMENT otherwise); reads its term and reserves the place
  //     step 2 writes, which nothing else of the log removes meanwhile.
  //  2. write_snapshot(ticket, data), on any thread, while the loop goes on
  //     using the log: writes `data` durably to that place and touches
  //     nothing else. A failure (e.g. a full disk) is returned, not
  //     aborted on, and leaves no partial file behind.
  //  3. finish_snapshot(ticket, conf_state, data), on the loop: records it,
  //     durably, as the latest snapshot, keeping `data` (shared, not
  //     copied) for InstallSnapshot. INVALID_ARGUMENT (and nothing
  //     recorded) if a newer snapshot was installed meanwhile: the caller
  //     then calls abandon_snapshot(ticket), which removes what step 2 wrote.
  //     The previous snapshot's file is left for the caller to remove off
  //     the loop (obsolete_snapshot_files): unlinking a large file takes a
  //     while.
  // A crash at any point leaves the previous snapshot as it was; what
  // step 2 wrote is removed when the log is opened again, and so is a
  // previous snapshot's file that step 3 left.
  virtual Result<SnapshotTicket> begin_snapshot(uint64_t index) = 0;
  virtual Status write_snapshot(const SnapshotTicket& ticket, std::string_view data) const = 0;
  virtual Status finish_snapshot(const SnapshotTicket& ticket, const raftpb::ConfState& conf_state,
                                 std::shared_ptr<const std::string> data) = 0;
  virtual void abandon_snapshot(const SnapshotTicket& ticket) = 0;
  // Files of snapshots older than the latest that nothing needs any more,
  // for remove_files() on any thread. On the loop.
  virtual std::vector<std::string> obsolete_snapshot_files() const = 0;

  // The latest snapshot's metadata (index 0: none), and its data, shared
  // rather than copied: the peer transport streams InstallSnapshot from it,
  // while the core's MSG_SNAP carries the metadata alone
  // (raft::LogStorage::snapshot_to_send). Never null.
  virtual raftpb::SnapshotMetadata snapshot_metadata() const = 0;
  virtual std::shared_ptr<const std::string> snapshot_data() const = 0;

  // Discards entries up to the latest snapshot, keeping the configured
  // number of entries below it for followers slightly behind.
  virtual Status compact_to_snapshot() = 0;

  // Where the log lives, for messages ("/var/lib/fencelock/3", "sim disk 3").
  virtual std::string location() const = 0;
};

}  // namespace fencelock::storage
