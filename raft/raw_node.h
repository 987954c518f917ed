#pragma once
// RawNode: the Raft consensus core (Ongaro & Ousterhout, "In Search of an
// Understandable Consensus Algorithm", and Ongaro's dissertation), modelled
// on etcd-io/raft's RawNode.
//
// The node does no I/O and reads no clock: time is tick(), input is step()
// and the client calls, output is ready(), whose contract comment (ready.h)
// is the order of work. All randomness (the election timeout) comes from a
// std::mt19937_64 seeded from Config::seed, so a run is reproducible.
//
// Implemented: leader election with randomized timeouts (§5.2), pre-vote
// (dissertation §9.6) and check-quorum (§6.2); log replication with
// pipelining, probing after a rejection and fast backtracking (§5.3); the
// §5.4.2 commit rule; batching of proposals made between two ready() calls;
// InstallSnapshot (§7); ReadIndex (dissertation §6.4); leadership transfer
// (dissertation §3.10); single-server membership change with learners
// (dissertation §4.1, raft/membership.h: a node uses the latest
// configuration in its log, and a leader changes one node at a time, only
// after an entry of its term has committed).
//
// Thread-safety: not thread-safe. One thread (the node's event loop) makes
// every call.

#include <spdlog/logger.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "raft/log_storage.h"
#include "raft/progress.h"
#include "raft/core_log.h"
#include "raft/ready.h"
#include "raft/status.h"

namespace fencelock::raft {

// Deliberate protocol bugs the simulator's checker must catch. TEST ONLY:
// never set outside tests; kNone in every real configuration.
enum class InjectedBug {
  kNone,
  // Commit an entry of a previous term by counting replicas, which
  // Raft §5.4.2 (Figure 8) forbids.
  kCommitPreviousTermByCounting,
  // Grant votes without the §5.4.1 up-to-date check.
  kVoteWithoutLogCheck,
  // Let a new leader change the configuration before an entry of its term
  // has committed (the single-server bug Ongaro fixed on raft-dev in 2015).
  kConfChangeBeforeLeaderCommit,
  // Let a leader append a change while an earlier one is uncommitted.
  kTwoUncommittedConfChanges,
};

struct Config {
  uint64_t id = 0;  // this node's id, non-zero
  // The initial voters, used only when neither storage nor the log names a
  // configuration (tests that start without bootstrap_entries()); a node
  // joining a running cluster has none and learns it from the leader.
  std::vector<uint64_t> voters;
  int election_ticks = 10;  // election timeout is drawn from [election_ticks, 2*election_ticks)
  int heartbeat_ticks = 1;  // leader sends heartbeats every heartbeat_ticks; < election_ticks
  size_t max_inflight_msgs = 256;       // AppendEntries in flight per follower (replicate state)
  uint64_t max_size_per_msg = 1 << 20;  // bytes of entries per AppendEntries (at least one entry)
  bool pre_vote = true;                 // dissertation §9.6
  bool check_quorum = true;             // dissertation §6.2: leader steps down without a quorum
  // The leader asks quorum-1 followers (the first to answer it, replaced
  // when one misses a heartbeat round) to persist appends at once and marks
  // its appends to the others lazy_persist: their writes then stay off the
  // disk while a commit waits for the prompt ones (Ready::persist_lazily).
  bool lazy_followers = true;
  uint64_t applied = 0;  // last index the state machine has applied (restart); counts as committed
  uint64_t seed = 0;     // seeds the election-timeout generator; logged at start-up
  InjectedBug test_only_inject_bug = InjectedBug::kNone;  // TEST ONLY, see InjectedBug
};

// Where a proposal landed in the log. The entry with this index commits
// with this term, or the proposal is lost (another entry commits at index).
struct ProposalId {
  uint64_t index = 0;
  uint64_t term = 0;
  friend bool operator==(const ProposalId&, const ProposalId&) = default;
};

// The leader's view of one voter, for status commands.
struct PeerProgress {
  uint64_t id = 0;
  uint64_t match_index = 0;
  uint64_t next_index = 0;
  ProgressState state = ProgressState::kProbe;
  bool recent_active = false;
  bool prompt = false;  // asked to persist appends at once (Config::lazy_followers)
  bool learner = false;  // receives the log, does not vote or count
};

class RawNode {
 public:
  // Recovers term, vote, commit index and configuration from `storage`,
  // which must outlive the node and which only the driver writes (as
  // Ready says). Starts as a follower with no leader. Aborts on an invalid
  // config or a storage whose hard state contradicts its log.
  RawNode(Config config, const LogStorage& storage, std::shared_ptr<spdlog::logger> logger);

  // Advances logical time by one tick: a follower or candidate starts an
  // election when its randomized timeout passes (Raft §5.2); a leader sends
  // heartbeats every heartbeat_ticks and, with check_quorum, steps down if
  // it did not hear from a majority within an election timeout.
  void tick();

