#pragma once
// The checks of fencelock-faults (docs/faults.md "What it checks"): fencing
// and lost updates at the resource, uniqueness and order of tokens,
// durability of acknowledged grants and releases, overlaps of exclusive
// holders and whether the fence stopped them, liveness after the last heal.
//
// Thread-safety: pure functions over copies of the history.

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "proto/client.pb.h"
#include "tests/faults/history.h"
#include "tests/faults/resource.h"

namespace fencelock::faults {

// The cluster's state read at the end, after every fault healed and every
// worker stopped (sessions still open).
struct FinalState {
  bool read = false;  // false: the reads failed (a violation by itself)
  std::string error;
  std::map<std::string, std::vector<clientpb::Holder>> holders;  // every hot lock
  std::set<uint64_t> live_sessions;        // list_sessions
  std::set<uint64_t> believed_alive;       // worker sessions not lost after the listing
  std::set<uint64_t> worker_sessions;      // every session a worker still had at the end
  uint64_t fresh_token = 0;                // a grant taken after the reads
};

struct Liveness {
  bool ok = false;
  int64_t elapsed_ms = 0;  // from the last heal to the last probe acquire
  int64_t bound_ms = 0;
  std::string error;
};

struct Report {
  std::vector<std::string> violations;  // the first few of each kind, described
  int64_t violation_count = 0;
  int64_t grants = 0;
  int64_t releases_ok = 0;
  int64_t reads = 0;
  int64_t writes = 0;
  int64_t rejected = 0;
  int64_t lost_updates = 0;
  int64_t overlaps = 0;         // stale holders that reached the resource after a newer one
  int64_t fenced = 0;           // ... whose every stale operation the resource rejected
  int64_t belief_overlaps = 0;  // pairs of grants both believed held at overlapping times
  int64_t shared_rejected = 0;  // shared readers refused because of a newer shared reader
};

Report check(const std::vector<Grant>& grants, const std::vector<Release>& releases,
             const std::vector<ResourceOp>& ops, const std::map<std::string, int64_t>& values,
             const FinalState& final_state, const Liveness& liveness);

}  // namespace fencelock::faults
