// server::LockStats and server::Histogram: the statistics of the applied
// command stream, fed from a real sm::LockStateMachine applying scripted
// commands on a simulated steady clock.

#include "server/lock_stats.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "tests/statemachine/sm_test_util.h"

namespace fencelock::server {
namespace {

using namespace std::chrono_literals;
using sm::testing::AcquireArgs;

// The bucket of Histogram::kBounds that holds `seconds`.
size_t bucket_of(double seconds) {
  return static_cast<size_t>(std::lower_bound(Histogram::kBounds.begin(),
                                              Histogram::kBounds.end(), seconds) -
                             Histogram::kBounds.begin());
}

// A state machine and the LockStats it feeds, on a clock the test moves.
struct Fixture : sm::testing::Driver {
  explicit Fixture(LockStatsOptions options = {}) : stats(options) {
    stats.restored(now, sm);
    on_applied = [this](const lockpb::Command& command, const sm::ApplyResult& result) {
      stats.applied(now, command, result);
    };
  }
  Fixture(const Fixture&) = delete;
  Fixture& operator=(const Fixture&) = delete;

  // Driver's, failing the test without an immediate grant or a queued wait.
  uint64_t take(uint64_t session, const std::string& lock) {
    const uint64_t token = Driver::take(session, lock);
    REQUIRE(token != 0);
    return token;
  }
  void wait(uint64_t session, const std::string& lock) {
    REQUIRE(Driver::wait(session, lock).queued);
  }

  LockSeries prefix(const std::string& name) const {
    for (const PrefixSeries& p : stats.by_prefix()) {
      if (p.prefix == name) return p.series;
    }
    FAIL("no series for prefix " << name);
    return {};
  }
  std::optional<TopLock> top(const std::string& lock) const {
    for (TopLock& t : stats.top(sm)) {
      if (t.lock == lock) return t;
    }
    return std::nullopt;
  }
  // The tables in flight are bounded by the state's waiters and holders.
  void check_bounded() const {
    const sm::Usage usage = sm.total_usage();
    const LockStatsSizes sizes = stats.sizes();
    CHECK(sizes.waits_in_flight + sizes.holds_in_flight <= usage.holders_and_waiters);
    CHECK(sizes.waits_in_flight <= stats.waiters());
    CHECK(stats.waiters() == sm.pending_waits().size());
  }

