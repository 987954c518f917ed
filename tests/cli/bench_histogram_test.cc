// LogHistogram (cli/bench/histogram.h): bucket layout, relative precision,
// percentiles against a sorted-vector model, merging.

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <vector>

#include "cli/bench/histogram.h"

namespace fencelock::bench {
namespace {

TEST_CASE("values below the sub-bucket count are recorded exactly", "[bench]") {
  for (uint64_t v = 0; v < LogHistogram::kSubBuckets; ++v) {
    REQUIRE(LogHistogram::upper_bound_of(LogHistogram::index_of(v)) == v);
  }
}

TEST_CASE("every value falls in a bucket whose bound is within 1/64 above it", "[bench]") {
  std::mt19937_64 random(Catch::rngSeed());
  int last_index = -1;
  for (uint64_t v = 0; v < 100000; ++v) {
    int index = LogHistogram::index_of(v);
    REQUIRE(index >= last_index);  // monotonic
    last_index = index;
    uint64_t bound = LogHistogram::upper_bound_of(index);
    REQUIRE(bound >= v);
    REQUIRE(static_cast<double>(bound - v) <= static_cast<double>(v) / (LogHistogram::kSubBuckets / 2));
  }
  for (int i = 0; i < 100000; ++i) {
    uint64_t v = random() >> (random() % 64);
    uint64_t bound = LogHistogram::upper_bound_of(LogHistogram::index_of(v));
    REQUIRE(bound >= v);
    REQUIRE(static_cast<double>(bound - v) <= static_cast<double>(v) / (LogHistogram::kSubBuckets / 2));
  }
  REQUIRE(LogHistogram::upper_bound_of(LogHistogram::index_of(UINT64_MAX)) == UINT64_MAX);
}

TEST_CASE("percentiles agree with a sorted model within the bucket precision", "[bench]") {
  std::mt19937_64 random(Catch::rngSeed());
  std::lognormal_distribution<double> latency(7.0, 1.0);  // ~1 ms median, long tail, in us
  LogHistogram histogram;
  std::vector<uint64_t> model;
  for (int i = 0; i < 50000; ++i) {
    auto v = static_cast<uint64_t>(latency(random));
    histogram.record(v);
    model.push_back(v);
  }
  std::sort(model.begin(), model.end());
  for (double q : {0.0, 0.01, 0.5, 0.9, 0.99, 0.999, 1.0}) {
    size_t rank = std::max<size_t>(1, static_cast<size_t>(std::ceil(q * static_cast<double>(model.size()))));
    uint64_t exact = model[rank - 1];
    uint64_t reported = histogram.percentile(q);
    INFO("q=" << q << " exact=" << exact << " reported=" << reported);
    REQUIRE(reported >= exact);
    REQUIRE(static_cast<double>(reported - exact) <= static_cast<double>(exact) / 64.0 + 1);
  }
  REQUIRE(histogram.count() == model.size());
  REQUIRE(histogram.min() == model.front());
  REQUIRE(histogram.max() == model.back());
  REQUIRE(histogram.percentile(1.0) == model.back());
}

TEST_CASE("merged histograms equal one histogram of all values", "[bench]") {
  LogHistogram a, b, all;
  for (uint64_t v = 1; v < 5000; v += 7) {
    ((v % 2) ? a : b).record(v * 13);
    all.record(v * 13);
  }
  a.merge(b);
  REQUIRE(a.count() == all.count());
  REQUIRE(a.mean() == Approx(all.mean()));
  for (double q : {0.5, 0.99, 0.999}) REQUIRE(a.percentile(q) == all.percentile(q));
  a.reset();
  REQUIRE(a.count() == 0);
  REQUIRE(a.percentile(0.5) == 0);
}

}  // namespace
}  // namespace fencelock::bench
