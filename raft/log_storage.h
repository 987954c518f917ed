#pragma once
// LogStorage: the read-only view of a node's persisted Raft state that the
// core reads from (modelled on etcd-io/raft's Storage interface).
//
// The core never writes through this interface: the driver persists what
// Ready() says (hard state, entries, snapshot) into the concrete storage
// (MemoryStorage in tests and the simulator, storage::DiskLog on RocksDB in
// the server) before it calls Advance(). Ranges are half-open [lo, hi).
//
// Indices: first_index() is the first entry still in the log (the snapshot's
// index + 1); last_index() is the last entry, or the snapshot's index when
// the log after it is empty. term(first_index() - 1) is the snapshot's term.
//
// Errors: calls outside the documented ranges are caller bugs (the core
// checks bounds first). A missing or unreadable entry inside the live range
// means a damaged store, and the implementation stops the node through
// FL_CHECK with a message naming what is wrong: it never returns a partial
// log.
//
// Thread-safety: implementations are used by one thread, the node's loop.

#include <cstdint>
#include <vector>

#include "proto/raft.pb.h"

namespace fencelock::raft {

struct InitialState {
  raftpb::HardState hard_state;
  raftpb::ConfState conf_state;
};

class LogStorage {
 public:
  virtual ~LogStorage() = default;

  // The hard state and configuration recovered when the storage was opened
  // (or last saved).
  virtual InitialState initial_state() const = 0;

  // Entries in [lo, hi). Requires first_index() <= lo <= hi <= last_index() + 1.
  // Returns at least one entry when lo < hi, then stops before the total of
  // Entry::ByteSizeLong() would exceed max_bytes.
  virtual std::vector<raftpb::Entry> entries(uint64_t lo, uint64_t hi,
                                             uint64_t max_bytes) const = 0;

  // Term of the entry at `index`. Requires first_index() - 1 <= index <= last_index().
  virtual uint64_t term(uint64_t index) const = 0;

  virtual uint64_t first_index() const = 0;
  virtual uint64_t last_index() const = 0;

  // The latest snapshot; metadata().index() == 0 when there is none.
  virtual raftpb::Snapshot snapshot() const = 0;

  // The snapshot a leader puts in MSG_SNAP: snapshot() by default. A
  // storage whose server streams the data itself (storage::DiskLog: the
  // peer transport reads it in place) returns the metadata alone, so the
  // core copies no state machine bytes.
  virtual raftpb::Snapshot snapshot_to_send() const { return snapshot(); }
};

}  // namespace fencelock::raft
