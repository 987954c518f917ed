#include "common/shared_histogram.h"

#include <algorithm>
#include <array>
#include <cmath>

namespace fencelock {

namespace {

constexpr std::array<double, 16> kLatency = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                             0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                             1,      2.5,     5,      10};
constexpr std::array<double, 13> kSize = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};

}  // namespace

std::span<const double> latency_buckets() { return kLatency; }
std::span<const double> size_buckets() { return kSize; }

SharedHistogram::SharedHistogram(std::span<const double> bounds)
    : bounds_(bounds), counts_(new std::atomic<uint64_t>[bounds.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void SharedHistogram::observe(double value) {
  if (!(value >= 0)) value = 0;  // NaN and negatives (a clock that stepped) count as 0
  size_t bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_nanos_.fetch_add(static_cast<uint64_t>(std::llround(std::min(value, 1.8e10) * 1e9)),
                       std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

SharedHistogram::Snapshot SharedHistogram::snapshot() const {
  Snapshot snapshot;
  snapshot.bounds = bounds_;
  snapshot.counts.resize(bounds_.size() + 1);
  uint64_t count = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    snapshot.counts[i] = counts_[i].load(std::memory_order_relaxed);
    count += snapshot.counts[i];
  }
  // The count is the buckets' total, so that the +Inf bucket always equals
  // _count in what a scrape shows.
  snapshot.count = count;
  snapshot.sum = sum_nanos_.load(std::memory_order_relaxed) / 1e9;
  return snapshot;
}

}  // namespace fencelock
