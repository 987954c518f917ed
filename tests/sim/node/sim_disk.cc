#include "tests/sim/node/sim_disk.h"

#include <fmt/format.h>

#include "raft/random.h"

namespace fencelock::sim {

void SimDisk::make(Write write, bool sync) {
  write(live_);
  unsynced_.push_back(std::move(write));
  if (!sync || ignore_sync_) return;
  for (auto& pending : unsynced_) pending(durable_);
  unsynced_.clear();
}

Status SimDisk::save(const raftpb::HardState* hard_state, const std::vector<raftpb::Entry>& entries,
                     bool sync) {
  for (size_t i = 1; i < entries.size(); ++i) {
    if (entries[i].index() != entries[i - 1].index() + 1) {
      return Status(lockpb::INVALID_ARGUMENT, "save of non-contiguous entries");
    }
  }
  if (!entries.empty() && entries.front().index() > live_.last_index() + 1) {
    return Status(lockpb::INVALID_ARGUMENT,
                  fmt::format("save at index {} leaves a gap after the last index {}",
                              entries.front().index(), live_.last_index()));
  }
  std::optional<raftpb::HardState> hs;
  if (hard_state != nullptr) hs = *hard_state;
  make(
      [hs, entries](raft::MemoryStorage& log) {
        log.append(entries);
        if (hs) log.set_hard_state(*hs);
      },
      sync);
  return Status::ok_status();
}

Status SimDisk::apply_snapshot(const raftpb::Snapshot& snapshot) {
  make([snapshot](raft::MemoryStorage& log) { log.apply_snapshot(snapshot); }, /*sync=*/true);
  return Status::ok_status();
}

Status SimDisk::create_snapshot(uint64_t index, const raftpb::ConfState& conf_state,
                                std::string_view data) {
  if (index + 1 < live_.first_index() || index > live_.last_index()) {
    return Status(lockpb::INVALID_ARGUMENT, fmt::format("snapshot at {} outside the log", index));
  }
  if (index <= live_.snapshot().metadata().index()) return Status::ok_status();
  std::string bytes(data);
  make([index, conf_state, bytes](raft::MemoryStorage& log) {
         // The durable copy may not hold the entry yet only if the write
         // of it was lost, and then this snapshot cannot be durable either;
         // a sync makes both durable in order, so it does.
         if (index <= log.last_index()) log.create_snapshot(index, conf_state, bytes);
       },
       /*sync=*/true);
  return Status::ok_status();
}

raftpb::Snapshot SimDisk::snapshot_to_send() const {
  raftpb::Snapshot snapshot;
  *snapshot.mutable_metadata() = live_.snapshot().metadata();
  return snapshot;
}

Result<storage::SnapshotTicket> SimDisk::begin_snapshot(uint64_t index) {
  if (index + 1 < live_.first_index() || index > live_.last_index() ||
      index <= live_.snapshot().metadata().index()) {
    return Status(lockpb::INVALID_ARGUMENT, fmt::format("snapshot at {} outside the log", index));
  }
  return storage::SnapshotTicket{index, live_.term(index)};
}

Status SimDisk::finish_snapshot(const storage::SnapshotTicket& ticket,
                                const raftpb::ConfState& conf_state,
                                std::shared_ptr<const std::string> data) {
  if (ticket.index <= live_.snapshot().metadata().index() ||
      ticket.index + 1 < live_.first_index() || ticket.index > live_.last_index()) {
    return Status(lockpb::INVALID_ARGUMENT,
                  fmt::format("snapshot at {} is older than the log's", ticket.index));
  }
  return create_snapshot(ticket.index, conf_state, *data);
}

Status SimDisk::compact_to_snapshot() {
  uint64_t snapshot_index = live_.snapshot().metadata().index();
  if (snapshot_index <= keep_entries_) return Status::ok_status();
  uint64_t to = snapshot_index - keep_entries_;
  if (to < live_.first_index()) return Status::ok_status();
  make([to](raft::MemoryStorage& log) {
         if (to >= log.first_index() && to <= log.last_index()) log.compact(to);
       },
       /*sync=*/false);
  return Status::ok_status();
}

size_t SimDisk::crash(CrashKind kind, std::mt19937_64& rng) {
  size_t keep = unsynced_.size();
  if (kind == CrashKind::kPowerLoss) keep = raft::uniform_below(rng, unsynced_.size() + 1);
  for (size_t i = 0; i < keep; ++i) unsynced_[i](durable_);
  size_t lost = unsynced_.size() - keep;
  unsynced_.clear();
  live_ = durable_;
  return lost;
}

}  // namespace fencelock::sim
