#include "tests/faults/checker.h"

#include <algorithm>

namespace fencelock::faults {

namespace {

class Violations {
 public:
  explicit Violations(Report& report) : report_(report) {}
  void add(const std::string& kind, const std::string& what) {
    ++report_.violation_count;
    if (++per_kind_[kind] <= 5) report_.violations.push_back(kind + ": " + what);
  }

 private:
  Report& report_;
  std::map<std::string, int> per_kind_;
};

std::string t(uint64_t token) { return "token " + std::to_string(token); }

// 1. The resource accepted no token lower than a conflicting one it had
// accepted for the same lock (for an exclusive holder: any newer token; for
// a shared reader: a newer exclusive one — shared readers may interleave),
// and every accepted write added exactly one to the value the previous
// accepted write left (no lost update).
void check_fencing(const std::vector<ResourceOp>& ops, const std::map<std::string, int64_t>& values,
                   Report& report, Violations& violations) {
  std::map<std::string, uint64_t> highest;
  std::map<std::string, uint64_t> highest_exclusive;
  std::map<std::string, int64_t> current;
  std::map<std::string, int64_t> accepted_writes;
  for (const auto& op : ops) {
    op.write ? ++report.writes : ++report.reads;
    if (!op.accepted) {
      ++report.rejected;
      continue;
    }
    uint64_t& high = highest[op.lock];
    uint64_t& high_exclusive = highest_exclusive[op.lock];
    uint64_t conflicting = op.mode == lockpb::EXCLUSIVE ? high : high_exclusive;
    if (op.token < conflicting) {
      violations.add("fencing", op.lock + ": accepted " + t(op.token) + " after " + t(conflicting) +
                                    " (op " + std::to_string(op.seq) + ")");
    }
    high = std::max(high, op.token);
    if (op.mode == lockpb::EXCLUSIVE) high_exclusive = std::max(high_exclusive, op.token);
    if (!op.write) continue;
    ++accepted_writes[op.lock];
    int64_t& value = current[op.lock];
    if (op.value != value + 1) {
      ++report.lost_updates;
      violations.add("lost-update", op.lock + ": " + t(op.token) + " wrote " + std::to_string(op.value) +
                                        " over " + std::to_string(value) + " (op " +
                                        std::to_string(op.seq) + ")");
    }
    value = op.value;
  }
  for (const auto& [lock, writes] : accepted_writes) {
    auto it = values.find(lock);
    int64_t value = it == values.end() ? 0 : it->second;
    if (value != writes) {
      violations.add("lost-update", lock + ": value " + std::to_string(value) + " but " +
                                        std::to_string(writes) + " accepted increments");
    }
  }
}

// 2. No two grants carried the same token; a grant acknowledged before
// another acquire was sent has the lower token (the counter is one
// cluster-wide linearizable sequence, so this holds across locks too).
void check_tokens(std::vector<Grant> grants, Violations& violations) {
  std::map<uint64_t, const Grant*> by_token;
  for (const auto& g : grants) {
    auto [it, inserted] = by_token.emplace(g.token, &g);
    if (!inserted) {
      violations.add("uniqueness", t(g.token) + " granted twice: " + it->second->lock + " to session " +
                                       std::to_string(it->second->session) + " and " + g.lock +
                                       " to session " + std::to_string(g.session));
    }
  }
  auto by_ack = grants;
  std::sort(by_ack.begin(), by_ack.end(), [](const Grant& a, const Grant& b) { return a.acked_us < b.acked_us; });
  std::sort(grants.begin(), grants.end(), [](const Grant& a, const Grant& b) { return a.sent_us < b.sent_us; });
  size_t acked = 0;
  const Grant* highest = nullptr;
  for (const auto& g : grants) {
    while (acked < by_ack.size() && by_ack[acked].acked_us < g.sent_us) {
      if (!highest || by_ack[acked].token > highest->token) highest = &by_ack[acked];
      ++acked;
    }
    if (highest && highest->token >= g.token) {
      violations.add("order", t(g.token) + " (" + g.lock + ") was acquired after " + t(highest->token) +
                                  " (" + highest->lock + ") had been granted");
    }
  }
}

// 3. Every acknowledged grant and release is reflected in the final state.
void check_durability(const std::vector<Grant>& grants, const std::vector<Release>& releases,
                      const FinalState& final_state, Violations& violations) {
  if (!final_state.read) {
    violations.add("durability", "cannot read the final state: " + final_state.error);
    return;
  }
  std::map<uint64_t, const Release*> release_of;
  for (const auto& r : releases) release_of[r.token] = &r;
  std::map<uint64_t, std::pair<std::string, uint64_t>> held;  // token -> (lock, session)
  for (const auto& [lock, holders] : final_state.holders) {
    for (const auto& h : holders) held[h.token()] = {lock, h.session_id()};
  }
  std::set<uint64_t> acknowledged;
  for (const auto& g : grants) {
    acknowledged.insert(g.token);
    if (g.token >= final_state.fresh_token) {
      violations.add("durability", "acknowledged " + t(g.token) + " but the counter has reached only " +
                                       std::to_string(final_state.fresh_token));
    }
    auto released = release_of.find(g.token);
    bool is_held = held.contains(g.token);
    if (released != release_of.end() && released->second->outcome == ReleaseOutcome::kOk) {
      if (is_held) violations.add("durability", "release of " + t(g.token) + " acknowledged, still held");
      continue;
    }
    if (released != release_of.end() && released->second->outcome == ReleaseOutcome::kIndeterminate) {
      continue;  // it may or may not have applied
    }
    // Not released (or a definite failure, which means it was no longer
    // held): if its session is alive, the grant must still be held — a
    // live session's grant ends only by release.
    bool released_or_failed = released != release_of.end() && released->second->outcome == ReleaseOutcome::kFailed;
    if (final_state.live_sessions.contains(g.session) && !released_or_failed && !is_held) {
      violations.add("durability", g.lock + ": " + t(g.token) + " of live session " +
                                       std::to_string(g.session) + " acknowledged, never released, not held");
    }
  }
  for (uint64_t session : final_state.believed_alive) {
    if (!final_state.live_sessions.contains(session)) {
      violations.add("durability", "session " + std::to_string(session) +
                                       " is alive by its client's safe-until, but not on the cluster");
    }
  }
  // A holder that is a worker's current session must be a grant that
  // session saw acknowledged (workers drop a session after any acquire
  // with an unknown outcome).
  for (const auto& [token, where] : held) {
    if (final_state.worker_sessions.contains(where.second) && !acknowledged.contains(token)) {
      violations.add("durability", where.first + ": " + t(token) + " held by worker session " +
                                       std::to_string(where.second) + " that never saw it granted");
    }
  }
}

// 4. Overlaps: an operation whose token is lower than a conflicting one the
// resource had already accepted for the lock (a newer exclusive holder, or
// for an exclusive holder any newer holder) comes from a holder who still
// believed it held the lock after the lock had passed on. Every such holder
// must have been refused by the fence.
void check_overlaps(const std::vector<ResourceOp>& ops, const std::vector<Grant>& grants, Report& report,
                    Violations& violations) {
  std::map<std::string, uint64_t> highest_any;
  std::map<std::string, uint64_t> highest_exclusive;
  std::set<uint64_t> stale;
  std::set<uint64_t> unfenced;
  for (const auto& op : ops) {
    uint64_t newer = op.mode == lockpb::EXCLUSIVE ? highest_any[op.lock] : highest_exclusive[op.lock];
    if (newer > op.token) {
      stale.insert(op.token);
      if (op.accepted) unfenced.insert(op.token);
    } else if (!op.accepted && op.mode == lockpb::SHARED) {
      ++report.shared_rejected;  // refused because of a newer shared reader: safe, not needed
    }
    if (!op.accepted) continue;
    highest_any[op.lock] = std::max(highest_any[op.lock], op.token);
    if (op.mode == lockpb::EXCLUSIVE) highest_exclusive[op.lock] = std::max(highest_exclusive[op.lock], op.token);
  }
  report.overlaps = static_cast<int64_t>(stale.size());
  report.fenced = static_cast<int64_t>(stale.size() - unfenced.size());
  for (uint64_t token : unfenced) {
    violations.add("overlap", t(token) + " reached the resource after a newer holder and was accepted");
  }
  // Client beliefs: a grant is believed held from its acknowledgement to
  // its last act (the release sent, or its last resource operation).
  std::map<uint64_t, int64_t> last_act;
  for (const auto& op : ops) last_act[op.token] = std::max(last_act[op.token], op.t_us);
  std::map<std::string, std::vector<std::pair<int64_t, int64_t>>> exclusive;  // lock -> [from, to]
  std::map<std::string, std::vector<std::pair<int64_t, int64_t>>> shared;
  for (const auto& g : grants) {
    int64_t end = std::max(g.acked_us, last_act[g.token]);
    (g.mode == lockpb::EXCLUSIVE ? exclusive : shared)[g.lock].emplace_back(g.acked_us, end);
  }
  auto overlapping = [](std::pair<int64_t, int64_t> a, std::pair<int64_t, int64_t> b) {
    return a.first < b.second && b.first < a.second;
  };
  for (auto& [lock, intervals] : exclusive) {
    for (size_t i = 0; i < intervals.size(); ++i) {
      for (size_t j = i + 1; j < intervals.size(); ++j) {
        if (overlapping(intervals[i], intervals[j])) ++report.belief_overlaps;
      }
      for (const auto& s : shared[lock]) {
        if (overlapping(intervals[i], s)) ++report.belief_overlaps;
      }
    }
  }
}

}  // namespace

Report check(const std::vector<Grant>& grants, const std::vector<Release>& releases,
             const std::vector<ResourceOp>& ops, const std::map<std::string, int64_t>& values,
             const FinalState& final_state, const Liveness& liveness) {
  Report report;
  Violations violations(report);
  report.grants = static_cast<int64_t>(grants.size());
  for (const auto& r : releases) report.releases_ok += r.outcome == ReleaseOutcome::kOk;
  check_fencing(ops, values, report, violations);
  check_tokens(grants, violations);
  check_durability(grants, releases, final_state, violations);
  check_overlaps(ops, grants, report, violations);
  if (!liveness.ok) {
    violations.add("liveness", liveness.error.empty()
                                   ? "acquires took " + std::to_string(liveness.elapsed_ms) +
                                         " ms after the last heal, bound " + std::to_string(liveness.bound_ms) + " ms"
                                   : liveness.error);
  }
  return report;
}

}  // namespace fencelock::faults

