// The whole-node simulator itself: a seed is a reproduction.
#include <catch2/catch.hpp>

#include <sstream>

#include "tests/sim/node/node_simulation.h"

namespace fencelock::sim {
namespace {

TEST_CASE("a node-level seed replays to the same trace, byte for byte", "[sim][node]") {
  for (int nodes : {3, 5}) {
    NodeSimOptions options;
    options.seed = 4242;
    options.nodes = nodes;
    std::ostringstream first, second;
    options.trace = &first;
    NodeSimResult a = run_node_simulation(options);
    options.trace = &second;
    NodeSimResult b = run_node_simulation(options);
    CHECK(a.ok);
    CHECK(a.grants > 0);
    CHECK(a.end_time_ms == b.end_time_ms);
    CHECK(first.str().size() > 1000);
    CHECK(first.str() == second.str());
  }
}

TEST_CASE("a traced seed and an untraced one run the same", "[sim][node]") {
  NodeSimOptions options;
  options.seed = 99;
  NodeSimResult quiet = run_node_simulation(options);
  std::ostringstream trace;
  options.trace = &trace;
  NodeSimResult traced = run_node_simulation(options);
  CHECK(quiet.grants == traced.grants);
  CHECK(quiet.operations == traced.operations);
  CHECK(quiet.end_time_ms == traced.end_time_ms);
}

}  // namespace
}  // namespace fencelock::sim
