#include "raft/memory_storage.h"

#include "common/check.h"

namespace fencelock::raft {

MemoryStorage::MemoryStorage(raftpb::ConfState conf_state) {
  *snapshot_.mutable_metadata()->mutable_conf_state() = std::move(conf_state);
  entries_.emplace_back();  // dummy at index 0, term 0
}

InitialState MemoryStorage::initial_state() const {
  return InitialState{hard_state_, snapshot_.metadata().conf_state()};
}

uint64_t MemoryStorage::first_index() const { return entries_.front().index() + 1; }

uint64_t MemoryStorage::last_index() const {
  return entries_.front().index() + entries_.size() - 1;
}

uint64_t MemoryStorage::term(uint64_t index) const {
  uint64_t offset = entries_.front().index();
  FL_CHECK(index >= offset && index <= last_index(), "term({}) outside [{}, {}]", index, offset,
           last_index());
  return entries_[index - offset].term();
}

std::vector<raftpb::Entry> MemoryStorage::entries(uint64_t lo, uint64_t hi,
                                                  uint64_t max_bytes) const {
  FL_CHECK(lo >= first_index() && lo <= hi && hi <= last_index() + 1,
           "entries({}, {}) outside [{}, {}]", lo, hi, first_index(), last_index() + 1);
  std::vector<raftpb::Entry> out;
  uint64_t offset = entries_.front().index();
  uint64_t bytes = 0;
  for (uint64_t i = lo; i < hi; ++i) {
    const raftpb::Entry& entry = entries_[i - offset];
    bytes += entry.ByteSizeLong();
    if (!out.empty() && bytes > max_bytes) break;
    out.push_back(entry);
  }
  return out;
}

raftpb::Snapshot MemoryStorage::snapshot() const { return snapshot_; }

void MemoryStorage::set_hard_state(const raftpb::HardState& hard_state) {
  hard_state_ = hard_state;
}

void MemoryStorage::append(const std::vector<raftpb::Entry>& entries) {
  if (entries.empty()) return;
  uint64_t first = first_index();
  size_t skip = 0;
  while (skip < entries.size() && entries[skip].index() < first) ++skip;
  if (skip == entries.size()) return;
  uint64_t start = entries[skip].index();
  FL_CHECK(start <= last_index() + 1, "append at {} leaves a gap after {}", start, last_index());
  entries_.resize(start - entries_.front().index());  // truncate the conflicting suffix
  for (size_t i = skip; i < entries.size(); ++i) {
    FL_CHECK(entries[i].index() == start + (i - skip), "append of non-contiguous entries");
    entries_.push_back(entries[i]);
  }
}

void MemoryStorage::apply_snapshot(const raftpb::Snapshot& snapshot) {
  if (snapshot.metadata().index() <= snapshot_.metadata().index()) return;
  snapshot_ = snapshot;
  entries_.clear();
  raftpb::Entry dummy;
  dummy.set_index(snapshot.metadata().index());
  dummy.set_term(snapshot.metadata().term());
  entries_.push_back(std::move(dummy));
}

void MemoryStorage::create_snapshot(uint64_t index, const raftpb::ConfState& conf_state,
                                    std::string data) {
  if (index <= snapshot_.metadata().index()) return;
  FL_CHECK(index <= last_index(), "snapshot at {} beyond last index {}", index, last_index());
  auto* metadata = snapshot_.mutable_metadata();
  metadata->set_index(index);
  metadata->set_term(term(index));
  *metadata->mutable_conf_state() = conf_state;
  snapshot_.set_data(std::move(data));
}

void MemoryStorage::compact(uint64_t index) {
  uint64_t offset = entries_.front().index();
  if (index <= offset) return;
  FL_CHECK(index <= last_index(), "compact({}) beyond last index {}", index, last_index());
  raftpb::Entry dummy;
  dummy.set_index(index);
  dummy.set_term(term(index));
  entries_.erase(entries_.begin(), entries_.begin() + (index - offset));
  entries_.front() = std::move(dummy);
}

}  // namespace fencelock::raft
