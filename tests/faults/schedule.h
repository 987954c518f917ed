#pragma once
// The nemesis schedule of fencelock-faults: which fault starts when, for how
// long, against what. A pure function of the seed and the run's shape, so
// the same seed prints the same schedule (docs/faults.md). Targets that
// depend on the running cluster ("the leader") stay symbolic here and are
// resolved when the fault starts; the history records the resolution.
//
// Thread-safety: plain values and pure functions.

#include <cstdint>
#include <string>
#include <vector>

namespace fencelock::faults {

enum class FaultKind {
  kKill,           // SIGKILL a node, restart it when the fault ends
  kPause,          // SIGSTOP a node, SIGCONT when the fault ends
  kIsolateLeader,  // cut every link to and from the leader
  kSplit,          // majority/minority partition
  kBridge,         // two halves that cannot see each other, one node sees both
  kOneWay,         // drop the messages of one directed peer link
  kClientCut,      // cut one worker's client links
  kWorkerStall,    // a worker stalls inside its critical section (a GC pause)
};

const char* kind_name(FaultKind kind);

struct Fault {
  int64_t start_ms = 0;     // since the run started
  int64_t duration_ms = 0;  // a stall ends by itself (see worker); this bounds it
  FaultKind kind = FaultKind::kKill;
  // kKill, kPause: target the leader (resolved when the fault starts) or
  // `node`. A node already killed or paused gives way to the lowest free one.
  bool prefer_leader = false;
  uint64_t node = 0;
  // kSplit: `group` is the minority. kBridge: `node` is the bridge, `group`
  // one half, the rest the other half. kOneWay: `node` dials `to`.
  std::vector<uint64_t> group;
  uint64_t to = 0;
  int worker = -1;  // kClientCut, kWorkerStall
};

struct ScheduleOptions {
  uint64_t seed = 0;
  int nodes = 3;
  int workers = 8;
  int64_t run_ms = 60000;
  int64_t ttl_ms = 1000;
  int64_t election_timeout_ms = 500;  // the minimum; elections take up to twice this
  // A worker stall is scheduled this early in every run, so even a short
  // run shows what a paused holder does (docs/faults.md).
  int64_t first_stall_ms = 2000;
};

// The faults, by start time. Node faults (kill, pause) never overlap on one
// node, and at most (nodes - 1) / 2 run at once, so a majority of processes
// is always alive (partitions may still leave no quorum).
std::vector<Fault> make_schedule(const ScheduleOptions& options);

// One line: "+12.345s pause   leader (else n2) for 2.100s".
std::string describe(const Fault& fault);

}  // namespace fencelock::faults