  // Handles a message from a peer. Messages of an older term are dropped (or
  // answered so a stale leader learns the new term); a newer term makes the
  // node a follower first (Raft §5.1). Returns kWrongRecipient for a message
  // not addressed to this node and kUnknownMessage for one of an unknown
  // type; protocol outcomes (rejections, ignored votes) are OK. Never
  // aborts on a message's content: one it cannot act on without breaking
  // its log (a heartbeat committing beyond its last index, entries that do
  // not follow `index`, an acknowledgement beyond the leader's log, a term
  // or index near 2^64, a sender id of 0 or its own) is dropped with
  // kInvalidMessage and changes nothing. The server checks every message
  // first (raft/message_check.h); this is the second line.
  Status step(const raftpb::Message& message);

  // Appends `data` as a new entry when this node is the leader and no
  // leadership transfer is in progress; returns the (index, term) the entry
  // got. Replication starts at the next ready(): every proposal made before
  // it goes out in the same AppendEntries (batching). Otherwise returns
  // kNotLeader (the message names the leader when known), or kTransferring
  // while a leadership transfer is under way.
  Result<ProposalId> propose(std::string data);

  // Requests a linearizable read (dissertation §6.4). `context` identifies
  // the request and must be unique among pending reads of the cluster
  // (e.g. prefixed by the node id). On the leader, the read index is the
  // commit index once a heartbeat round confirms leadership; a leader that
  // has not yet committed an entry of its term holds the request until it
  // has. A follower forwards the request to the leader it knows
  // (MSG_READ_INDEX); the answer appears in a later Ready::read_states of
  // this node. A request is silently lost if leadership changes: the caller
  // times it out and retries. Returns kNotLeader when no leader is known.
  Status read_index(std::string context);

  // Appends a membership change (raft/membership.h) when this node is the
  // leader; it is in force from now on, here and on every node that appends
  // it. Refused with kNotLeader, kTransferring, kChangeInProgress (an entry
  // of this leader's term has not committed yet, or an earlier change has
  // not), or kInvalidArgument (the change does not apply to the latest
  // configuration, or removes this leader: hand leadership over first).
  Result<ProposalId> propose_conf_change(const raftpb::ConfChange& change);

  // Starts handing leadership to voter `to` (dissertation §3.10): the
  // leader stops accepting proposals, brings `to` up to date and sends it
  // TimeoutNow so it campaigns at once. Abandoned after an election timeout.
  // Returns kNotLeader on a non-leader, kInvalidArgument if `to` is this
  // node or not a voter.
  Status transfer_leadership(uint64_t to);

  // Tells the leader that sending a snapshot to `to` finished (ok) or
  // failed, so it resumes probing without waiting for a timeout. Optional:
  // an unanswered snapshot is retried after an election timeout anyway.
  void report_snapshot(uint64_t to, bool ok);

  // Whether ready() would return anything to do.
  bool has_ready() const;

  // Returns the work to do, following the contract in ready.h. Must be
  // followed by advance() before any other call on this node.
  Ready ready();

  // Acknowledges the last ready(): its entries and snapshot are persisted
  // and its committed entries applied. A leader now counts its own newly
  // persisted entries toward the commit quorum.
  void advance();

  // Read-only accessors, for the server's status and routing. Cheap; may be
  // called at any time, also between ready() and advance(). They describe
  // the in-memory state, which may be ahead of what is persisted until the
  // pending Ready is handled.
  uint64_t id() const { return id_; }
  uint64_t term() const { return term_; }
  uint64_t voted_for() const { return vote_; }
  uint64_t leader_id() const { return lead_; }
  Role role() const { return role_; }
  uint64_t commit_index() const { return log_.committed(); }
  uint64_t applied_index() const { return log_.applied(); }
  uint64_t last_index() const { return log_.last_index(); }
  uint64_t lead_transferee() const { return lead_transferee_; }
  const std::set<uint64_t>& voters() const { return voters_; }
  const std::set<uint64_t>& learners() const { return learners_; }
  // The latest configuration in the log (in force), and the index of the
  // ConfChange that made it.
  const raftpb::ConfState& conf_state() const { return log_.membership().latest(); }
  uint64_t conf_index() const { return log_.membership().latest_index(); }
  // The configuration in force at `index`, which must be at or after the
  // snapshot (e.g. the applied index, for a snapshot taken there).
  const raftpb::ConfState& conf_state_at(uint64_t index) const {
    return log_.membership().at(index);
  }

  // The leader's view of every voter and learner (itself included), ordered by id;
  // empty when this node is not the leader.
  std::vector<PeerProgress> progress() const;
  // Whether this node's latest configuration removes it and has not
  // committed while the one before named it a voter: it may still campaign
  // and lead until the removal commits (docs/design.md, "Membership change").
  bool removal_pending() const;
  // The leader's removed nodes it still replicates to until they hold their
  // removal (drop_removed_progress); empty elsewhere.
  std::vector<uint64_t> leaving() const;
  // match_index of `peer` as the leader sees it; nullopt when not leader or unknown peer.
  std::optional<uint64_t> match_index(uint64_t peer) const;

