#pragma once
// NodeSimulation: one seeded run of 3 or 5 real server::Node objects — the
// class fencelockd runs, with its Ready driver, group commit, lazy
// followers, reads, keepalives and leader timers — over simulated time, a
// simulated network and simulated disks, with simulated clients that use
// the client library's own session and retry rules. Same options, same
// run, always.
//
// Chaos: peer messages are lost, duplicated, delayed and reordered;
// partitions (symmetric, one-way, isolating one node) come and go; client
// connections are cut; nodes crash (a process crash keeps unsynced writes,
// a power loss keeps only a prefix of them) and restart with what their
// disk kept, or pause (a GC pause, SIGSTOP) and resume; each machine's
// steady clock runs at its own rate within the documented drift bound (a
// node reads no wall clock: server::Env has none). Heal: every fault is repaired,
// clients let go and close, and a probe client must then acquire every
// lock within a bounded time (liveness). In some seeds an operator
// (sim_operator.h) changes the membership meanwhile: nodes with new ids
// join with fresh disks, learners are promoted, voters (the leader too)
// and learners are removed and their processes discarded; after healing
// its final member list must match what every member applied.
// NodeChecker checks the rest.
//
// Thread-safety: not thread-safe; one simulation per thread.

#include <cstdint>
#include <ostream>
#include <string>

#include "server/config.h"

namespace fencelock::sim {

// Whether a seed's operator changes the membership (sim_operator.h).
enum class MembershipMode {
  kSome,   // in 40% of seeds (which ones is drawn from the seed)
  kEvery,  // in every seed, busier: shorter pauses between operations and
           // twice the faults aimed at a change under way
  kNone,   // never: every seed runs as before membership change existed
};

struct NodeSimOptions {
  uint64_t seed = 1;
  int nodes = 3;
  server::InjectedBug bug = server::InjectedBug::kNone;
  MembershipMode membership = MembershipMode::kSome;
  std::ostream* trace = nullptr;  // when set, every event goes here
};

struct NodeSimResult {
  bool ok = true;
  std::string violation;       // empty when ok
  uint64_t grants = 0;         // grants applied
  uint64_t client_grants = 0;  // grants clients were told of
  uint64_t expiries = 0;       // sessions the cluster expired
  uint64_t operations = 0;     // client operations started
  uint64_t faults = 0;
  uint64_t end_time_ms = 0;
  // Membership (when this seed's operator changes it): acknowledged
  // additions (as learners), promotions, removals, and removals of the
  // node the operator last saw leading.
  bool membership = false;
  uint64_t adds = 0;
  uint64_t promotes = 0;
  uint64_t removes = 0;
  uint64_t leader_removals = 0;
  // Principals: whether this seed's clients intrude on other principals'
  // sessions and how often they did, and the commands applied
  // PERMISSION_DENIED; whether it has small bounds, and the commands
  // applied RESOURCE_EXHAUSTED.
  bool intrusion = false;
  uint64_t intrusions = 0;
  uint64_t denied = 0;
  bool bounded = false;
  uint64_t exhausted = 0;
};

NodeSimResult run_node_simulation(const NodeSimOptions& options);

// Parses a node-level bug name: "none", "ack-before-sync",
// "expire-on-old-deadline", "early-lock-delay", "snapshot-latest-conf".
bool parse_node_bug(const std::string& name, server::InjectedBug* bug);
// Parses "some", "every" or "none".
bool parse_membership_mode(const std::string& name, MembershipMode* mode);

}  // namespace fencelock::sim
