#pragma once
// Membership: which nodes make up the cluster at each point of the log.
//
// fencelock changes membership one server at a time (Ongaro's dissertation
// §4.1, with the fix he posted to raft-dev in 2015): every configuration
// differs from the one before it by one node, so any majority of the old
// voters and any majority of the new ones share a node, and two leaders
// can never be elected by disjoint quorums. Three rules make that hold:
//
//   1. A node uses the LATEST configuration in its log, committed or not,
//      from the moment the ConfChange entry is appended. When a conflicting
//      suffix is replaced, the configuration reverts with it.
//   2. A leader proposes a change only once an entry of its own term is
//      committed (the fix: a leader elected under an older configuration
//      first learns every committed change).
//   3. A leader proposes a change only when no other change is uncommitted
//      (and never removes itself: it hands leadership over first).
//
// A voter whose latest configuration removes it may still campaign and
// lead (counting that configuration's votes, not its own) until it knows
// the removal committed; then it steps down (RawNode::removal_pending).
//
// The configuration is data carried in the log (ENTRY_CONF_CHANGE entries,
// their data a raftpb::ConfChange) and in snapshots (SnapshotMetadata's
// ConfState). Learners receive the log and snapshots but never campaign
// and never count toward a quorum. docs/design.md "Membership change" has
// the whole design: joiners, removed nodes, bootstrap entries.
//
// This class keeps the configuration after every ConfChange entry still in
// the log, keyed by index, above a base (the snapshot's configuration), so
// truncation can revert and a snapshot at any applied index names the
// configuration of that index.
//
// Thread-safety: not thread-safe; owned by one CoreLog.

#include <cstdint>
#include <map>
#include <vector>

#include "proto/raft.pb.h"
#include "raft/status.h"

namespace fencelock::raft {

// Applies one change to `conf`, or says why it cannot be applied:
// kInvalidArgument for adding a voter that is already one, adding as a
// learner a node already in the configuration, removing a node that is not
// in it, removing the last voter, or node id 0. Voters, learners and
// members stay sorted.
Result<raftpb::ConfState> apply_conf_change(const raftpb::ConfState& conf,
                                            const raftpb::ConfChange& change);

// Whether `id` votes / learns / is in `conf` at all.
bool is_voter(const raftpb::ConfState& conf, uint64_t id);
bool is_learner(const raftpb::ConfState& conf, uint64_t id);
bool is_member(const raftpb::ConfState& conf, uint64_t id);

// The entries a brand-new cluster starts its log with, identical on every
// node: at indices 1..n, term 1, one ADD_VOTER per member in id order. A
// node that joins later catches up from index 1 and so learns the first
// configuration like every later one. The caller persists them with a hard
// state of term 1 committing all of them (they are the same everywhere, so
// they are committed by construction, as etcd bootstraps).
std::vector<raftpb::Entry> bootstrap_entries(std::vector<raftpb::Member> members);

class Membership {
 public:
  // The configuration in force at `base_index` (a snapshot's index, or 0).
  void reset(uint64_t base_index, raftpb::ConfState base);

  // Forgets the configurations of entries at `index` and after: the log
  // was truncated there.
  void truncate_from(uint64_t index);

  // Records `entry`, just appended, when it is a ConfChange. A change that
  // does not apply (it cannot come from a correct leader, rule 3 and
  // propose-time checks prevent it) is skipped, the same way on every
  // node, and returns false.
  bool append(const raftpb::Entry& entry);

  // The latest configuration (rule 1) and the index of the entry that made
  // it (the base index when no ConfChange follows the base).
  const raftpb::ConfState& latest() const;
  uint64_t latest_index() const;

  // The configuration in force at `index` (>= the base index).
  const raftpb::ConfState& at(uint64_t index) const;

  // The base: where the known history of the configuration starts (0, or
  // a snapshot's index), and the configuration in force there.
  uint64_t base_index() const { return by_index_.begin()->first; }
  const raftpb::ConfState& base() const { return by_index_.begin()->second; }

  // Counts the calls that may have changed latest(): a cheap "maybe
  // changed" test for callers that follow it.
  uint64_t generation() const { return generation_; }

 private:
  std::map<uint64_t, raftpb::ConfState> by_index_{{0, raftpb::ConfState()}};
  uint64_t generation_ = 0;
};

}  // namespace fencelock::raft
