#pragma once
// Ready: everything the core asks its driver to do, as one value.
//
// CONTRACT — the order of work. This comment is the one place it is written;
// raft/driver.h is the one place it is carried out (the server, the
// simulator and the Raft test cluster all run that driver):
//
//   Ready rd = node.ready();
//   1. PERSIST, in one write, synced when rd.must_sync: rd.hard_state (if set), rd.entries
//      (append; an entry at an existing index replaces it and everything
//      after it), rd.snapshot (if set: replaces the log).
//      rd.messages may be sent before or while this write happens: they are
//      the leader's own AppendEntries/heartbeats/snapshots, which promise
//      nothing about this node's disk (docs/design.md "Durability": the leader
//      may write its own log in parallel with sending it). An append that
//      carries a ConfChange the leader has not written yet is the exception:
//      it is in messages_after_persist (a follower acts on a configuration
//      as soon as it appends it, raft/membership.h).
//   2. SEND rd.messages_after_persist — only after step 1 is durable. They
//      promise durable state: votes and vote requests (a term and voted_for),
//      AppendEntries acknowledgements (entries on disk), and every other
//      message a follower or candidate sends.
//   3. APPLY: if rd.snapshot is set, restore the state machine from it; then
//      apply rd.committed_entries in order. rd.read_states name a commit
//      index: serve that read once the state machine has applied it.
//      When rd.snapshot is not set, this step may come before step 1 (and
//      run while the write is in flight): committed entries are already on
//      a quorum's disks, so applying and answering them does not depend on
//      this node's write (etcd's server applies in parallel with its WAL
//      write for the same reason). The snapshot the driver takes of its
//      state machine must still wait for step 4.
//   4. node.advance() — no mutating call (tick, step, propose, read_index,
//      transfer_leadership, report_snapshot, ready) may come between ready()
//      and advance(); the node aborts otherwise. Const accessors are fine.
//
// The leader counts its own log in a commit quorum only at advance(), i.e.
// after its entries are persisted, never before.
//
// Thread-safety: a value type.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/raft.pb.h"

namespace fencelock::raft {

enum class Role { kFollower, kPreCandidate, kCandidate, kLeader };

std::string_view role_name(Role role);

// Volatile state a caller may want to observe; reported when it changes.
struct SoftState {
  uint64_t leader_id = 0;  // 0 = unknown
  Role role = Role::kFollower;

  friend bool operator==(const SoftState&, const SoftState&) = default;
};

// A linearizable read (Raft dissertation §6.4) is safe once the state
// machine has applied `index`. `context` is the caller's read_index() context.
struct ReadState {
  uint64_t index = 0;
  std::string context;
};

struct Ready {
  std::optional<SoftState> soft_state;                  // set when leader or role changed
  std::optional<raftpb::HardState> hard_state;          // persist (step 1) when set
  std::vector<raftpb::Entry> entries;                   // persist (step 1)
  std::optional<raftpb::Snapshot> snapshot;             // persist (step 1), restore (step 3)
  std::vector<raftpb::Message> messages;                // may go out immediately
  std::vector<raftpb::Message> messages_after_persist;  // only after step 1
  std::vector<raftpb::Entry> committed_entries;         // apply (step 3)
  std::vector<ReadState> read_states;                   // serve after applying their index
  // The latest configuration (raft/membership.h), set when it changed: a
  // ConfChange was appended or truncated away, or a snapshot replaced the
  // log. It is in force already (peers to dial, members to name); it need
  // not be committed yet.
  std::optional<raftpb::ConfState> conf_state;
  // A follower's Ready whose every new entry came in appends the leader
  // marked lazy_persist, and whose messages_after_persist are only
  // acknowledgements (no vote, no forwarded request): the driver may hold
  // it for a short window and persist it together with what arrives
  // meanwhile (no core call may come in between, so inputs wait). Only
  // latency changes: step 2 still follows step 1.
  bool persist_lazily = false;
  // Whether step 1 must be synced before step 2: it writes entries or a
  // snapshot, or changes the term or the vote (Raft §5.1, Figure 2: these
  // are what a node promises to remember). A hard state that only moves
  // the commit index need not be: the commit index is a hint the leader
  // repeats, and a node restarted with an older one only applies less
  // until it hears from the leader (etcd's MustSync, for the same reason).
  bool must_sync = false;

  // Whether step 1 has anything to write.
  bool must_persist() const { return hard_state || !entries.empty() || snapshot; }
};

}  // namespace fencelock::raft
