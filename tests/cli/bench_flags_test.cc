// fencelock-bench refuses bad flags with a message and exit 2, never a crash.

#include <catch2/catch.hpp>
#include <string>

#include "tests/run_command.h"

namespace {

using Run = fencelock::testing::CommandRun;

// Runs fencelock-bench with `args` (no server is contacted: every case here
// fails before connecting).
Run bench(const std::string& args) {
  return fencelock::testing::run_command(std::string(FENCELOCK_BENCH_PATH) + " " + args);
}

const std::string kBase = "--system fencelock --endpoints 127.0.0.1:1 --workload uncontended ";

TEST_CASE("a client count that is not a number is a usage error", "[bench]") {
  Run run = bench(kBase + "--clients 1,abc");
  CHECK(run.exit_code == 2);
  CHECK(run.output.find("--clients") != std::string::npos);
}

TEST_CASE("a server pid that is not a number is a usage error", "[bench]") {
  Run run = bench(kBase + "--server-pids 12,x");
  CHECK(run.exit_code == 2);
  CHECK(run.output.find("--server-pids") != std::string::npos);
}

TEST_CASE("a duration without a known unit is a usage error", "[bench]") {
  Run run = bench(kBase + "--duration 10parsecs");
  CHECK(run.exit_code == 2);
  CHECK(run.output.find("duration") != std::string::npos);
}

}  // namespace
