#include "raft/core_log.h"

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <limits>

#include "common/check.h"

namespace fencelock::raft {

CoreLog::CoreLog(const LogStorage& storage)
    : storage_(storage),
      unstable_offset_(storage.last_index() + 1),
      committed_(storage.first_index() - 1),
      applied_(storage.first_index() - 1) {
  // The configuration's history starts at the snapshot, whose ConfState is
  // storage's configuration: at the snapshot's index, which may lie above
  // the compaction point (storage keeps some entries below its snapshot),
  // and then the entries below it are already in that configuration.
  uint64_t base = std::max(storage.first_index() - 1, storage.snapshot().metadata().index());
  membership_.reset(base, storage.initial_state().conf_state);
  // Replays the stored log's configuration changes after it; a page at a
  // time, so a long log is never held in memory at once.
  constexpr uint64_t kPageBytes = 4 << 20;
  uint64_t next = base + 1;
  while (next <= storage.last_index()) {
    std::vector<raftpb::Entry> page = storage.entries(next, storage.last_index() + 1, kPageBytes);
    FL_CHECK(!page.empty() && page.front().index() == next, "storage returned no entry at {}", next);
    for (const auto& entry : page) membership_.append(entry);
    next = page.back().index() + 1;
  }
}

void CoreLog::set_default_configuration(const raftpb::ConfState& conf) {
  if (membership_.latest().voters_size() > 0 || membership_.latest().learners_size() > 0) return;
  uint64_t base = membership_.base_index();
  if (membership_.latest_index() != base) return;
  membership_.reset(base, conf);
}

uint64_t CoreLog::first_index() const {
  if (unstable_snapshot_) return unstable_snapshot_->metadata().index() + 1;
  return storage_.first_index();
}

uint64_t CoreLog::last_index() const {
  if (!unstable_.empty()) return unstable_.back().index();
  if (unstable_snapshot_) return unstable_snapshot_->metadata().index();
  return unstable_offset_ - 1;
}

uint64_t CoreLog::last_stable_index() const {
  if (unstable_snapshot_) return 0;
  return unstable_offset_ - 1;
}

uint64_t CoreLog::last_term() const {
  auto t = term(last_index());
  FL_CHECK(t.has_value(), "term of last index {} unavailable", last_index());
  return *t;
}

std::optional<uint64_t> CoreLog::term(uint64_t index) const {
  if (index == 0) return 0;
  if (index > last_index()) return std::nullopt;
  if (index >= unstable_offset_) return unstable_[index - unstable_offset_].term();
  if (unstable_snapshot_) {
    if (index == unstable_snapshot_->metadata().index())
      return unstable_snapshot_->metadata().term();
    return std::nullopt;
  }
  if (index + 1 < storage_.first_index()) return std::nullopt;  // compacted
  return storage_.term(index);
}

bool CoreLog::match_term(uint64_t index, uint64_t term) const {
  auto t = this->term(index);
  return t.has_value() && *t == term;
}

bool CoreLog::is_up_to_date(uint64_t index, uint64_t term) const {
  uint64_t our_term = last_term();
  return term > our_term || (term == our_term && index >= last_index());
}

std::optional<uint64_t> CoreLog::maybe_append(uint64_t index, uint64_t log_term, uint64_t committed,
                                              std::vector<raftpb::Entry> entries) {
  if (!match_term(index, log_term)) return std::nullopt;
  uint64_t last_new = index + entries.size();
  size_t first_conflict = entries.size();
  for (size_t i = 0; i < entries.size(); ++i) {
    if (!match_term(entries[i].index(), entries[i].term())) {
      first_conflict = i;
      break;
    }
  }
  if (first_conflict < entries.size()) {
    uint64_t conflict_index = entries[first_conflict].index();
    FL_CHECK(conflict_index > committed_,
             "entry {} conflicts with a committed entry (committed {})", conflict_index,
             committed_);
    entries.erase(entries.begin(), entries.begin() + static_cast<std::ptrdiff_t>(first_conflict));
    append(std::move(entries));
  }
  commit_to(std::min(committed, last_new));
  return last_new;
}

void CoreLog::append(std::vector<raftpb::Entry> entries) {
  if (entries.empty()) return;
  uint64_t after = entries.front().index();
  FL_CHECK(after > committed_, "append at {} would overwrite committed {}", after, committed_);
  FL_CHECK(after <= last_index() + 1, "append at {} leaves a gap after {}", after, last_index());
  membership_.truncate_from(after);
  for (const auto& entry : entries) membership_.append(entry);
  if (after == unstable_offset_ + unstable_.size()) {
    // Directly after the unstable entries.
  } else if (after <= unstable_offset_) {
    // Replaces all unstable entries and a persisted suffix: the driver's
    // write truncates storage from `after`.
    unstable_offset_ = after;
    unstable_.clear();
  } else {
    unstable_.resize(after - unstable_offset_);
  }
  unstable_.insert(unstable_.end(), std::make_move_iterator(entries.begin()),
                   std::make_move_iterator(entries.end()));
}

uint64_t CoreLog::find_conflict_by_term(uint64_t index, uint64_t term) const {
  index = std::min(index, last_index());
  while (index > 0) {
    auto t = this->term(index);
    if (!t.has_value() || *t <= term) break;
    --index;
  }
  return index;
}

std::optional<std::vector<raftpb::Entry>> CoreLog::slice(uint64_t lo, uint64_t hi,
                                                         uint64_t max_bytes) const {
  if (lo < first_index()) return std::nullopt;
  FL_CHECK(lo <= hi && hi <= last_index() + 1, "slice [{}, {}) beyond last index {}", lo, hi,
           last_index());
  std::vector<raftpb::Entry> out;
  if (lo >= hi) return out;
  uint64_t bytes = 0;
  if (lo < unstable_offset_) {
    uint64_t stored_hi = std::min(hi, unstable_offset_);
    out = storage_.entries(lo, stored_hi, max_bytes);
    FL_CHECK(!out.empty() && out.front().index() == lo, "storage returned no entry at {}", lo);
    if (out.size() < stored_hi - lo) return out;  // byte limit reached inside storage
    for (const auto& e : out) bytes += e.ByteSizeLong();
  }
  for (uint64_t i = std::max(lo, unstable_offset_); i < hi; ++i) {
    const raftpb::Entry& e = unstable_[i - unstable_offset_];
    bytes += e.ByteSizeLong();
    if (!out.empty() && bytes > max_bytes) break;
    out.push_back(e);
  }
  return out;
}

bool CoreLog::maybe_commit(uint64_t max_index, uint64_t term) {
  if (max_index > committed_ && match_term(max_index, term)) {
    commit_to(max_index);
    return true;
  }
  return false;
}

void CoreLog::commit_to(uint64_t index) {
  if (index <= committed_) return;
  FL_CHECK(index <= last_index(), "commit index {} beyond last index {}", index, last_index());
  committed_ = index;
}

void CoreLog::applied_to(uint64_t index) {
  if (index <= applied_) return;
  FL_CHECK(index <= committed_, "applied {} beyond committed {}", index, committed_);
  applied_ = index;
}

void CoreLog::restore(const raftpb::Snapshot& snapshot) {
  uint64_t index = snapshot.metadata().index();
  committed_ = index;
  unstable_.clear();
  unstable_offset_ = index + 1;
  unstable_snapshot_ = snapshot;
  const raftpb::ConfState& conf = snapshot.metadata().conf_state();
  // A snapshot that names no configuration (none from a current node does)
  // keeps the one we know.
  raftpb::ConfState keep = membership_.latest();
  membership_.reset(index, conf.voters_size() > 0 ? conf : keep);
}

std::vector<raftpb::Entry> CoreLog::next_committed_entries() const {
  uint64_t lo = std::max(applied_ + 1, first_index());
  if (lo > committed_) return {};
  auto entries = slice(lo, committed_ + 1, std::numeric_limits<uint64_t>::max());
  FL_CHECK(entries.has_value(), "committed entries from {} are compacted", lo);
  return std::move(*entries);
}

bool CoreLog::has_next_committed_entries() const {
  return std::max(applied_ + 1, first_index()) <= committed_;
}

void CoreLog::stable_to(uint64_t index, uint64_t term) {
  if (index < unstable_offset_ || index >= unstable_offset_ + unstable_.size()) return;
  if (unstable_[index - unstable_offset_].term() != term) return;  // replaced meanwhile
  unstable_.erase(unstable_.begin(), unstable_.begin() + (index + 1 - unstable_offset_));
  unstable_offset_ = index + 1;
}

void CoreLog::stable_snapshot_to(uint64_t index) {
  if (unstable_snapshot_ && unstable_snapshot_->metadata().index() == index) {
    unstable_snapshot_.reset();
  }
}

raftpb::Snapshot CoreLog::snapshot() const {
  if (unstable_snapshot_) return *unstable_snapshot_;
  return storage_.snapshot_to_send();
}

}  // namespace fencelock::raft
