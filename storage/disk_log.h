#pragma once
// DiskLog: the durable Raft log of one node on RocksDB. Implements the
// read-only raft::LogStorage with exactly MemoryStorage's semantics, and the
// write side the server's driver calls once per Ready (persist -> send ->
// apply -> advance): save() writes hard state and entries as one synced
// RocksDB WriteBatch, so one fsync covers a whole batch (group commit).
//
// Data directory (docs/operations.md):
//   <dir>/db/     RocksDB: identity, hard state, log entries, snapshot metadata
//   <dir>/snap/   snapshot files (storage/snapshot_file.h), at most one live
//
// Key layout in RocksDB's default column family (integers big-endian, so
// byte order is index order):
//   "v"                 format version, 4 bytes (kFormatVersion)
//   "i"                 identity: cluster id, node id (8 + 8 bytes)
//   "h"                 raftpb::HardState (term, vote, commit)
//   "s"                 raftpb::SnapshotMetadata of the latest snapshot
//                       (index 0 = none; its conf_state is the configuration)
//   "b"                 log base: index and term (8 + 8 bytes) of the
//                       compaction point; the log holds (base, last]
//   "e" + index (8)     raftpb::Entry
//
// Error policy (docs/architecture.md "Storage"): open() returns a Status
// naming the problem and the path. After open, a failed write, a failed
// fsync, or a missing or unreadable entry inside the live range is fatal:
// FL_CHECK logs it at critical, naming the path, and aborts, because a node
// that lost durability must not keep acknowledging. Caller contract
// violations (a gap, a snapshot beyond the log) return INVALID_ARGUMENT and
// change nothing.
//
// Thread-safety: not thread-safe. One thread, the node's loop, calls every
// method (LogStorage's rule), except write_snapshot(), which another thread
// may run meanwhile; RocksDB's own background threads are internal.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/shared_histogram.h"
#include "common/status.h"
#include "raft/log_storage.h"
#include "storage/log_store.h"
#include "storage/entry_cache.h"

namespace rocksdb {
class DB;
class Env;
class WriteBatch;
}  // namespace rocksdb

namespace fencelock::storage {

inline constexpr uint32_t kFormatVersion = 1;

struct DiskLogOptions {
  // The node's data directory; created (with parents) when missing.
  std::filesystem::path dir;
  // Identity written into a fresh directory and checked on every later open.
  uint64_t cluster_id = 0;
  uint64_t node_id = 0;
  // Configuration of a fresh directory (the voters the cluster starts with);
  // ignored when the directory already holds a log.
  raftpb::ConfState initial_conf_state;
  // A fresh directory starts from this snapshot when its index is non-zero
  // (fencelockd --restore, server/restore.h): a snapshot file holds its
  // data, the log begins after its index, and the hard state has its term
  // and commits its index, so nodes initialized from the same snapshot agree
  // on the log and elect a leader as usual. The configuration is
  // initial_conf_state (the snapshot's own conf_state is ignored). Ignored
  // when the directory already holds a log.
  raftpb::Snapshot initial_snapshot;
  // fsync every write. false only for tests (--unsafe-no-fsync): a crash of
  // the machine then loses acknowledged entries. Logged at warn on open.
  bool sync = true;
  // compact_to_snapshot() keeps this many entries at and below the snapshot
  // index, so a follower slightly behind catches up from the log rather than
  // by InstallSnapshot.
  uint64_t keep_entries_after_snapshot = 1000;
  // Entry cache limits (EntryCache): the newest entries served from memory.
  size_t cache_max_entries = 4096;
  uint64_t cache_max_bytes = 16 * 1024 * 1024;
};

class DiskLog final : public LogStore {
 public:
  // Opens the data directory in `options.dir`, creating and initializing it
  // (identity, empty hard state, a snapshot-less log whose configuration is
  // options.initial_conf_state, or options.initial_snapshot's log) when it
  // is missing or empty. Recovers hard
  // state, snapshot (file verified against its checksum), log base and last
  // index, checks that every entry in the live range is present, removes
  // snapshot files left over by a crash, and warms the entry cache with the
  // newest entries.
  //
  // Errors (the server prints them and exits with code 2), none leaving a
  // half-opened log:
  //  - FAILED_PRECONDITION: the directory belongs to another cluster or node
  //    (the message names both identities and the path), or has an unknown
  //    format version.
  //  - INTERNAL: the directory cannot be created or read, RocksDB reports
  //    corruption or an I/O error, a snapshot file is missing or damaged, an
  //    entry of the live range is missing, or the hard state commits past the
  //    end of the log. The message names the path and the problem.
  // Any thread; the returned log then belongs to one thread.
  static Result<std::unique_ptr<DiskLog>> open(const DiskLogOptions& options);

