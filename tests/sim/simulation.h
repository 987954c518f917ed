#pragma once
// Simulation: one seeded run of 3 or 5 real raft::RawNode cores over virtual
// time and a simulated network, with faults, client traffic and the
// Checker after every step. Same options, same trace, always.
//
// A run has two phases. Chaos: messages are delayed, dropped, duplicated
// and reordered; partitions (symmetric and one-way) come and go; nodes crash
// (sometimes halfway through a Ready, after sending the leader's messages
// but before persisting) and restart with exactly what they persisted;
// leadership transfers and reads are requested. Heal: every fault is
// repaired, and within a bounded virtual time a leader must be elected and
// a new proposal must be applied by every node (liveness).
//
// Thread-safety: not thread-safe; one simulation per thread.

#include <cstdint>
#include <ostream>
#include <string>

#include "raft/raw_node.h"

namespace fencelock::sim {

struct SimOptions {
  uint64_t seed = 1;
  int nodes = 3;
  raft::InjectedBug bug = raft::InjectedBug::kNone;
  std::ostream* trace = nullptr;  // when set, every event and the nodes' logs go here
};

struct SimResult {
  bool ok = true;
  std::string violation;     // empty when ok
  uint64_t commits = 0;      // distinct log indices applied
  uint64_t elections = 0;    // terms that had a leader
  uint64_t end_time_ms = 0;  // virtual time at the end
};

SimResult run_simulation(const SimOptions& options);

// Parses a bug name: "none", "commit-previous-term", "vote-without-log-check".
bool parse_bug(const std::string& name, raft::InjectedBug* bug);
std::string bug_name(raft::InjectedBug bug);

}  // namespace fencelock::sim
