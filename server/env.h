#pragma once
// Env: everything a server::Node needs from the world around it — clocks,
// its event loop, the disk write of a Ready, the peer network and the
// client connections. fencelockd's Env (server/daemon.h) is Asio, a storage
// thread, sockets and the machine's clocks; the node-level simulator's is
// simulated time, network and disk. The node itself never reads a clock,
// starts a thread or touches a socket, so both run the same node code.
//
// Thread-safety: the node calls every method on its loop; an Env calls the
// node back only on that loop.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "proto/client.pb.h"
#include "proto/raft.pb.h"
#include "raft/driver.h"
#include "statemachine/lock_state_machine.h"

namespace fencelock::server {

using SteadyClock = std::chrono::steady_clock;
using SteadyTime = SteadyClock::time_point;
// Identifies one client connection; 0 is never used.
using ConnectionId = uint64_t;

class Env {
 public:
  virtual ~Env() = default;

  // This node's monotonic clock: session TTLs, wait deadlines and
  // lock-delays run on it. A node reads no wall clock at all: one that
  // steps, or differs between machines, cannot shorten anything.
  virtual SteadyTime now() const = 0;

  // Runs `fn` on the node's loop after everything already queued there (so
  // that requests and messages that arrive together share one Ready).
  virtual void post(std::function<void()> fn) = 0;

  // Carries out the disk write of the Ready in flight, kOverlap or kLazy
  // (raft::WriteMode): runs `write` (it touches only the node's log) and
  // then `done` on the loop, later. `entries` (how many the Ready writes)
  // lets the Env choose where: posted behind the loop's pending work, or
  // on a storage thread while the loop goes on. A kLazy write waits `hold`
  // first, gathering what arrives meanwhile into the write after it.
  virtual void write(raft::WriteMode mode, size_t entries, std::chrono::microseconds hold,
                     std::function<void()> write, std::function<void()> done) = 0;

  // Sends a Raft message to peer `message.to()`; best effort (Raft retries).
  virtual void send(const raftpb::Message& message) = 0;
  // Sends InstallSnapshot to peer `message.to()`: `message` is the core's
  // MSG_SNAP, which carries the snapshot's metadata alone, and `data` the
  // snapshot's bytes, shared with the log (storage::LogStore::
  // snapshot_data()) and read in place. fencelockd streams it in chunks
  // (net::PeerTransport::send_snapshot). Whether it arrived comes back,
  // later and on the loop, through Node::report_snapshot; an Env that
  // cannot tell leaves it to the core's timeout.
  virtual void send_snapshot(const raftpb::Message& message,
                             std::shared_ptr<const std::string> data) = 0;
  // The client address peer `id` announced ("" when unknown), for
  // NOT_LEADER hints.
  virtual std::string peer_client_address(uint64_t id) const = 0;
  // Whether a connection to peer `id` is up (status only).
  virtual bool peer_connected(uint64_t id) const = 0;
  // The cluster's members changed: `peers` (id -> peer address, this node
  // may be among them) is who to connect to and accept from now on.
  virtual void set_peers(const std::map<uint64_t, std::string>& peers) = 0;

  // Sends `response` on client connection `connection`; dropped if it has closed.
  virtual void respond(ConnectionId connection, const clientpb::Response& response) = 0;

  // A graceful shutdown finished: stop accepting clients and peers and
  // stop ticking.
  virtual void stop() = 0;

  // Runs `work` off the loop, where the Env has a thread for it
  // (fencelockd's snapshot thread), and then `done` on the loop: the node
  // serialises and writes its state machine snapshots this way while it
  // goes on serving. An Env may instead run both on the loop (the
  // simulator, later; fencelockd with test_only_snapshot_on_loop, at
  // once). `work` touches only what the node handed it for the purpose,
  // never the node. `done` is kept until `work` has finished; both are
  // dropped when the node's process dies first, and `done` when the loop
  // has stopped.
  virtual void run_in_background(std::function<void()> work, std::function<void()> done) = 0;

  // Observes every command this node applies, in index order, with its
  // outcome (the simulator's checker; metrics and watches later). `leader`:
  // whether this node led when it applied it. Must not call the node.
  virtual void applied(uint64_t index, const lockpb::Command& command,
                       const sm::ApplyResult& result, bool leader) {
    (void)index, (void)command, (void)result, (void)leader;
  }
  // Observes every membership change this node applies (ConfChange
  // entries, the bootstrap ones included), in index order with the
  // commands, and `conf`, the configuration in force at `index` after it.
  // Must not call the node.
  virtual void applied_conf_change(uint64_t index, const raftpb::ConfChange& change,
                                   const raftpb::ConfState& conf) {
    (void)index, (void)change, (void)conf;
  }
  // Observes a snapshot this node installed from the leader: its state
  // machine and configuration are now those of `metadata`. Must not call
  // the node.
  virtual void restored(const raftpb::SnapshotMetadata& metadata) { (void)metadata; }
  // Observes the node's current Raft term whenever it changes: once at
  // construction (the term its log holds) and then as soon as the node
  // learns a new one from the core, before the Ready that carries it is
  // written (fencelockd puts it on its log lines). Must not call the node.
  virtual void term_changed(uint64_t term) { (void)term; }
};

}  // namespace fencelock::server
