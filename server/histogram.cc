#include "server/histogram.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace fencelock::server {

void Histogram::observe(double seconds) {
  if (!(seconds > 0)) seconds = 0;  // negative or NaN
  const auto bucket = std::lower_bound(kBounds.begin(), kBounds.end(), seconds) - kBounds.begin();
  ++counts_[static_cast<size_t>(bucket)];
  sum_ += seconds;
  ++count_;
}

std::array<uint64_t, Histogram::kBuckets> Histogram::cumulative() const {
  std::array<uint64_t, kBuckets> out{};
  uint64_t running = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    running += counts_[i];
    out[i] = running;
  }
  return out;
}

double Histogram::quantile(double q) const {
  if (count_ == 0 || std::isnan(q)) return std::numeric_limits<double>::quiet_NaN();
  if (q < 0) return -std::numeric_limits<double>::infinity();
  if (q > 1) return std::numeric_limits<double>::infinity();
  // Prometheus' bucketQuantile (promql/quantile.go).
  const double rank = q * static_cast<double>(count_);
  uint64_t below = 0;
  for (size_t i = 0; i < kBounds.size(); ++i) {
    const uint64_t in_bucket = counts_[i];
    if (in_bucket > 0 && static_cast<double>(below + in_bucket) >= rank) {
      const double start = i == 0 ? 0.0 : kBounds[i - 1];
      const double end = kBounds[i];
      return start + (end - start) * ((rank - static_cast<double>(below)) /
                                      static_cast<double>(in_bucket));
    }
    below += in_bucket;
  }
  return kBounds.back();
}

}  // namespace fencelock::server
