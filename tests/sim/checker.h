#pragma once
// Checker: the Raft safety properties (Raft paper Figure 3), checked by the
// simulator after every step against what the nodes persisted and applied.
//
//   election safety        at most one leader per term
//   leader append-only     a leader never overwrites or deletes its entries
//   log matching           entries with the same index and term have the same
//                          data and the same predecessor term (by induction:
//                          identical prefixes)
//   leader completeness    a leader of term t holds every entry committed in
//                          a term before t
//   state machine safety   no two nodes apply different commands at one index
//
// The first violation is kept (later ones are usually consequences).
//
// Thread-safety: not thread-safe.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "proto/raft.pb.h"
#include "raft/memory_storage.h"

namespace fencelock::sim {

uint64_t hash_bytes(const std::string& data);
// The state machine's running hash after applying (index, data) to `prev`.
uint64_t fold_hash(uint64_t prev, uint64_t index, uint64_t data_hash);

class Checker {
 public:
  bool ok() const { return !violation_; }
  const std::optional<std::string>& violation() const { return violation_; }
  void fail(std::string what);

  uint64_t elections() const { return leaders_.size(); }
  uint64_t commits() const { return applied_.size(); }
  uint64_t highest_committed() const { return commit_terms_.size(); }

  // Node `id` is leader at `term` (checked every step). `storage` is its
  // persisted log, which equals its whole log between steps.
  void observe_leader(uint64_t id, uint64_t term, const raft::MemoryStorage& storage);

  // Node `id`, at `term`, reports commit index `commit`.
  void observe_commit(uint64_t id, uint64_t term, uint64_t commit,
                      const raft::MemoryStorage& storage);

  // A node that may still campaign or vote: its id (at most kMaxNodeId)
  // and persisted log.
  static constexpr uint64_t kMaxNodeId = 64;
  struct Candidate {
    uint64_t id;
    const raft::MemoryStorage* storage;
  };

  // Leader completeness, checked before a leader exists: every node lacking
  // the latest committed entry must be unable to win an election, i.e. a
  // majority of the voters of its own configuration (the latest in its
  // persisted log, as it would campaign with) must have logs more up to
  // date than its own (Raft §5.4.3's argument, which single-server
  // membership changes keep: any two successive configurations share a
  // node of every majority). A node that is no voter of its own
  // configuration cannot campaign, unless that configuration removed it
  // and its persisted commit index does not cover the removal (as
  // raft::RawNode allows, counting the votes of the latest configuration
  // only). `nodes` are the nodes that exist,
  // crashed ones included (they restart with their log); a voter of the
  // configuration that is gone for good gives no vote.
  void check_electable(const std::vector<Candidate>& nodes);

  // Node `id` is about to persist `entries` into `storage` (before the
  // write). `leader_term` is its term if it is the leader, else 0.
  void observe_persist(uint64_t id, uint64_t leader_term, const std::vector<raftpb::Entry>& entries,
                       const raft::MemoryStorage& storage);

  // Node `id` applies an entry; `state_hash` is its state machine hash after it.
  void observe_apply(uint64_t id, const raftpb::Entry& entry, uint64_t state_hash);

  // Node `id` restores a snapshot at `index` whose state hash is `state_hash`.
  void observe_restore(uint64_t id, uint64_t index, uint64_t state_hash);

  // A client proposal was accepted at (index, term) with `data`.
  void observe_proposal(uint64_t index, uint64_t term, const std::string& data);

  // The data hash applied at `index`, if any node applied it.
  std::optional<uint64_t> applied_hash(uint64_t index) const;

 private:
  struct Applied {
    uint64_t term;
    uint64_t data_hash;
    uint64_t state_hash;  // prefix hash through this index
  };
  struct Written {
    uint64_t data_hash;
    uint64_t prev_term;
  };
  void check_leader_holds(uint64_t id, uint64_t leader_term, uint64_t index,
                          const raft::MemoryStorage& storage);
  uint64_t entry_term_of(uint64_t index) const;
  // The configurations in a persisted log: the latest, the one before it
  // and the index of the entry that made the latest (0: the base). Cached
  // per node while the log's last entry stays the same.
  struct LogConfiguration {
    raftpb::ConfState latest;
    raftpb::ConfState previous;
    uint64_t latest_index = 0;
  };
  const LogConfiguration& configuration_of(uint64_t id, const raft::MemoryStorage& storage);

  std::optional<std::string> violation_;
  std::map<uint64_t, uint64_t> leaders_;                           // term -> leader id
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> leader_logs_;  // id -> (term, last index)
  std::map<std::pair<uint64_t, uint64_t>, Written> written_;       // (index, term) -> entry
  std::vector<Applied> applied_;                                   // applied_[i - 1] for index i
  // commit_terms_[i - 1]: (term at which index i was first seen committed,
  // entry term or 0 if unknown at the time).
  std::vector<std::pair<uint64_t, uint64_t>> commit_terms_;
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> proposals_;  // (index, term) -> data hash
  std::map<uint64_t, std::pair<uint64_t, uint64_t>>
      current_leaders_;  // id -> (term, checked up to)
  struct CachedConf {
    bool known = false;
    std::pair<uint64_t, uint64_t> log;  // last index and term
    LogConfiguration conf;
  };
  std::map<uint64_t, CachedConf> confs_;  // node id -> its log's latest configuration
};

}  // namespace fencelock::sim