 private:
  enum class CampaignKind { kPreElection, kElection, kTransfer };

  struct ReadRequest {
    uint64_t index = 0;
    uint64_t from = 0;
    std::string context;
    std::set<uint64_t> acks;
  };

  void check_not_awaiting_advance(const char* call) const;
  size_t quorum() const { return voters_.size() / 2 + 1; }
  bool promotable() const;
  void step_down_removed();
  bool committed_entry_in_current_term() const;
  void refresh_configuration();
  void drop_removed_progress(bool round_over = false);
  size_t voter_count(const std::set<uint64_t>& ids) const;

  void reset(uint64_t term);
  void reset_randomized_election_timeout();
  void become_follower(uint64_t term, uint64_t lead);
  void become_pre_candidate();
  void become_candidate();
  void become_leader();
  void campaign(CampaignKind kind);
  bool poll(uint64_t from, bool granted, size_t* rejections);

  void tick_election();
  void tick_heartbeat();

  void send(raftpb::Message message);
  void bcast_append();
  bool send_append(uint64_t to, bool send_if_empty);
  bool send_snapshot(uint64_t to, bool none_yet_ok = false);
  bool log_start_known_to(uint64_t to) const;
  void bcast_heartbeat();
  void send_heartbeat(uint64_t to, const std::string& context);
  void send_timeout_now(uint64_t to);
  void abort_leader_transfer();
  bool maybe_commit();
  void on_commit_advanced();

  // Why `m` cannot be stepped without breaking the log, or empty.
  std::string refuse(const raftpb::Message& m) const;
  void step_leader(const raftpb::Message& m);
  void step_candidate(const raftpb::Message& m);
  void step_follower(const raftpb::Message& m);
  void handle_vote_request(const raftpb::Message& m);
  void handle_append(const raftpb::Message& m);
  void handle_heartbeat(const raftpb::Message& m);
  void handle_snapshot(const raftpb::Message& m);
  void handle_append_response(const raftpb::Message& m, Progress& pr);
  void handle_heartbeat_response(const raftpb::Message& m, Progress& pr);
  void note_answer(uint64_t from);
  void maybe_wait_for(uint64_t from, const Progress& pr);
  void review_prompt_followers();
  // quorum-1 prompt followers, and the leader's own write (quorum of them
  // when the leader is no voter: its removal is pending).
  bool prompt_full() const {
    return prompt_.size() + (voters_.contains(id_) ? 1 : 0) >= quorum();
  }
  bool lazy_for(uint64_t to) const;
  bool may_persist_lazily() const;
  bool restore(const raftpb::Snapshot& snapshot);

  void leader_read_index(uint64_t from, std::string context);
  void release_read(ReadRequest request);

  uint64_t id_;
  Config config_;
  std::shared_ptr<spdlog::logger> logger_;
  std::mt19937_64 rng_;
  CoreLog log_;

  uint64_t term_ = 0;
  uint64_t vote_ = 0;
  uint64_t lead_ = 0;
  Role role_ = Role::kFollower;
  // The latest configuration's voters and learners (a cache of
  // log_.membership().latest(), refreshed after every append and restore).
  std::set<uint64_t> voters_;
  std::set<uint64_t> learners_;
  uint64_t conf_generation_ = ~0ULL;  // Membership::generation() last refreshed from
  std::string conf_bytes_;           // latest configuration, serialized
  std::string reported_conf_bytes_;  // the one last reported in a Ready
  // Leader only: voters and learners, this node included, and removed nodes
  // until they hear of their committed removal (drop_removed_progress).
  std::map<uint64_t, Progress> progress_;
  std::map<uint64_t, uint64_t> removed_at_;  // leader: removed node -> index of its removal
  std::map<uint64_t, bool> votes_;         // candidate: granted or not, per voter

  int election_elapsed_ = 0;
  int heartbeat_elapsed_ = 0;
  int randomized_election_timeout_ = 0;
  uint64_t lead_transferee_ = 0;
  bool pending_broadcast_ = false;  // proposals not yet sent (batched until ready())
  // Leader, Config::lazy_followers: the followers asked to persist at once,
  // and those that answered anything since the last heartbeat round.
  std::set<uint64_t> prompt_;
  std::set<uint64_t> answered_;
  // Follower: an append since the last advance() was not lazy_persist.
  bool prompt_append_ = false;

  std::deque<ReadRequest> read_requests_;           // leader: awaiting heartbeat quorum
  std::vector<ReadRequest> reads_awaiting_commit_;  // leader: before its first commit
  std::vector<ReadState> read_states_;

  std::vector<raftpb::Message> messages_;
  std::vector<raftpb::Message> messages_after_persist_;

  SoftState prev_soft_state_;
  raftpb::HardState prev_hard_state_;

  bool awaiting_advance_ = false;
  std::optional<std::pair<uint64_t, uint64_t>> ready_last_entry_;  // (index, term)
  uint64_t ready_snapshot_index_ = 0;
  uint64_t ready_applied_ = 0;
};

}  // namespace fencelock::raft
