// fencelock-sim: runs the deterministic simulator over many seeds, or
// replays one seed with a readable trace. See docs/simulator.md.
//
//   fencelock-sim [--level raft|node] --seeds N [--first-seed F] [--nodes 3|5] [--inject-bug NAME]
//   fencelock-sim [--level raft|node] --soak SECONDS [--first-seed F] [--nodes 3|5]
//   fencelock-sim [--level raft|node] --seed S [--nodes 3|5]   replay with a trace
//   fencelock-sim ... --expect-violation          exit 0 only if a violation is found
//   fencelock-sim ... --membership never|half|always   which seeds change the
//                    configuration (default: half; the node level takes
//                    none|some|every as well, some = 40% of seeds)
//
// --level raft (the default) runs the Raft core alone; --level node runs
// whole server nodes with simulated disks, clocks and clients.

#include <CLI/CLI.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <algorithm>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "tests/sim/node/node_simulation.h"
#include "tests/sim/simulation.h"

namespace {

// The seed being run, so that an abort inside the core (FL_CHECK) still
// tells how to replay it.
volatile uint64_t g_current_seed = 0;
volatile int g_current_nodes = 3;
const char* g_current_bug = "none";
const char* g_current_level = "raft";
const char* g_current_membership = "half";

void on_abort(int) {
  std::fprintf(stderr,
               "aborted during seed %llu; replay: fencelock-sim --level %s --seed %llu --nodes "
               "%d%s%s%s%s\n",
               static_cast<unsigned long long>(g_current_seed), g_current_level,
               static_cast<unsigned long long>(g_current_seed), g_current_nodes,
               std::string_view(g_current_bug) == "none" ? "" : " --inject-bug ",
               std::string_view(g_current_bug) == "none" ? "" : g_current_bug,
               std::string_view(g_current_membership) == "half" ? "" : " --membership ",
               std::string_view(g_current_membership) == "half" ? "" : g_current_membership);
  std::signal(SIGABRT, SIG_DFL);
  std::abort();
}

std::string replay_command(const std::string& level, uint64_t seed, int nodes,
                           const std::string& bug, const std::string& membership) {
  std::string out = "fencelock-sim --level " + level + " --seed " + std::to_string(seed) +
                    " --nodes " + std::to_string(nodes);
  if (bug != "none") out += " --inject-bug " + bug;
  if (membership != "half") out += " --membership " + membership;
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
  std::string level = "raft";
  bool expect_violation = false;
  std::string membership = "half";
  app.add_option("--level", level, "raft: the Raft core alone; node: whole server nodes")
      ->check(CLI::IsMember({"raft", "node"}))
      ->capture_default_str();
  auto* seeds_opt = app.add_option("--seeds", seeds, "number of seeds to run");
  app.add_option("--first-seed", first_seed, "first seed of the sweep")->capture_default_str();
  auto* seed_opt = app.add_option("--seed", replay_seed, "replay one seed with a full trace");
  auto* soak_opt = app.add_option("--soak", soak_seconds, "run seeds until this many seconds pass");
  app.add_option("--nodes", nodes, "cluster size")
      ->check(CLI::IsMember({3, 5}))
      ->capture_default_str();
  app.add_option("--inject-bug", bug,
                 "test only: none; raft level: commit-previous-term, vote-without-log-check, "
                 "conf-change-before-leader-commit, two-uncommitted-conf-changes; node level: "
                 "ack-before-sync, expire-on-old-deadline, early-lock-delay, snapshot-latest-conf")
      ->capture_default_str();
  app.add_flag("--expect-violation", expect_violation,
               "succeed only if some seed finds a violation (for injected-bug tests)");
  app.add_option("--membership", membership,
                 "which seeds change the configuration (learners, joiners, promotions, "
                 "removals): never, half (raft level: drawn per seed; node level: 40% of "
                 "seeds) or always (node level: with a busier operator); none|some|every "
                 "are the same")
      ->check(CLI::IsMember({"never", "half", "always", "none", "some", "every"}))
      ->capture_default_str();
  seed_opt->excludes(seeds_opt)->excludes(soak_opt);
  CLI11_PARSE(app, argc, argv);

  fencelock::sim::SimOptions options;
  options.nodes = nodes;
  // One vocabulary for both levels: never/none, half/some, always/every.
  if (membership == "none") membership = "never";
  if (membership == "some") membership = "half";
  if (membership == "every") membership = "always";
  options.membership = membership == "never"    ? fencelock::sim::Membership::kNever
                       : membership == "always" ? fencelock::sim::Membership::kAlways
                                                : fencelock::sim::Membership::kHalf;
  fencelock::sim::NodeSimOptions node_options;
  node_options.nodes = nodes;
  bool known = level == "raft" ? fencelock::sim::parse_bug(bug, &options.bug)
                               : fencelock::sim::parse_node_bug(bug, &node_options.bug);
  if (!known) {
    std::cerr << "unknown bug for --level " << level << ": " << bug << "\n";
    return 2;
  }
  g_current_nodes = nodes;
  g_current_bug = bug.c_str();
  g_current_level = level.c_str();
  fencelock::sim::parse_membership_mode(membership == "never"    ? "none"
                                        : membership == "always" ? "every"
                                                                 : "some",
                                        &node_options.membership);
  g_current_membership = membership.c_str();
  std::signal(SIGABRT, on_abort);

  // One seed: ok, the violation, and the summary counters.
  struct Outcome {
    bool ok = true;
    std::string violation;
    std::vector<std::pair<std::string, uint64_t>> counters;  // in print order
  };
  auto run_one = [&](uint64_t seed, std::ostream* trace) {
    Outcome outcome;
    if (level == "raft") {
      options.seed = seed;
      options.trace = trace;
      auto result = fencelock::sim::run_simulation(options);
      outcome = {result.ok,
                 result.violation,
                 {{"commits", result.commits},
                  {"elections", result.elections},
                  {"joiners", result.joiners},
                  {"conf_proposals", result.conf_proposals},
                  {"conf_refusals", result.conf_refusals},
                  {"learners_added", result.learners_added},
                  {"promotions", result.promotions},
                  {"removals", result.removals},
                  {"end_ms", result.end_time_ms}}};
    } else {
      node_options.seed = seed;
      node_options.trace = trace;
      auto result = fencelock::sim::run_node_simulation(node_options);
      outcome = {result.ok,
                 result.violation,
                 {{"grants", result.grants},
                  {"client_grants", result.client_grants},
                  {"expiries", result.expiries},
                  {"operations", result.operations},
                  {"faults", result.faults},
                  {"membership_seeds", result.membership ? 1u : 0u},
                  {"adds", result.adds},
                  {"promotes", result.promotes},
                  {"removes", result.removes},
                  {"leader_removals", result.leader_removals},
                  {"intrusion_seeds", result.intrusion ? 1u : 0u},
                  {"intrusions", result.intrusions},
                  {"denied", result.denied},
                  {"bounded_seeds", result.bounded ? 1u : 0u},
                  {"exhausted", result.exhausted},
                  {"end_ms", result.end_time_ms}}};
    }
    return outcome;
  };

  if (*seed_opt) {
    g_current_seed = replay_seed;
    Outcome outcome = run_one(replay_seed, &std::cout);
    std::cout << "seed=" << replay_seed << " " << (outcome.ok ? "ok" : "VIOLATION");
    for (const auto& [name, value] : outcome.counters) std::cout << " " << name << "=" << value;
    std::cout << "\n";
    return outcome.ok ? 0 : 1;
  }
  if (!*seeds_opt && !*soak_opt) seeds = 100;

  auto start = std::chrono::steady_clock::now();
  uint64_t ran = 0, violations = 0;
  std::vector<std::pair<std::string, uint64_t>> totals;  // end_ms is left out
  for (uint64_t seed = first_seed;; ++seed) {
    if (*soak_opt) {
      std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
      if (elapsed.count() >= soak_seconds) break;
    } else if (ran >= seeds) {
      break;
    }
    g_current_seed = seed;
    Outcome outcome = run_one(seed, nullptr);
    ++ran;
    for (const auto& [name, value] : outcome.counters) {
      if (name == "end_ms") continue;
      auto it = std::find_if(totals.begin(), totals.end(), [&](auto& t) { return t.first == name; });
      if (it == totals.end()) {
        totals.emplace_back(name, value);
      } else {
        it->second += value;
      }
    }
    if (!outcome.ok) {
      ++violations;
      std::cout << "violation at seed " << seed << ": " << outcome.violation << "\n"
                << "replay: " << replay_command(level, seed, nodes, bug, membership) << "\n";
      if (expect_violation) break;
    }
  }
  std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  std::cout << "seeds=" << ran << " violations=" << violations;
  for (const auto& [name, value] : totals) std::cout << " " << name << "=" << value;
  std::cout << "\n";
  std::cerr << "level=" << level << " nodes=" << nodes << " first_seed=" << first_seed
            << " elapsed_s=" << elapsed.count() << "\n";
  if (expect_violation) return violations > 0 ? 0 : 1;
  return violations == 0 ? 0 : 1;
}