  LockStats stats;
  SteadyTime now{};
};

}  // namespace

// --- Histogram ---

TEST_CASE("a histogram counts each value in the first bucket whose bound is >= it",
          "[lock_stats][histogram]") {
  Histogram h;
  h.observe(0);
  h.observe(0.001);  // on the bound: le="0.001"
  h.observe(0.0011);
  h.observe(2.5);
  h.observe(1e6);  // +Inf
  h.observe(-1);   // counts as 0
  CHECK(h.count() == 6);
  CHECK(h.sum() == Approx(0.001 + 0.0011 + 2.5 + 1e6));
  CHECK(h.counts()[0] == 2);  // le="0": the 0 and the -1 (an immediate grant's wait)
  CHECK(h.counts()[1] == 1);  // le="0.001"
  CHECK(h.counts()[2] == 1);
  CHECK(h.counts()[bucket_of(2.5)] == 1);
  CHECK(Histogram::kBounds[bucket_of(2.5)] == 5);
  CHECK(h.counts().back() == 1);
  const auto cumulative = h.cumulative();
  CHECK(cumulative[0] == 2);
  CHECK(cumulative[1] == 3);
  CHECK(cumulative[2] == 4);
  CHECK(cumulative[bucket_of(2.5)] == 5);
  CHECK(cumulative[Histogram::kBounds.size() - 1] == 5);
  CHECK(cumulative.back() == 6);
}

TEST_CASE("a histogram of immediate grants has a median of 0", "[lock_stats][histogram]") {
  Histogram h;
  for (int i = 0; i < 90; ++i) h.observe(0);
  for (int i = 0; i < 10; ++i) h.observe(2);
  CHECK(h.quantile(0.5) == 0);
  CHECK(h.quantile(0.99) > 1);
}

TEST_CASE("quantiles interpolate linearly within a bucket, as Prometheus' histogram_quantile",
          "[lock_stats][histogram]") {
  Histogram h;
  CHECK(std::isnan(h.quantile(0.5)));
  // 50 in (0.001, 0.005], 50 in (0.5, 1].
  for (int i = 0; i < 50; ++i) h.observe(0.003);
  for (int i = 0; i < 50; ++i) h.observe(0.7);
  CHECK(h.quantile(0.25) == Approx(0.003));  // rank 25 of 50 in the bucket: its middle
  CHECK(h.quantile(0.5) == Approx(0.005));   // rank 50: the bucket's top
  CHECK(h.quantile(0.51) == Approx(0.51));   // rank 51: 1 of 50 into (0.5, 1]
  CHECK(h.quantile(0.99) == Approx(0.99));
  CHECK(h.quantile(1) == Approx(1));
  CHECK(h.quantile(0) == Approx(0.001));  // the lower end of the first non-empty bucket
  CHECK(std::isinf(h.quantile(1.5)));
  CHECK(h.quantile(-0.5) < 0);

  // Uniform over (0, 10]: 1000 values. p50 is in (1, 5], which holds
  // 400 of them above the 100 <= 1 s: 1 + 4 * (400 / 400).
  Histogram uniform;
  for (int i = 1; i <= 1000; ++i) uniform.observe(i / 100.0);
  CHECK(uniform.quantile(0.5) == Approx(5));
  CHECK(uniform.quantile(0.3) == Approx(1 + 4 * (200.0 / 400)));
  CHECK(uniform.quantile(0.95) == Approx(5 + 5 * (450.0 / 500)));

  // Everything above the last bound: the highest finite bound answers.
  Histogram slow;
  slow.observe(1000);
  CHECK(slow.quantile(0.5) == 300);
  CHECK(slow.quantile(0.99) == 300);
}

// --- Prefixes ---

TEST_CASE("a lock's prefix is its first segments with their slash, or the whole name",
          "[lock_stats]") {
  CHECK(LockStats::prefix_of("jobs/nightly/a", 1) == "jobs/");
  CHECK(LockStats::prefix_of("jobs/nightly/a", 2) == "jobs/nightly/");
  CHECK(LockStats::prefix_of("jobs/nightly/a", 3) == "jobs/nightly/a");
  CHECK(LockStats::prefix_of("jobs/nightly", 2) == "jobs/nightly");
  CHECK(LockStats::prefix_of("nightly", 1) == "nightly");
  CHECK(LockStats::prefix_of("jobs/", 1) == "jobs/");
  CHECK(LockStats::prefix_of("/a", 1) == "/");
  CHECK(LockStats::prefix_of("jobs/nightly/a", 0) == "");
}

// --- Totals ---

TEST_CASE("totals count sessions, grants, hand-offs, queued acquires, releases and ended waits "
          "by reason",
          "[lock_stats]") {
  Fixture f;
  const uint64_t a = f.open(), b = f.open(), c = f.open(), d = f.open();
  const uint64_t ta = f.take(a, "jobs/x");
  f.wait(b, "jobs/x");
  f.wait(c, "jobs/x");
  CHECK(f.release(a, "jobs/x", ta).grants.size() == 1);  // hand-off to b
  CHECK(f.cancel(c, "jobs/x").ended_waits.size() == 1);   // cancelled
  f.wait(a, "jobs/x");
  f.wait(c, "jobs/x");
  REQUIRE(f.apply(sm::testing::expire_cmd(b)).grants.size() == 1);  // b held: hand-off to a
  // The leader's deadline CancelWait of c's wait.
  const uint64_t c_wait = f.sm.pending_waits().at(0).wait_id;
  REQUIRE(f.apply(sm::testing::cancel_cmd(c, 0, "jobs/x", c_wait)).ended_waits.size() == 1);
  f.wait(d, "jobs/x");
  REQUIRE(f.close(d).ended_waits.size() == 1);  // its wait ended with its session
  REQUIRE(f.apply(sm::testing::force_cmd("jobs/x")).released.size() == 1);  // a's hold
  CHECK(f.acquire(c, "jobs/x").granted);
  CHECK(f.close(c).released.size() == 1);
  // Failures: a busy try-acquire, an invalid name.
  const uint64_t e = f.open();
  f.take(e, "y");
  CHECK(f.acquire(a, "y").status.code() == sm::Code::kTimeout);
  CHECK(f.acquire(a, "").status.code() == sm::Code::kInvalidArgument);

  const LockTotals& t = f.stats.totals();
  CHECK(t.sessions_opened == 5);
  CHECK(t.sessions_closed == 2);
  CHECK(t.sessions_expired == 1);
  CHECK(t.grants == 5);  // a, b (hand-off), a (hand-off), c, e
  CHECK(t.hand_offs == 2);
  CHECK(t.queued == 5);
  CHECK(t.released == 1);
  CHECK(t.released_on_expiry == 1);
  CHECK(t.force_released == 1);
  CHECK(t.released_on_close == 1);
  CHECK(t.waits_cancelled == 1);
  CHECK(t.waits_timed_out == 1);
  CHECK(t.waits_session_ended == 1);
  CHECK(t.acquire_failures == 2);
  CHECK(t.acquire_failures_by_code ==
        std::map<sm::Code, uint64_t>{{sm::Code::kTimeout, 1}, {sm::Code::kInvalidArgument, 1}});

  const LockSeries jobs = f.prefix("jobs/");
  CHECK(jobs.grants == 4);
  CHECK(jobs.hand_offs == 2);
  CHECK(jobs.releases == 4);
  CHECK(jobs.queue_length == 0);
  CHECK(f.prefix("y").grants == 1);
  f.check_bounded();
}

TEST_CASE("a retry and a re-acquire of a held lock count nothing again", "[lock_stats]") {
  Fixture f;
  const uint64_t a = f.open(), b = f.open();
  const auto acquire = sm::testing::acquire_cmd(a, 1, "x");
  REQUIRE(f.apply(acquire).granted);
  REQUIRE(f.apply(acquire).duplicate);
  f.sequence[a] = 1;
  sm::ApplyResult again = f.acquire(a, "x");
  REQUIRE(again.granted);
  CHECK_FALSE(again.duplicate);  // the existing grant, under a new sequence number
  AcquireArgs waiting;
  waiting.wait_ms = 1'000;
  const auto queue = sm::testing::acquire_cmd(b, 1, "x", waiting);
  REQUIRE(f.apply(queue).queued);
  REQUIRE(f.apply(queue).duplicate);
  const auto busy = sm::testing::acquire_cmd(b, 2, "y");
  f.take(a, "y");
  REQUIRE(f.apply(busy).status.code() == sm::Code::kTimeout);
  REQUIRE(f.apply(busy).duplicate);

  const LockTotals& t = f.stats.totals();
  CHECK(t.grants == 2);
  CHECK(t.queued == 1);
  CHECK(t.acquire_failures == 1);
  CHECK(f.stats.waiters() == 1);
  CHECK(f.prefix("x").queue_length == 1);
  CHECK(f.prefix("x").wait_seconds.count() == 1);  // the immediate grant's 0 s
  f.check_bounded();
}

// --- Timings ---

TEST_CASE("a queued acquire granted 2.5 s later observes 2.5 s in its prefix and its top entry",
          "[lock_stats]") {
  Fixture f;
  const uint64_t a = f.open(), b = f.open();
  const uint64_t ta = f.take(a, "jobs/nightly");
  f.now += 500ms;
  f.wait(b, "jobs/nightly");
  f.now += 2500ms;
  sm::ApplyResult handed = f.release(a, "jobs/nightly", ta);
  REQUIRE(handed.grants.size() == 1);
  f.now += 4s;
  f.release(b, "jobs/nightly", handed.grants[0].sequencer.token());

  const LockSeries jobs = f.prefix("jobs/");
  REQUIRE(jobs.wait_seconds.count() == 2);  // the immediate grant's 0 s and the 2.5 s
  CHECK(jobs.wait_seconds.sum() == Approx(2.5));
  CHECK(jobs.wait_seconds.counts()[0] == 1);
  CHECK(jobs.wait_seconds.counts()[bucket_of(2.5)] == 1);
  REQUIRE(jobs.hold_seconds.count() == 2);  // a held 3 s, b 4 s
  CHECK(jobs.hold_seconds.sum() == Approx(7));
  CHECK(jobs.hold_seconds.counts()[bucket_of(3)] == 2);

  const auto top = f.top("jobs/nightly");
  REQUIRE(top);
  CHECK(top->series.grants == 2);
  CHECK(top->series.hand_offs == 1);
  CHECK(top->series.releases == 2);
  CHECK(top->estimated_grants == 2);
  CHECK(top->series.wait_seconds == jobs.wait_seconds);
  CHECK(top->series.hold_seconds == jobs.hold_seconds);
  f.check_bounded();
}

TEST_CASE("queue lengths go up with queued acquires and down with grants and ended waits",
          "[lock_stats]") {
  Fixture f;
  const uint64_t a = f.open(), b = f.open(), c = f.open(), d = f.open();
  const uint64_t ta = f.take(a, "q/1");
  f.wait(b, "q/1");
  f.wait(c, "q/1");
  f.take(d, "r");
  f.wait(a, "r");
  CHECK(f.stats.waiters() == 3);
  CHECK(f.prefix("q/").queue_length == 2);
  CHECK(f.prefix("r").queue_length == 1);
  REQUIRE(f.top("q/1"));
  CHECK(f.top("q/1")->series.queue_length == 2);

  f.release(a, "q/1", ta);  // b granted
  CHECK(f.stats.waiters() == 2);
  CHECK(f.prefix("q/").queue_length == 1);
  CHECK(f.top("q/1")->series.queue_length == 1);
  f.cancel(c, "q/1");
  CHECK(f.prefix("q/").queue_length == 0);
  CHECK(f.top("q/1")->series.queue_length == 0);
  f.close(a);  // its wait for r ends
  CHECK(f.prefix("r").queue_length == 0);
  CHECK(f.stats.waiters() == 0);
  f.check_bounded();
}

TEST_CASE("restored() recounts the waiters and forgets the times in flight, keeping the totals",
          "[lock_stats]") {
  Fixture f;
  const uint64_t a = f.open(), b = f.open(), c = f.open();
  const uint64_t ta = f.take(a, "jobs/x");
  f.wait(b, "jobs/x");
  f.wait(c, "jobs/x");
  const LockTotals before = f.stats.totals();

  // Another node's state: the same entries plus one more wait, installed
  // as a snapshot.
  sm::LockStateMachine other;
  REQUIRE(other.restore(f.sm.snapshot()).ok());
  const uint64_t d = other.apply(f.index + 1, sm::testing::open_cmd()).session_id;
  AcquireArgs waiting;
  waiting.wait_ms = 1'000;
  REQUIRE(other.apply(f.index + 2, sm::testing::acquire_cmd(d, 1, "jobs/x", waiting)).queued);
  f.index += 2;
  f.sm = std::move(other);
  f.now += 10s;
  f.stats.restored(f.now, f.sm);
  CHECK(f.stats.restored_at() == f.now);
  CHECK(f.stats.waiters() == 3);
  CHECK(f.prefix("jobs/").queue_length == 3);
  CHECK(f.stats.totals() == before);
  CHECK(f.stats.sizes().waits_in_flight == 0);
  CHECK(f.stats.sizes().holds_in_flight == 0);

  // a's hold and b's wait began before: counted, not timed.
  f.now += 1s;
  sm::ApplyResult handed = f.release(a, "jobs/x", ta);
  REQUIRE(handed.grants.size() == 1);
  LockSeries jobs = f.prefix("jobs/");
  CHECK(jobs.releases == 1);
  CHECK(jobs.hold_seconds.count() == 0);
  CHECK(jobs.grants == 2);
  CHECK(jobs.hand_offs == 1);
  CHECK(jobs.wait_seconds.count() == 1);  // a's immediate grant, before
  CHECK(jobs.queue_length == 2);
  // b's hold began after: timed.
  f.now += 2s;
  f.release(b, "jobs/x", handed.grants[0].sequencer.token());
  jobs = f.prefix("jobs/");
  CHECK(jobs.hold_seconds.count() == 1);
  CHECK(jobs.hold_seconds.sum() == Approx(2));
  CHECK(f.stats.waiters() == 1);
  f.check_bounded();
}

// --- Bounds ---

TEST_CASE("100,000 lock names and prefixes keep every table bounded, the hot name on top",
          "[lock_stats]") {
  LockStatsOptions options;
  options.max_prefixes = 256;
  options.top_k = 10;
  Fixture f(options);
  const uint64_t cold = f.open(), hot = f.open(), waiter = f.open();
  const size_t table = std::max<size_t>(4 * options.top_k, 64);
  constexpr int kNames = 100'000;
  int hot_grants = 0;
  for (int i = 0; i < kNames; ++i) {
    const std::string name = "p" + std::to_string(i) + "/lock";
    const uint64_t token = f.take(cold, name);
    // Every 100th name also has a waiter for a while: waits in flight.
    if (i % 100 == 0) f.wait(waiter, name);
    f.now += 1ms;
    f.release(cold, name, token);
    if (i % 10 == 0) {
      const uint64_t hot_token = f.take(hot, "hot/lock");
      ++hot_grants;
      f.release(hot, "hot/lock", hot_token);
    }
    if (i % 100 == 0) {
      f.release(waiter, name, f.sm.describe(name).value().holders.at(0).token);
    }
    if (i % 10'000 == 0) {
      const LockStatsSizes sizes = f.stats.sizes();
      REQUIRE(sizes.prefixes <= options.max_prefixes + 1);
      REQUIRE(sizes.top_table <= table);
      f.check_bounded();
    }
  }
  const auto prefixes = f.stats.by_prefix();
  CHECK(prefixes.size() == options.max_prefixes + 1);
  CHECK(std::is_sorted(prefixes.begin(), prefixes.end(),
                       [](const auto& x, const auto& y) { return x.prefix < y.prefix; }));
  const LockSeries other = f.prefix(std::string(kOtherPrefix));
  // The first 255 names' prefixes and "hot/" took the room.
  CHECK(other.grants == static_cast<uint64_t>(kNames - 255 + (kNames - 255) / 100));
  CHECK(f.prefix("hot/").grants == static_cast<uint64_t>(hot_grants));

  const LockStatsSizes sizes = f.stats.sizes();
  CHECK(sizes.top_table == table);
  CHECK(sizes.waits_in_flight == 0);
  CHECK(sizes.holds_in_flight == 0);

  const auto top = f.stats.top(f.sm);
  REQUIRE(top.size() == options.top_k);
  CHECK(top[0].lock == "hot/lock");
  // Never evicted: its series holds every grant, and its count no more.
  CHECK(top[0].series.grants == static_cast<uint64_t>(hot_grants));
  CHECK(top[0].estimated_grants == static_cast<uint64_t>(hot_grants));
  CHECK(top[0].series.hold_seconds.count() == static_cast<uint64_t>(hot_grants));
  for (size_t i = 1; i < top.size(); ++i) {
    CHECK(top[i].estimated_grants <= top[i - 1].estimated_grants);
    CHECK(top[i].series.grants <= top[i].estimated_grants);
  }
}

TEST_CASE("the Space-Saving table keeps every name with more than total/capacity grants, and "
          "never underestimates",
          "[lock_stats]") {
  const auto seed = Catch::rngSeed();
  INFO("seed " << seed << " (replay with --rng-seed " << seed << ")");
  std::mt19937_64 rng(seed);
  Fixture f;
  const uint64_t s = f.open();
  // Zipf-like: name k is drawn with weight 1 / (k + 1), over 2,000 names.
  std::vector<double> weights;
  for (int k = 0; k < 2'000; ++k) weights.push_back(1.0 / (k + 1));
  std::discrete_distribution<int> pick(weights.begin(), weights.end());
  std::map<std::string, uint64_t> exact;
  constexpr uint64_t kGrants = 30'000;
  for (uint64_t i = 0; i < kGrants; ++i) {
    const std::string name = "z/" + std::to_string(pick(rng));
    ++exact[name];
    f.release(s, name, f.take(s, name));
  }
  // The default table of 64 names, seen through top_k = 10: no name's
  // grants are underestimated ...
  const auto top = f.stats.top(f.sm);
  REQUIRE(top.size() == 10);
  for (const TopLock& t : top) {
    CHECK(t.series.grants <= exact[t.lock]);
    CHECK(exact[t.lock] <= t.estimated_grants);
  }
  // ... and every name above total / 64 grants is in the table (Space-
  // Saving's guarantee), so one not among the ten returned has no more than
  // the tenth's estimate.
  std::vector<std::pair<uint64_t, std::string>> by_count;
  for (const auto& [name, count] : exact) by_count.emplace_back(count, name);
  std::sort(by_count.rbegin(), by_count.rend());
  CHECK(top[0].lock == by_count[0].second);
  for (const auto& [count, name] : by_count) {
    if (count <= kGrants / 64) break;
    const bool in_top = std::any_of(top.begin(), top.end(),
                                    [&](const TopLock& t) { return t.lock == name; });
    if (!in_top) CHECK(count <= top.back().estimated_grants);
  }
}

}  // namespace fencelock::server
