#pragma once
// Simulation: one seeded run of real raft::RawNode cores (3 or 5 voters to
// start with, from bootstrap entries) over virtual time and a simulated
// network, with faults, client traffic, membership changes and the Checker
// after every step. Same options, same trace, always.
//
// A run has two phases. Chaos: messages are delayed, dropped, duplicated
// and reordered; partitions (symmetric and one-way) come and go; nodes crash
// (sometimes halfway through a Ready, after sending the leader's messages
// but before persisting) and restart with exactly what they persisted;
// leadership transfers and reads are requested; the membership workload
// adds learners (fresh nodes, empty storage), promotes them once caught up,
// removes voters and learners and replaces voters, and a removed node is
// discarded or left running (stale) until healing. Heal: every fault is
// repaired, removed nodes are discarded, and within a bounded virtual time
// a leader must be elected and a new proposal must be applied by every
// member of its configuration (liveness).
//
// Thread-safety: not thread-safe; one simulation per thread.

#include <cstdint>
#include <ostream>
#include <string>

#include "raft/raw_node.h"

namespace fencelock::sim {

// Which seeds change the configuration (add, promote, remove, replace).
enum class Membership { kNever, kHalf, kAlways };

struct SimOptions {
  uint64_t seed = 1;
  int nodes = 3;  // the first configuration's voters; joiners come and go with membership
  Membership membership = Membership::kHalf;  // half of the seeds, drawn per seed
  raft::InjectedBug bug = raft::InjectedBug::kNone;
  std::ostream* trace = nullptr;  // when set, every event and the nodes' logs go here
};

struct SimResult {
  bool ok = true;
  std::string violation;     // empty when ok
  uint64_t commits = 0;      // distinct log indices applied
  uint64_t elections = 0;    // terms that had a leader
  uint64_t end_time_ms = 0;  // virtual time at the end
  // Membership: nodes that joined with an empty log, changes proposed (and
  // refused by the core), and committed changes by kind.
  uint64_t joiners = 0;
  uint64_t conf_proposals = 0;
  uint64_t conf_refusals = 0;
  uint64_t learners_added = 0;
  uint64_t promotions = 0;
  uint64_t removals = 0;
};

SimResult run_simulation(const SimOptions& options);

// Parses a bug name: "none", "commit-previous-term", "vote-without-log-check",
// "conf-change-before-leader-commit", "two-uncommitted-conf-changes".
bool parse_bug(const std::string& name, raft::InjectedBug* bug);
std::string bug_name(raft::InjectedBug bug);

}  // namespace fencelock::sim
