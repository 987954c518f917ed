#include "tests/faults/schedule.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <numeric>
#include <random>

namespace fencelock::faults {

const char* kind_name(FaultKind kind) {
  switch (kind) {
    case FaultKind::kKill: return "kill";
    case FaultKind::kPause: return "pause";
    case FaultKind::kIsolateLeader: return "isolate-leader";
    case FaultKind::kSplit: return "split";
    case FaultKind::kBridge: return "bridge";
    case FaultKind::kOneWay: return "one-way";
    case FaultKind::kClientCut: return "client-cut";
    case FaultKind::kWorkerStall: return "worker-stall";
  }
  return "?";
}

namespace {

// Draws from std::mt19937_64 only through these helpers: the standard
// distributions are not specified bit for bit, so the same seed would give
// another schedule with another standard library.
int64_t uniform(std::mt19937_64& rng, int64_t lo, int64_t hi) {
  return lo + static_cast<int64_t>(rng() % static_cast<uint64_t>(hi - lo + 1));
}

std::vector<uint64_t> permutation(std::mt19937_64& rng, int nodes) {
  std::vector<uint64_t> ids(static_cast<size_t>(nodes));
  std::iota(ids.begin(), ids.end(), 1);
  for (size_t i = ids.size() - 1; i > 0; --i) {
    std::swap(ids[i], ids[static_cast<size_t>(uniform(rng, 0, static_cast<int64_t>(i)))]);
  }
  return ids;
}

}  // namespace

std::vector<Fault> make_schedule(const ScheduleOptions& options) {
  std::mt19937_64 rng(options.seed);
  std::vector<Fault> out;
  const int64_t longest_wait = std::max(options.ttl_ms, 2 * options.election_timeout_ms);
  const int max_node_faults = (options.nodes - 1) / 2;
  std::map<uint64_t, int64_t> node_busy_until;  // node faults with a concrete target
  std::vector<int64_t> node_fault_ends;         // every node fault, for the concurrency bound
  // Faults end by the run's end minus a little, so the last heal is the
  // driver's, at run_ms.
  const int64_t last_start = options.run_ms - 500;
  bool stalled = false;
  int64_t t = 1000;
  while (t < last_start) {
    Fault fault;
    fault.start_ms = t;
    if (!stalled && t >= options.first_stall_ms) {
      fault.kind = FaultKind::kWorkerStall;
      stalled = true;
    } else {
      int64_t roll = uniform(rng, 0, 99);
      if (roll < 20) fault.kind = FaultKind::kKill;
      else if (roll < 35) fault.kind = FaultKind::kPause;
      else if (roll < 45) fault.kind = FaultKind::kIsolateLeader;
      else if (roll < 55) fault.kind = FaultKind::kSplit;
      else if (roll < 62) fault.kind = FaultKind::kBridge;
      else if (roll < 70) fault.kind = FaultKind::kOneWay;
      else if (roll < 85) fault.kind = FaultKind::kClientCut;
      else fault.kind = FaultKind::kWorkerStall;
    }
    std::erase_if(node_fault_ends, [t](int64_t end) { return end <= t; });
    bool node_fault = fault.kind == FaultKind::kKill || fault.kind == FaultKind::kPause;
    if (node_fault && static_cast<int>(node_fault_ends.size()) >= max_node_faults) {
      fault.kind = FaultKind::kSplit;  // the bound is reached: a partition instead
      node_fault = false;
    }
    auto ids = permutation(rng, options.nodes);
    switch (fault.kind) {
      case FaultKind::kKill:
        fault.duration_ms = uniform(rng, 300, 3000);
        break;
      case FaultKind::kPause:
        // Longer than the TTL and than any election timeout: the paused
        // node's sessions and leadership pass on while it sleeps.
        fault.duration_ms = uniform(rng, longest_wait + 300, longest_wait + 2500);
        break;
      case FaultKind::kIsolateLeader:
        fault.duration_ms = uniform(rng, 1000, 4000);
        break;
      case FaultKind::kSplit:
        fault.duration_ms = uniform(rng, 1000, 5000);
        fault.group.assign(ids.begin(), ids.begin() + (options.nodes - 1) / 2);
        break;
      case FaultKind::kBridge:
        fault.duration_ms = uniform(rng, 1000, 5000);
        fault.node = ids[0];
        fault.group.assign(ids.begin() + 1, ids.begin() + 1 + (options.nodes - 1) / 2);
        break;
      case FaultKind::kOneWay:
        fault.duration_ms = uniform(rng, 1000, 5000);
        fault.node = ids[0];
        fault.to = ids[1];
        break;
      case FaultKind::kClientCut:
        fault.duration_ms = uniform(rng, 300, 3000);
        fault.worker = static_cast<int>(uniform(rng, 0, options.workers - 1));
        break;
      case FaultKind::kWorkerStall:
        fault.duration_ms = 3 * longest_wait + 3000;
        fault.worker = static_cast<int>(uniform(rng, 0, options.workers - 1));
        break;
    }
    if (node_fault) {
      fault.prefer_leader = uniform(rng, 0, 1) == 0;
      // A concrete target: the first node free at t in the drawn order.
      fault.node = ids[0];
      for (uint64_t id : ids) {
        if (node_busy_until[id] <= t) {
          fault.node = id;
          break;
        }
      }
      node_busy_until[fault.node] = t + fault.duration_ms;
      node_fault_ends.push_back(t + fault.duration_ms);
    }
    fault.duration_ms = std::min(fault.duration_ms, options.run_ms - t);
    out.push_back(fault);
    t += uniform(rng, 300, 2500);
  }
  return out;
}

std::string describe(const Fault& fault) {
  auto list = [](const std::vector<uint64_t>& ids) {
    std::string s;
    for (uint64_t id : ids) s += (s.empty() ? "n" : ",n") + std::to_string(id);
    return s;
  };
  std::string target;
  switch (fault.kind) {
    case FaultKind::kKill:
    case FaultKind::kPause:
      target = fault.prefer_leader ? "leader (else n" + std::to_string(fault.node) + ")"
                                   : "n" + std::to_string(fault.node);
      break;
    case FaultKind::kIsolateLeader: target = "leader | rest"; break;
    case FaultKind::kSplit: target = list(fault.group) + " | rest"; break;
    case FaultKind::kBridge:
      target = list(fault.group) + " | rest, bridged by n" + std::to_string(fault.node);
      break;
    case FaultKind::kOneWay:
      target = "n" + std::to_string(fault.node) + " -/-> n" + std::to_string(fault.to);
      break;
    case FaultKind::kClientCut:
    case FaultKind::kWorkerStall: target = "worker " + std::to_string(fault.worker); break;
  }
  char line[256];
  std::snprintf(line, sizeof line, "+%7.3fs %-14s %-32s for %.3fs", fault.start_ms / 1000.0,
                kind_name(fault.kind), target.c_str(), fault.duration_ms / 1000.0);
  return line;
}

}  // namespace fencelock::faults
