#pragma once
// Node: one fencelock cluster member — the Raft core (raft/), the lock state
// machine (statemachine/) and the durable log (storage/), driven by the one
// Ready driver (raft/driver.h) on one event loop that owns all of the
// node's state: no mutexes. Everything outside — clocks, the loop, the disk
// write's thread, peers and clients — comes through an Env (server/env.h),
// so fencelockd (server/daemon.h) and the node-level simulator run this
// same class.
//
// Its jobs live in their own files: requests, proposals and answers
// (requests.h); reads and keepalives through ReadIndex (reads.h); the
// leader's timers — session expiry, wait deadlines, lock-delay
// (leader_timers.h); answering and NOT_LEADER hints (responder.h); the
// membership and its requests (members.h). node.cc wires them to the
// driver and handles inputs and leadership changes; node_snapshots.cc
// takes state machine snapshots and installs the leader's;
// node_shutdown.cc stops it gracefully.
//
// Thread-safety: not thread-safe. The Env calls every input on the node's
// loop.

#include <functional>
#include <memory>
#include <optional>

#include "raft/driver.h"
#include "raft/raw_node.h"
#include "server/backups.h"
#include "server/config.h"
#include "server/env.h"
#include "server/leader_timers.h"
#include "server/lock_stats.h"
#include "server/members.h"
#include "server/node_metrics.h"
#include "server/peer_guard.h"
#include "server/reads.h"
#include "server/requests.h"
#include "server/responder.h"
#include "statemachine/lock_state_machine.h"
#include "storage/log_store.h"

namespace fencelock::server {

class Node final : private raft::DriverHost {
 public:
  // Restores the state machine from the log's latest snapshot and starts
  // the Raft core on what the log holds. A brand-new log (no entry, no
  // snapshot, no term) of a node not joining starts the cluster: it gets
  // the bootstrap entries naming config.peers as the first voters
  // (raft::bootstrap_entries), the same on every founding member. `env` and `log` must outlive the
  // node; `config` must be valid (server::validate) with its seed chosen.
  // A snapshot that does not restore aborts, naming the log.
  Node(Env& env, storage::LogStore& log, NodeConfig config);
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  ~Node() override;

  // Handles whatever the core has to do at start.
  void start();

  // Inputs, on the loop. Each runs now, or after the write in flight.
  void on_tick();
  void on_peer_message(const raftpb::Message& message);
  // `principal`: the name the connection authenticated as ("" when
  // authentication is off); every command proposed for the request carries
  // it (lockpb::Command.principal), and a keepalive is refused for a
  // session of another principal.
  void on_request(ConnectionId from, const std::string& principal,
                  const clientpb::Request& request);
  void on_connection_closed(ConnectionId connection);
  // The outcome of an InstallSnapshot to `peer` (Env::send_snapshot):
  // verified by it (ok), or broken, so that the core sends it again at once
  // instead of after its timeout (raft::RawNode::report_snapshot).
  void report_snapshot(uint64_t peer, bool ok);

  // Graceful stop: a leader first hands leadership to the most up-to-date
  // follower, then the node stops taking requests, waits (bounded) for its
  // in-flight proposals to be applied, calls env.stop() and then posts
  // `done`. Idempotent.
  void shutdown(std::function<void()> done);

  uint64_t id() const { return config_.id; }
  const NodeConfig& config() const { return config_; }
  const raft::RawNode& raft() const { return *raft_; }
  const sm::LockStateMachine& state() const { return state_; }
  // The last log index applied, no-op entries included.
  uint64_t applied_index() const { return applied_index_; }
  // The peer messages this node stepped and dropped (server/peer_guard.h).
  const PeerMessageStats& peer_message_stats() const { return peer_guard_.stats(); }
  // This node's view of the cluster (ClusterStatus answers it).
  clientpb::ClusterStatusResult cluster_status() const;
  // What it counts about itself (server/node_metrics.h).
  const NodeMetrics& metrics() const { return metrics_; }
  // The statistics of the commands it applied (server/lock_stats.h).
  const LockStats& lock_stats() const { return lock_stats_; }
  const raft::SoftState& soft_state() const { return soft_state_; }
  bool shutting_down() const { return shutting_down_; }
  // Whether this node is in its latest configuration (voter or learner).
  bool is_member() const { return members_.self_is_member(); }

