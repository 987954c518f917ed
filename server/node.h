#pragma once
// Node: one fencelock cluster member. Glues the pure Raft core (raft/), the
// lock state machine (statemachine/), RocksDB storage (storage/) and the
// network (net/) together on ONE event loop, which owns all of the node's
// state: no mutexes.
//
// The driver (handle_ready) follows the contract of raft/ready.h step by
// step: leader messages out -> persist (one synced RocksDB batch) ->
// messages that promise durable state out -> apply -> answer clients ->
// advance.
//
// Client requests:
//  - mutating requests (sessions, acquire, release, cancel, force-release)
//    become commands, proposed on the leader; requests that arrive together
//    are batched into one append and one fsync. Each request is answered
//    when its entry is applied (matched by index and term); an acquire that
//    queues is answered when a later entry grants it or ends its wait.
//  - keepalives and reads are answered only after a ReadIndex round
//    confirms this node is still the leader (dissertation §6.4), so a
//    deposed leader can neither extend a session nor serve a stale read.
//  - a follower answers NOT_LEADER with the leader's client address.
//
// Leader duties (time enters the state machine only through these
// proposals): ExpireSession for sessions past their TTL, CancelWait at a
// wait's deadline, EndLockDelay at the end of a lock-delay. A node that
// becomes leader gives every session a full TTL from that moment.
//
// Thread-safety: not thread-safe. Create, start and shut down on the thread
// that runs the io_context; everything else happens on that thread, except
// the fsync of a leader's large Ready, which runs on the node's storage
// thread (handed over and back with post; the loop touches neither the Raft
// core nor the log while it runs).

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <vector>

#include "net/asio.h"
#include "net/client_listener.h"
#include "net/peer_transport.h"
#include "raft/raw_node.h"
#include "server/config.h"
#include "statemachine/lock_state_machine.h"
#include "storage/disk_log.h"

namespace fencelock::server {

class Node {
 public:
  // Opens the data directory, restores the state machine from the latest
  // snapshot, and binds the client and peer listeners. Errors (a directory
  // of another cluster or node, a damaged store, a port in use, a bad
  // address) come back as a Status whose message names the problem; the
  // caller prints it and exits.
  static Result<std::unique_ptr<Node>> open(boost::asio::io_context& io, NodeConfig config);

  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Starts ticking, dialing peers and accepting clients.
  void start();

  // Graceful stop: a leader first hands leadership to the most up-to-date
  // follower, then the node stops taking requests, waits (bounded) for its
  // in-flight proposals to be applied, closes every connection and calls
  // `done`. Idempotent.
  void shutdown(std::function<void()> done);

  uint64_t id() const { return config_.id; }
  const raft::RawNode& raft() const { return *raft_; }
  const sm::LockStateMachine& state() const { return state_; }
  std::string client_endpoint() const;
  std::string peer_endpoint() const;

 private:
  using Clock = std::chrono::steady_clock;
  using ConnectionId = net::ConnectionId;

  struct Caller {
    ConnectionId connection = 0;
    uint64_t request_id = 0;
  };
  struct PendingProposal {
    Caller caller;
    uint64_t term = 0;
  };
  // Requests waiting for one ReadIndex round: reads and keepalives.
  struct ReadBatch {
    std::vector<std::pair<Caller, clientpb::Request>> requests;
    Clock::time_point deadline;
    uint64_t index = 0;  // read index once confirmed
  };
  template <typename T>
  using MinHeap = std::priority_queue<T, std::vector<T>, std::greater<T>>;

  Node(boost::asio::io_context& io, NodeConfig config, std::unique_ptr<storage::DiskLog> log,
       std::unique_ptr<net::PeerTransport> transport, std::unique_ptr<net::ClientListener> listener);

  // Inputs.
  void on_request(ConnectionId from, clientpb::Request request);
  void on_peer_message(raftpb::Message message);
  boost::asio::awaitable<void> tick_loop();
  void on_tick();

  // The driver.
  void schedule_ready();
  void handle_ready();
  void apply_committed(const raft::Ready& rd);
  void save_or_die(const raft::Ready& rd);
  void finish_persist();
  // Steps 2 (messages_after_persist), 3 when `apply` (committed entries and
  // reads, for a Ready that did not apply them before its write) and 4.
  void finish_ready(raft::Ready& rd, bool apply);
  // Writes unsaved_commit_ (without fsync) unless a write is in flight.
  void save_unsaved_commit();
  void serve_applied_reads();
  // While a write is on the storage thread the Raft core must not be called
  // (raft/ready.h step 4): inputs are queued and run after advance(). True
  // when `input` was queued.
  bool defer_while_persisting(std::function<void()> input);
  void apply_entry(const raftpb::Entry& entry);
  void restore_snapshot(const raftpb::Snapshot& snapshot);
  void maybe_snapshot();
  void on_soft_state(const raft::SoftState& soft);

