#include "cli/bench/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace fencelock::bench {

// Bucket b = 0 holds 0 .. kSubBuckets-1 exactly. Bucket b >= 1 holds
// [2^(b+kSubBits-1), 2^(b+kSubBits)) in kSubBuckets/2 .. kSubBuckets-1
// sub-buckets of width 2^(b-1) (the lower half would overlap bucket b-1),
// like HdrHistogram's layout.
int LogHistogram::index_of(uint64_t value) {
  if (value < kSubBuckets) return static_cast<int>(value);
  int top = 63 - std::countl_zero(value);  // highest set bit, >= kSubBits
  int bucket = top - kSubBits + 1;
  uint64_t sub = value >> (bucket);     // in [kSubBuckets/2, kSubBuckets)
  return static_cast<int>(static_cast<uint64_t>(bucket) * kSubBuckets + sub);
}

uint64_t LogHistogram::upper_bound_of(int index) {
  uint64_t bucket = static_cast<uint64_t>(index) / kSubBuckets;
  uint64_t sub = static_cast<uint64_t>(index) % kSubBuckets;
  if (bucket == 0) return sub;
  uint64_t lowest = sub << bucket;
  uint64_t width = uint64_t{1} << bucket;
  return lowest + (width - 1);
}

void LogHistogram::record(uint64_t value, uint64_t count) {
  if (count == 0) return;
  counts_[static_cast<size_t>(index_of(value))] += count;
  count_ += count;
  sum_ += value * count;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
}

void LogHistogram::merge(const LogHistogram& other) {
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

void LogHistogram::reset() { *this = LogHistogram(); }

uint64_t LogHistogram::percentile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  auto rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::clamp(upper_bound_of(static_cast<int>(i)), min_, max_);
  }
  return max_;
}

}  // namespace fencelock::bench
