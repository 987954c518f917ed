#pragma once
// SharedHistogram: counts of observations in fixed buckets, as a
// Prometheus histogram exposes them (cumulative buckets, a sum and a
// count), for values observed on several threads at once: the log's write
// and fsync times, taken on the storage thread and scraped on the loop.
// (The lock statistics' histograms live on the loop alone and are plain
// values: server/histogram.h.)
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

// Bucket bounds, in seconds: storage and Raft latencies (100 us to 10 s).
std::span<const double> latency_buckets();
// Sizes (entries per batch): 1 to 4096 in powers of 2.
std::span<const double> size_buckets();

class SharedHistogram {
 public:
  // `bounds`: increasing upper bounds; an implicit +Inf bucket follows.
  // The bounds must outlive the histogram (the functions above return
  // static arrays).
  explicit SharedHistogram(std::span<const double> bounds);
  SharedHistogram(const SharedHistogram&) = delete;
  SharedHistogram& operator=(const SharedHistogram&) = delete;

  void observe(double value);
  void observe(std::chrono::nanoseconds duration) { observe(duration.count() / 1e9); }

  struct Snapshot {
    std::span<const double> bounds;
    std::vector<uint64_t> counts;  // per bucket, not cumulative; bounds.size() + 1
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot snapshot() const;

 private:
  std::span<const double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<uint64_t> sum_nanos_{0};  // sum in units of 1e-9
  std::atomic<uint64_t> count_{0};
};

}  // namespace fencelock
