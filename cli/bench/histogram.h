#pragma once
// LogHistogram: a log-bucketed latency histogram in the manner of
// HdrHistogram. Values (microseconds in fencelock-bench, but the class has no
// unit) fall into 2^(kSubBits-1) linear sub-buckets per power of two, so any
// recorded value is reported at most 1/2^(kSubBits-1) (1.6%) above itself;
// values below 2^kSubBits are exact. Memory is fixed (58 * 128 counters,
// 59 KiB), recording
// is O(1), and histograms of several threads or intervals merge by adding.
//
// Thread-safety: not thread-safe; callers serialise (fencelock-bench records
// under its run's mutex).

#include <array>
#include <cstdint>

namespace fencelock::bench {

class LogHistogram {
 public:
  static constexpr int kSubBits = 7;
  static constexpr uint64_t kSubBuckets = uint64_t{1} << kSubBits;
  static constexpr int kBuckets = 64 - kSubBits + 1;

  void record(uint64_t value, uint64_t count = 1);
  void merge(const LogHistogram& other);
  void reset();

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ ? min_ : 0; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ ? static_cast<double>(sum_) / static_cast<double>(count_) : 0.0; }

  // The smallest recorded-value bound v such that at least fraction `q`
  // (0..1) of the recorded values are <= v: the upper edge of the bucket
  // holding that rank, capped by max(). 0 when empty.
  uint64_t percentile(double q) const;

  // Bucket index of `value` and the largest value that index holds
  // (exposed for tests).
  static int index_of(uint64_t value);
  static uint64_t upper_bound_of(int index);

 private:
  std::array<uint64_t, kBuckets * kSubBuckets> counts_{};
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
};

}  // namespace fencelock::bench