  // Closes RocksDB. Everything save() returned from is already durable.
  ~DiskLog() override;

  DiskLog(const DiskLog&) = delete;
  DiskLog& operator=(const DiskLog&) = delete;

  // raft::LogStorage, with MemoryStorage's semantics. entries() and term()
  // are served from the entry cache when the range is cached, otherwise from
  // RocksDB; a missing entry in the live range aborts (FL_CHECK).
  raft::InitialState initial_state() const override;
  std::vector<raftpb::Entry> entries(uint64_t lo, uint64_t hi, uint64_t max_bytes) const override;
  uint64_t term(uint64_t index) const override;
  uint64_t first_index() const override;
  uint64_t last_index() const override;
  // The latest snapshot with a copy of its data (tests and tools; the
  // server reads snapshot_metadata() and snapshot_data()).
  raftpb::Snapshot snapshot() const override;
  // The metadata alone: the peer transport streams the data from
  // snapshot_data() (net::PeerTransport::send_snapshot).
  raftpb::Snapshot snapshot_to_send() const override;
  raftpb::SnapshotMetadata snapshot_metadata() const override { return snapshot_metadata_; }
  std::shared_ptr<const std::string> snapshot_data() const override { return snapshot_data_; }

  // Persists one Ready: `hard_state` (nullable: unchanged) and `entries`,
  // which must be contiguous and start at most at last_index() + 1. An entry
  // at an existing index replaces it and every entry after it (the
  // conflicting suffix is deleted in the same batch); entries at or below the
  // compaction point (first_index() - 1) are ignored. Everything is one
  // WriteBatch. With `sync` (the core's Ready::must_sync) it is synced: on
  // return it is durable and the caller may send the messages that depend
  // on it. Without, it reaches the write-ahead log unsynced (a commit index
  // alone, which the leader repeats); entries are appended in order to one
  // log, so a later synced save makes it durable too. `sync` is ignored
  // when the log was opened with sync off. Returns INVALID_ARGUMENT
  // (nothing written) for non-contiguous entries or a gap. A failed write
  // aborts.
  Status save(const raftpb::HardState* hard_state, const std::vector<raftpb::Entry>& entries,
              bool sync) override;
  // save() with sync (tests and tools).
  Status save(const raftpb::HardState* hard_state, const std::vector<raftpb::Entry>& entries) {
    return save(hard_state, entries, true);
  }

  // Installs a snapshot received from the leader (InstallSnapshot): writes
  // its data to a snapshot file, then in one synced batch records its
  // metadata and replaces the whole log by it (first_index() becomes
  // index + 1). The previous snapshot file is removed afterwards. A snapshot
  // not newer than the current one is ignored (OK). The hard state is not
  // touched: the driver saves it with save(). A failed write aborts.
  Status apply_snapshot(const raftpb::Snapshot& snapshot) override;

  // Records a snapshot the local state machine took at `index`, which must
  // be in [first_index() - 1, last_index()] (INVALID_ARGUMENT otherwise), with
  // configuration `conf_state` and the state machine's bytes `data` (copied).
  // Entries are kept; compact() or compact_to_snapshot() discards them. A
  // snapshot not newer than the current one is ignored (OK). A failed write
  // aborts.
  Status create_snapshot(uint64_t index, const raftpb::ConfState& conf_state,
                         std::string_view data) override;

