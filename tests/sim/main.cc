// fencelock-sim: runs the deterministic cluster simulator over many seeds,
// or replays one seed with a readable trace. See docs/simulator.md.
//
//   fencelock-sim --seeds N [--first-seed F] [--nodes 3|5] [--inject-bug NAME]
//   fencelock-sim --soak SECONDS [--first-seed F] [--nodes 3|5]
//   fencelock-sim --seed S [--nodes 3|5]          replay with a trace
//   fencelock-sim ... --expect-violation          exit 0 only if a violation is found

#include <CLI/CLI.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>

#include "tests/sim/simulation.h"

namespace {

// The seed being run, so that an abort inside the core (FL_CHECK) still
// tells how to replay it.
volatile uint64_t g_current_seed = 0;
volatile int g_current_nodes = 3;
const char* g_current_bug = "none";

void on_abort(int) {
  std::fprintf(stderr,
               "aborted during seed %llu; replay: fencelock-sim --seed %llu --nodes %d%s%s\n",
               static_cast<unsigned long long>(g_current_seed),
               static_cast<unsigned long long>(g_current_seed), g_current_nodes,
               std::string_view(g_current_bug) == "none" ? "" : " --inject-bug ",
               std::string_view(g_current_bug) == "none" ? "" : g_current_bug);
  std::signal(SIGABRT, SIG_DFL);
  std::abort();
}

std::string replay_command(uint64_t seed, int nodes, const std::string& bug) {
  std::string out =
      "fencelock-sim --seed " + std::to_string(seed) + " --nodes " + std::to_string(nodes);
  if (bug != "none") out += " --inject-bug " + bug;
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"fencelock deterministic Raft cluster simulator"};
  uint64_t seeds = 0;
  uint64_t first_seed = 1;
  uint64_t replay_seed = 0;
  double soak_seconds = 0;
  int nodes = 3;
  std::string bug = "none";
  bool expect_violation = false;
  auto* seeds_opt = app.add_option("--seeds", seeds, "number of seeds to run");
  app.add_option("--first-seed", first_seed, "first seed of the sweep")->capture_default_str();
  auto* seed_opt = app.add_option("--seed", replay_seed, "replay one seed with a full trace");
  auto* soak_opt = app.add_option("--soak", soak_seconds, "run seeds until this many seconds pass");
  app.add_option("--nodes", nodes, "cluster size")
      ->check(CLI::IsMember({3, 5}))
      ->capture_default_str();
  app.add_option("--inject-bug", bug,
                 "test only: none, commit-previous-term, vote-without-log-check")
      ->capture_default_str();
  app.add_flag("--expect-violation", expect_violation,
               "succeed only if some seed finds a violation (for injected-bug tests)");
  seed_opt->excludes(seeds_opt)->excludes(soak_opt);
  CLI11_PARSE(app, argc, argv);

  fencelock::sim::SimOptions options;
  options.nodes = nodes;
  if (!fencelock::sim::parse_bug(bug, &options.bug)) {
    std::cerr << "unknown bug: " << bug << "\n";
    return 2;
  }
  g_current_nodes = nodes;
  g_current_bug = bug.c_str();
  std::signal(SIGABRT, on_abort);

  if (*seed_opt) {
    options.seed = replay_seed;
    options.trace = &std::cout;
    g_current_seed = replay_seed;
    auto result = fencelock::sim::run_simulation(options);
    std::cout << "seed=" << replay_seed << " " << (result.ok ? "ok" : "VIOLATION")
              << " commits=" << result.commits << " elections=" << result.elections
              << " end_ms=" << result.end_time_ms << "\n";
    return result.ok ? 0 : 1;
  }
  if (!*seeds_opt && !*soak_opt) seeds = 100;

  auto start = std::chrono::steady_clock::now();
  uint64_t ran = 0, violations = 0, commits = 0, elections = 0;
  for (uint64_t seed = first_seed;; ++seed) {
    if (*soak_opt) {
      std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
      if (elapsed.count() >= soak_seconds) break;
    } else if (ran >= seeds) {
      break;
    }
    options.seed = seed;
    g_current_seed = seed;
    auto result = fencelock::sim::run_simulation(options);
    ++ran;
    commits += result.commits;
    elections += result.elections;
    if (!result.ok) {
      ++violations;
      std::cout << "violation at seed " << seed << ": " << result.violation << "\n"
                << "replay: " << replay_command(seed, nodes, bug) << "\n";
      if (expect_violation) break;
    }
  }
  std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  std::cout << "seeds=" << ran << " violations=" << violations << " commits=" << commits
            << " elections=" << elections << "\n";
  std::cerr << "nodes=" << nodes << " first_seed=" << first_seed << " elapsed_s=" << elapsed.count()
            << "\n";
  if (expect_violation) return violations > 0 ? 0 : 1;
  return violations == 0 ? 0 : 1;
}
