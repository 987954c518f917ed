#pragma once
// SimDisk: a node's simulated disk, as the node-level simulator gives it to
// a real server::Node (a storage::LogStore). Two copies of the log are
// kept: what the process reads (every write, at once) and what is durable.
// A synced write makes everything written before it durable too (one
// write-ahead log, appended in order, as RocksDB's). A crash keeps the
// durable copy plus, depending on the kind of crash:
//  - a process crash (kill -9): every write that was made, unsynced ones
//    included (they reached the page cache);
//  - a power loss: only a prefix of the unsynced writes, possibly none; the
//    write that was cut is dropped whole, as RocksDB drops a torn last
//    record of its log (a WriteBatch is one checksummed record).
// A write the node had not yet made when it crashed (still on its way to
// the disk) is simply never made.
//
// Thread-safety: not thread-safe; the simulator's one thread.

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "raft/memory_storage.h"
#include "storage/log_store.h"

namespace fencelock::sim {

enum class CrashKind { kProcess, kPowerLoss };

class SimDisk final : public storage::LogStore {
 public:
  SimDisk(uint64_t node_id, raftpb::ConfState conf_state, uint64_t keep_entries_after_snapshot)
      : node_id_(node_id),
        keep_entries_(keep_entries_after_snapshot),
        live_(conf_state),
        durable_(conf_state) {}

  // raft::LogStorage: what the process sees.
  raft::InitialState initial_state() const override { return live_.initial_state(); }
  std::vector<raftpb::Entry> entries(uint64_t lo, uint64_t hi, uint64_t max_bytes) const override {
    return live_.entries(lo, hi, max_bytes);
  }
  uint64_t term(uint64_t index) const override { return live_.term(index); }
  uint64_t first_index() const override { return live_.first_index(); }
  uint64_t last_index() const override { return live_.last_index(); }
  raftpb::Snapshot snapshot() const override { return live_.snapshot(); }
  // As storage::DiskLog: MSG_SNAP carries the metadata, the data travels
  // beside it (server::Env::send_snapshot), so the node's path is the same.
  raftpb::Snapshot snapshot_to_send() const override;

  // storage::LogStore.
  Status save(const raftpb::HardState* hard_state, const std::vector<raftpb::Entry>& entries,
              bool sync) override;
  Status apply_snapshot(const raftpb::Snapshot& snapshot) override;
  Status create_snapshot(uint64_t index, const raftpb::ConfState& conf_state,
                         std::string_view data) override;
  Status compact_to_snapshot() override;
  // The three steps of a snapshot taken off the loop: nothing is durable
  // before finish_snapshot, which is create_snapshot's synced write.
  Result<storage::SnapshotTicket> begin_snapshot(uint64_t index) override;
  Status write_snapshot(const storage::SnapshotTicket&, std::string_view) const override {
    return Status::ok_status();
  }
  Status finish_snapshot(const storage::SnapshotTicket& ticket, const raftpb::ConfState& conf_state,
                         std::shared_ptr<const std::string> data) override;
  void abandon_snapshot(const storage::SnapshotTicket&) override {}
  std::vector<std::string> obsolete_snapshot_files() const override { return {}; }
  raftpb::SnapshotMetadata snapshot_metadata() const override {
    return live_.snapshot().metadata();
  }
  std::shared_ptr<const std::string> snapshot_data() const override {
    return std::make_shared<const std::string>(live_.snapshot().data());
  }
  std::string location() const override { return "sim disk " + std::to_string(node_id_); }

  // The process died: from now on the node reads what survived. Returns
  // how many unsynced writes were lost.
  size_t crash(CrashKind kind, std::mt19937_64& rng);

  // The test-only switch "acknowledge before sync": synced writes are made
  // unsynced, so a power loss can take acknowledged entries with it.
  void set_ignore_sync(bool ignore) { ignore_sync_ = ignore; }

  const raft::MemoryStorage& live() const { return live_; }
  size_t unsynced_writes() const { return unsynced_.size(); }

 private:
  using Write = std::function<void(raft::MemoryStorage&)>;
  // Makes `write` in the live copy now; durably at the next sync.
  void make(Write write, bool sync);

  uint64_t node_id_;
  uint64_t keep_entries_;
  raft::MemoryStorage live_;
  raft::MemoryStorage durable_;
  std::vector<Write> unsynced_;
  bool ignore_sync_ = false;
};

}  // namespace fencelock::sim