  // The same in three steps, so that serialising and writing a large
  // snapshot runs off the loop (LogStore). begin_snapshot reserves the
  // file's name (the snapshot's and its ".tmp"), which no other snapshot
  // write or install removes until finish_snapshot or abandon_snapshot;
  // write_snapshot writes that file (write_snapshot_file: temporary name,
  // fsync, rename, fsync of snap/) and only reads options and paths fixed
  // at open, so it may run on another thread; finish_snapshot records the
  // metadata in one synced batch and leaves the previous file to
  // obsolete_snapshot_files().
  Result<SnapshotTicket> begin_snapshot(uint64_t index) override;
  Status write_snapshot(const SnapshotTicket& ticket, std::string_view data) const override;
  Status finish_snapshot(const SnapshotTicket& ticket, const raftpb::ConfState& conf_state,
                         std::shared_ptr<const std::string> data) override;
  void abandon_snapshot(const SnapshotTicket& ticket) override;
  std::vector<std::string> obsolete_snapshot_files() const override;

  // Discards entries up to and including `index` (<= last_index(), else
  // INVALID_ARGUMENT) with one DeleteRange; term(index) stays readable as the
  // compaction point. An index at or below the compaction point is a no-op.
  // Written without a sync (a lost compaction only keeps entries longer).
  Status compact(uint64_t index);

  // compact() up to the snapshot index minus keep_entries_after_snapshot;
  // a no-op when that is not past the compaction point.
  Status compact_to_snapshot() override;

  // The data directory this log was opened on.
  const std::filesystem::path& dir() const { return options_.dir; }
  std::string location() const override { return options_.dir.string(); }

  // The durations of the synced writes of the log (entries, hard state,
  // snapshot records): RocksDB's write and its WAL fsync as one call.
  // Updated on the writing thread, read from any.
  const SharedHistogram& sync_writes() const { return sync_writes_; }

 private:
  DiskLog(DiskLogOptions options, std::unique_ptr<rocksdb::Env> env,
          std::unique_ptr<rocksdb::DB> db);

  Status recover();
  Status initialize();
  std::filesystem::path snapshot_path(uint64_t term, uint64_t index) const;
  // Writes the snapshot file durably; aborts (FL_CHECK) naming the path and
  // the system error when it cannot (e.g. a full disk).
  void write_snapshot_or_die(uint64_t index, uint64_t term, std::string_view data);
  // Removes every snapshot file but `keep_name` and those reserved by
  // begin_snapshot.
  void remove_snapshot_files_except(const std::string& keep_name) const;
  raftpb::Entry read_entry(uint64_t index) const;
  // Appends entries [lo, hi) read from RocksDB to `out` while the running
  // total `bytes` stays within max_bytes (at least one entry in `out`).
  // Returns false when it stopped because of max_bytes.
  bool append_from_db(uint64_t lo, uint64_t hi, uint64_t max_bytes, uint64_t& bytes,
                      std::vector<raftpb::Entry>& out) const;
  // Writes `batch` (synced unless options_.sync is false); aborts
  // (FL_CHECK) naming `what` and the path when RocksDB fails.
  void write_or_die(rocksdb::WriteBatch& batch, const char* what, bool sync);

  DiskLogOptions options_;
  SharedHistogram sync_writes_{latency_buckets()};
  std::filesystem::path db_dir_;
  std::filesystem::path snap_dir_;
  // The zero-filled-WAL Env (storage/zero_filled_wal.h) when syncing;
  // declared before db_ so that it outlives it.
  std::unique_ptr<rocksdb::Env> env_;
  std::unique_ptr<rocksdb::DB> db_;
  raftpb::HardState hard_state_;
  // The latest snapshot (its data read and verified on open), the data
  // shared with the peer transport's InstallSnapshot streams.
  raftpb::SnapshotMetadata snapshot_metadata_;
  std::shared_ptr<const std::string> snapshot_data_ = std::make_shared<const std::string>();
  // Snapshot file names begin_snapshot reserved, until finish or abandon.
  std::set<std::string> reserved_;
  // The compaction point: the log holds (base_index_, last_index_].
  uint64_t base_index_ = 0;
  uint64_t base_term_ = 0;
  uint64_t last_index_ = 0;
  EntryCache cache_;
};

}  // namespace fencelock::storage
