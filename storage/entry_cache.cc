#include "storage/entry_cache.h"

#include "common/check.h"

namespace fencelock::storage {

EntryCache::EntryCache(size_t max_entries, uint64_t max_bytes)
    : max_entries_(max_entries), max_bytes_(max_bytes) {}

uint64_t EntryCache::first_index() const {
  FL_CHECK(!entries_.empty(), "first_index() of an empty entry cache");
  return entries_.front().index();
}

uint64_t EntryCache::last_index() const {
  FL_CHECK(!entries_.empty(), "last_index() of an empty entry cache");
  return entries_.back().index();
}

bool EntryCache::contains(uint64_t index) const {
  return !entries_.empty() && index >= entries_.front().index() && index <= entries_.back().index();
}

const raftpb::Entry& EntryCache::at(uint64_t index) const {
  FL_CHECK(contains(index), "entry {} is not in the cache", index);
  return entries_[index - entries_.front().index()];
}

void EntryCache::append(std::vector<raftpb::Entry>::const_iterator begin,
                        std::vector<raftpb::Entry>::const_iterator end) {
  if (begin == end) return;
  uint64_t start = begin->index();
  if (!entries_.empty() && (start <= entries_.front().index() || start > last_index() + 1)) {
    clear();
  } else {
    truncate_from(start);
  }
  for (auto it = begin; it != end; ++it) {
    bytes_ += it->ByteSizeLong();
    entries_.push_back(*it);
  }
  evict();
}

void EntryCache::truncate_from(uint64_t index) {
  while (!entries_.empty() && entries_.back().index() >= index) {
    bytes_ -= entries_.back().ByteSizeLong();
    entries_.pop_back();
  }
}

void EntryCache::drop_through(uint64_t index) {
  while (!entries_.empty() && entries_.front().index() <= index) {
    bytes_ -= entries_.front().ByteSizeLong();
    entries_.pop_front();
  }
}

void EntryCache::clear() {
  entries_.clear();
  bytes_ = 0;
}

void EntryCache::evict() {
  while (!entries_.empty() && (entries_.size() > max_entries_ || bytes_ > max_bytes_)) {
    bytes_ -= entries_.front().ByteSizeLong();
    entries_.pop_front();
  }
}

}  // namespace fencelock::storage
