#pragma once
// Histogram: counts of observed durations in seconds over fixed buckets,
// with their sum, laid out as a Prometheus histogram is exported (cumulative
// `le` buckets, `_sum`, `_count`), and the quantile estimate Prometheus'
// histogram_quantile() computes from them, for an operator page's p50/p99
// without a query engine.
//
// Thread-safety: a value type; one thread per object.

#include <array>
#include <cstddef>
#include <cstdint>

namespace fencelock::server {

class Histogram {
 public:
  // The upper bounds of the finite buckets, in seconds, shared by every
  // histogram of lock statistics: from a grant that never waited to a hold
  // of minutes. A last bucket, +Inf, is implied. The first bound, 0, holds
  // the immediate grants exactly (wait 0), so that a mostly uncontended
  // lock's median wait reads 0 rather than half of the next bound.
  static constexpr std::array<double, 13> kBounds = {0,   0.001, 0.005, 0.01, 0.05, 0.1, 0.5,
                                                     1,   5,     10,    30,   60,   300};
  // The finite buckets and +Inf.
  static constexpr size_t kBuckets = kBounds.size() + 1;

  // Counts one observation of `seconds` in the first bucket whose upper
  // bound is >= it (Prometheus' `le`). A negative or NaN value counts as 0.
  void observe(double seconds);

  // Observations per bucket, not cumulative: counts()[i] is the number in
  // (kBounds[i-1], kBounds[i]], the last one those above kBounds.back().
  const std::array<uint64_t, kBuckets>& counts() const { return counts_; }
  // The same cumulated, as Prometheus exports buckets: cumulative()[i]
  // counts every observation <= kBounds[i]; the last equals count().
  std::array<uint64_t, kBuckets> cumulative() const;
  // The sum of the observed values, and how many there were.
  double sum() const { return sum_; }
  uint64_t count() const { return count_; }

  // The q-quantile (0 <= q <= 1) estimated as Prometheus'
  // histogram_quantile() does: find the bucket holding the observation of
  // rank q * count() and interpolate linearly within it, the first bucket
  // starting at 0. A rank in the +Inf bucket answers the highest finite
  // bound. Empty buckets are passed over, so q = 0 answers the lower end
  // of the first non-empty bucket (where Prometheus answers NaN when the
  // first bucket is empty). NaN for an empty histogram or a NaN q; q < 0 is
  // -Inf and q > 1 is +Inf, as in Prometheus.
  double quantile(double q) const;

  friend bool operator==(const Histogram&, const Histogram&) = default;

 private:
  std::array<uint64_t, kBuckets> counts_{};
  double sum_ = 0;
  uint64_t count_ = 0;
};

}  // namespace fencelock::server
