#pragma once
// Histogram: counts of observed durations in fixed buckets, as a Prometheus
// histogram exposes them (cumulative buckets, a sum and a count), with the
// quantile estimate Prometheus' histogram_quantile() makes from them.
//
// Thread-safety: observe() and snapshot() may run on any threads at once
// (relaxed atomics: a snapshot taken during observations may see one
// observation's bucket and not yet its sum, which no reader of a histogram
// can tell from a later scrape).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace fencelock {

// Bucket bounds, in seconds: storage and Raft latencies (100 us to 10 s),
// and lock waits and holds (1 ms to 5 min).
std::span<const double> latency_buckets();
std::span<const double> lock_time_buckets();
// Sizes (entries per batch): 1 to 4096 in powers of 2.
std::span<const double> size_buckets();

class Histogram {
 public:
  // `bounds`: increasing upper bounds; an implicit +Inf bucket follows.
  // The bounds must outlive the histogram (the functions above return
  // static arrays).
  explicit Histogram(std::span<const double> bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  void observe(double value);
  void observe(std::chrono::nanoseconds duration) { observe(duration.count() / 1e9); }

  struct Snapshot {
    std::span<const double> bounds;
    std::vector<uint64_t> counts;  // per bucket, not cumulative; bounds.size() + 1
    double sum = 0;
    uint64_t count = 0;
    // The q-quantile (0 <= q <= 1) interpolated linearly inside its bucket,
    // as Prometheus' histogram_quantile(): 0 for an empty histogram; the
    // highest finite bound when it falls in the +Inf bucket.
    double quantile(double q) const;
  };
  Snapshot snapshot() const;

 private:
  std::span<const double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<uint64_t> sum_nanos_{0};  // sum in units of 1e-9
  std::atomic<uint64_t> count_{0};
};

}  // namespace fencelock