  // Client answers.
  void respond(const Caller& caller, clientpb::Response response);
  void respond_error(const Caller& caller, ErrorCode code, std::string message);
  void respond_not_leader(const Caller& caller);
  void answer_applied(const Caller& caller, lockpb::Command::KindCase kind,
                      const sm::ApplyResult& result);
  void answer_waits(const sm::ApplyResult& result);
  std::vector<Caller> take_waiting(uint64_t wait_id);
  void propose(const Caller& caller, const lockpb::Command& command);

  // Reads and keepalives through ReadIndex.
  void queue_read(const Caller& caller, clientpb::Request request);
  void flush_reads();
  void on_read_state(const raft::ReadState& read_state);
  void serve_read_batch(ReadBatch& batch);
  void serve_read(const Caller& caller, const clientpb::Request& request);
  void fail_reads(ErrorCode code, const std::string& message);
  clientpb::ClusterStatusResult cluster_status() const;

  // Leader timers.
  void become_leader_timers();
  void clear_leader_timers();
  void run_leader_timers();
  void track_session(uint64_t session_id, uint64_t ttl_ms);
  // Proposes a leader command; returns false if it could not be proposed
  // now (not leader, transfer under way), so the caller can re-arm it.
  // Called from the tick handler only, never between ready() and advance().
  bool propose_internal(const lockpb::Command& command);
  void fail_callers_after_snapshot(uint64_t snapshot_index);
  uint64_t wall_ms() const;

  boost::asio::io_context& io_;
  NodeConfig config_;
  std::shared_ptr<spdlog::logger> logger_;
  std::unique_ptr<storage::DiskLog> log_;
  sm::LockStateMachine state_;
  std::unique_ptr<raft::RawNode> raft_;
  std::unique_ptr<net::PeerTransport> transport_;
  std::unique_ptr<net::ClientListener> listener_;
  boost::asio::steady_timer tick_timer_;

  bool ready_scheduled_ = false;
  // One write at a time: the Ready whose entries the storage thread is
  // persisting, and the inputs that arrived meanwhile.
  boost::asio::thread_pool storage_thread_{1};
  bool persisting_ = false;
  boost::asio::steady_timer lazy_timer_;
  std::chrono::microseconds lazy_window_{0};  // --lazy-window-us, at most half a tick
  std::optional<raft::Ready> persisting_ready_;
  std::vector<std::function<void()>> deferred_;
  // The latest hard state that only moved the commit index and has not
  // been written yet: it goes out with the next write, or at the next tick.
  std::optional<raftpb::HardState> unsaved_commit_;
  // The last log index applied, no-op entries included: the state machine
  // only sees commands, so its applied_index() can lag behind this, and a
  // read must wait for this one.
  uint64_t applied_index_ = 0;
  uint64_t last_snapshot_index_ = 0;
  raft::SoftState soft_state_;

  std::map<uint64_t, PendingProposal> proposals_;   // by log index
  std::multimap<uint64_t, Caller> waiting_acquires_;  // by wait id
  std::vector<std::pair<Caller, clientpb::Request>> unsent_reads_;
  std::map<std::string, ReadBatch> reads_in_flight_;  // by ReadIndex context
  std::multimap<uint64_t, ReadBatch> reads_awaiting_apply_;  // by read index
  uint64_t next_read_context_ = 1;

  // Leader only. Session TTLs run on this node's monotonic clock, from the
  // last keepalive (or from taking office); deadlines of waits and lock
  // delays are leader wall-clock milliseconds carried in the log, so a new
  // leader re-arms them.
  std::map<uint64_t, std::pair<Clock::time_point, uint64_t>> session_seen_;  // id -> (last, ttl)
  MinHeap<std::pair<Clock::time_point, uint64_t>> session_deadlines_;
  MinHeap<std::tuple<uint64_t, uint64_t, std::string, uint64_t>> wait_deadlines_;  // ms, session, lock, wait id
  MinHeap<std::pair<uint64_t, std::string>> delay_ends_;  // ms, lock
  // Sessions whose ExpireSession has been proposed: their keepalives are
  // refused from then on, so no client is told its session lives on while
  // the expiry may commit (the client's safe-until argument, docs/client.md).
  std::set<uint64_t> expiring_sessions_;

  bool shutting_down_ = false;
  std::function<void()> shutdown_done_;
  Clock::time_point shutdown_deadline_;
  bool transferring_ = false;
};

}  // namespace fencelock::server
