#include "tests/faults/schedule.h"

#include <catch2/catch.hpp>

namespace fencelock::faults {

TEST_CASE("the same seed gives the same fault schedule", "[faults]") {
  ScheduleOptions options;
  options.seed = GENERATE(1u, 42u, 987654321u);
  options.nodes = GENERATE(3, 5);
  auto a = make_schedule(options);
  auto b = make_schedule(options);
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) CHECK(describe(a[i]) == describe(b[i]));
  options.seed += 1;
  auto c = make_schedule(options);
  bool differs = a.size() != c.size();
  for (size_t i = 0; !differs && i < a.size(); ++i) differs = describe(a[i]) != describe(c[i]);
  CHECK(differs);
}

TEST_CASE("a schedule is the same on every platform", "[faults]") {
  // Drawn without std:: distributions, so this golden line holds with any
  // standard library; change it only when the generator changes on purpose.
  ScheduleOptions options;
  options.seed = 42;
  auto schedule = make_schedule(options);
  REQUIRE(!schedule.empty());
  CHECK(describe(schedule[0]) == "+  1.000s kill           n2                               for 0.723s");
}

TEST_CASE("schedules keep node faults within the bound and stall a worker early", "[faults]") {
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    ScheduleOptions options;
    options.seed = seed;
    options.nodes = seed % 2 == 0 ? 3 : 5;
    options.run_ms = 120000;
    auto schedule = make_schedule(options);
    bool stalled_early = false;
    for (size_t i = 0; i < schedule.size(); ++i) {
      const Fault& f = schedule[i];
      REQUIRE(f.start_ms + f.duration_ms <= options.run_ms);
      if (f.kind == FaultKind::kWorkerStall && f.start_ms <= options.first_stall_ms + 2500) stalled_early = true;
      if (f.kind != FaultKind::kKill && f.kind != FaultKind::kPause) continue;
      int concurrent = 0;
      for (size_t j = 0; j < schedule.size(); ++j) {
        const Fault& g = schedule[j];
        if (g.kind != FaultKind::kKill && g.kind != FaultKind::kPause) continue;
        if (g.start_ms <= f.start_ms && f.start_ms < g.start_ms + g.duration_ms) {
          ++concurrent;
          if (j != i) CHECK(g.node != f.node);
        }
      }
      INFO("seed " << seed << ": " << describe(f));
      CHECK(concurrent <= (options.nodes - 1) / 2);
    }
    CHECK(stalled_early);
  }
}

}  // namespace fencelock::faults