 private:
  // raft::DriverHost.
  bool write(const raft::Ready& rd, raft::WriteMode mode) override;
  void write_commit(const raftpb::HardState& hard_state) override;
  void send(const raftpb::Message& message) override;
  void on_soft_state(const raft::SoftState& soft) override;
  void on_conf_state(const raftpb::ConfState& conf) override;
  void restore(const raftpb::Snapshot& snapshot) override;
  void apply(const raftpb::Entry& entry) override;
  void on_read_state(const raft::ReadState& read_state) override;
  void advanced() override { maybe_snapshot(); }

  bool leader() const { return soft_state_.role == raft::Role::kLeader; }
  // Records a change of the known leader (NodeMetrics).
  void note_leader(uint64_t leader_id);
  // Tells the Env (term_changed) when the core's term differs from the one
  // it was last told.
  void follow_term() {
    if (raft_->term() != told_term_) env_.term_changed(told_term_ = raft_->term());
  }
  // An InstallSnapshot the core would take (newer term or same, beyond
  // its commit) is restored into a new state machine before the step:
  // one whose data does not restore is dropped (false) rather than
  // persisted, when its restore would abort the node now and at every
  // start. The restored state waits in trial_ for restore() to move in.
  bool try_snapshot(const raftpb::Message& message);
  void schedule_ready();
  void handle_ready();
  void save_or_die(const raft::Ready& rd);
  // Proposes a leader command (LeaderTimers); false when refused for now.
  bool propose_internal(const lockpb::Command& command);
  // State machine snapshots: every snapshot_every applied entries, an image
  // of the state is taken on the loop in slices of kImageSliceLocks locks,
  // one per turn (cheap: it shares the state's records), serialised and
  // written to the log's snapshot file off the loop
  // (Env::run_in_background), then recorded in the log and the log
  // compacted back on the loop (finish_snapshot). One at a time.
  struct SnapshotJob;
  void maybe_snapshot();
  void continue_snapshot();
  void finish_snapshot();
  void finish_shutdown_if_done(SteadyTime now);

  Env& env_;
  storage::LogStore& log_;
  NodeConfig config_;
  std::shared_ptr<spdlog::logger> logger_;
  std::chrono::microseconds lazy_window_{0};  // --lazy-window-us, at most half a tick
  sm::LockStateMachine state_;
  // The last log index applied, no-op entries included: the state machine
  // only sees commands, so its applied_index() can lag behind this, and a
  // read must wait for this one.
  uint64_t applied_index_ = 0;
  uint64_t applied_term_ = 0;  // of the entry at applied_index_ (backups)
  std::unique_ptr<raft::RawNode> raft_;
  raft::Driver driver_;
  Responder responder_;
  LeaderTimers timers_;
  Requests requests_;
  Reads reads_;
  Members members_;
  Backups backups_;
  PeerGuard peer_guard_;
  NodeMetrics metrics_;
  LockStats lock_stats_;
  // A snapshot's state, restored before its step (try_snapshot).
  struct TrialSnapshot {
    uint64_t index = 0;
    uint64_t term = 0;
    std::unique_ptr<sm::LockStateMachine> state;
  };
  std::optional<TrialSnapshot> trial_;

  bool ready_scheduled_ = false;
  uint64_t last_snapshot_index_ = 0;
  // Defined in node_snapshots.cc, where SnapshotJob is complete.
  struct SnapshotJobDeleter {
    void operator()(SnapshotJob* job) const;
  };
  std::unique_ptr<SnapshotJob, SnapshotJobDeleter> snapshot_job_;  // the snapshot being taken
  bool handing_off_snapshot_ = false;  // inside Env::run_in_background (it may run it at once)
  raft::SoftState soft_state_;
  uint64_t told_term_ = 0;  // the term the Env was last told (follow_term)

  bool shutting_down_ = false;
  std::function<void()> shutdown_done_;
  SteadyTime shutdown_deadline_;
  bool transferring_ = false;
};

}  // namespace fencelock::server
