// fencelock-bench refuses bad flags with a message and exit 2, never a crash.

#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <string>

namespace {

struct Run {
  int exit_code = -1;
  std::string output;
};

// Runs fencelock-bench with `args` (no server is contacted: every case here
// fails before connecting); stdout and stderr together.
Run bench(const std::string& args) {
  std::string command = std::string(FENCELOCK_BENCH_PATH) + " " + args + " 2>&1";
  Run run;
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) run.output.append(buffer, n);
  int status = pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
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
