// The simulator itself: deterministic, clean on the real core, and able to
// catch deliberately broken cores.
#include <catch2/catch.hpp>
#include <sstream>

#include "tests/sim/simulation.h"

namespace fencelock::sim {
namespace {

TEST_CASE("the same seed gives the same trace, byte for byte", "[sim]") {
  for (int nodes : {3, 5}) {
    std::ostringstream a, b;
    SimOptions options;
    options.seed = 44;  // changes the configuration with both sizes
    options.nodes = nodes;
    options.trace = &a;
    auto ra = run_simulation(options);
    options.trace = &b;
    auto rb = run_simulation(options);
    CHECK(ra.ok);
    CHECK(a.str() == b.str());
    CHECK(a.str().size() > 1000);
    CHECK(a.str().find("conf change") != std::string::npos);
    CHECK(ra.commits == rb.commits);
  }
}

TEST_CASE("membership seeds add, promote and remove nodes, and pass every check", "[sim]") {
  SimResult total;
  for (uint64_t seed = 1; seed <= 60; ++seed) {
    SimOptions options;
    options.seed = seed;
    options.nodes = seed % 2 == 0 ? 3 : 5;
    auto result = run_simulation(options);
    INFO("replay: fencelock-sim --seed " << seed << " --nodes " << options.nodes);
    REQUIRE(result.ok);
    total.joiners += result.joiners;
    total.learners_added += result.learners_added;
    total.promotions += result.promotions;
    total.removals += result.removals;
    total.conf_refusals += result.conf_refusals;
  }
  CHECK(total.joiners > 20);
  CHECK(total.learners_added > 20);
  CHECK(total.promotions > 10);
  CHECK(total.removals > 10);
  CHECK(total.conf_refusals > 0);  // the core's rules turn some attempts away
  SimOptions off;
  off.seed = 44;
  off.membership = Membership::kNever;
  CHECK(run_simulation(off).joiners == 0);
}

TEST_CASE("the real core passes every check over 200 simulated seeds", "[sim]") {
  uint64_t first = Catch::rngSeed() % 1'000'000 + 1;
  for (uint64_t seed = first; seed < first + 200; ++seed) {
    SimOptions options;
    options.seed = seed;
    options.nodes = seed % 2 == 0 ? 3 : 5;
    auto result = run_simulation(options);
    INFO("replay: fencelock-sim --seed " << seed << " --nodes " << options.nodes);
    REQUIRE(result.ok);
  }
}

TEST_CASE("sweep: 5000 simulated seeds of 3 and 5 nodes pass every check", "[.sweep][sim]") {
  for (uint64_t seed = 1; seed <= 5000; ++seed) {
    for (int nodes : {3, 5}) {
      SimOptions options;
      options.seed = seed;
      options.nodes = nodes;
      auto result = run_simulation(options);
      INFO("replay: fencelock-sim --seed " << seed << " --nodes " << nodes);
      REQUIRE(result.ok);
    }
  }
}

TEST_CASE("the simulator catches a vote granted without the up-to-date check (§5.4.1)", "[sim]") {
  bool caught = false;
  for (uint64_t seed = 1; seed <= 500 && !caught; ++seed) {
    SimOptions options;
    options.seed = seed;
    options.bug = raft::InjectedBug::kVoteWithoutLogCheck;
    caught = !run_simulation(options).ok;
  }
  CHECK(caught);
}

}  // namespace
}  // namespace fencelock::sim
