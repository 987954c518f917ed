#pragma once
// Driver: the one implementation of the order of work that Ready's contract
// (raft/ready.h) prescribes. The server (server::Node), the simulator and
// the Raft test cluster all run this code; each supplies a DriverHost that
// says how to write, send and apply, never in which order.
//
// What it does with each Ready, in order:
//  - the leader's own messages (Ready::messages) go out at once;
//  - a snapshot from the leader is written, restored and applied before
//    anything else, on the spot;
//  - a leader applies its committed entries before its write (step 3
//    before step 1, which ready.h allows), then writes, possibly
//    elsewhere (WriteMode::kOverlap); a lazy follower's write may be held
//    (WriteMode::kLazy); any other write is done before going on;
//  - a Ready that only moves the commit index is not written on its own:
//    the commit index rides on the next write, or flush_commit();
//  - after the write: messages_after_persist, then (when not done before)
//    the committed entries and read states, then advance(), then the
//    host's advanced() (a snapshot of the state machine, say).
// While a write is in flight nothing may call the core (ready.h step 4),
// so inputs wait in the driver (defer) and run, in arrival order, once
// write_done() has advanced the core.
//
// Thread-safety: not thread-safe. One thread (the node's loop) makes every
// call, write_done() included.

#include <functional>
#include <optional>
#include <vector>

#include "raft/raw_node.h"
#include "raft/ready.h"

namespace fencelock::raft {

// How a Ready's write (step 1) may be carried out; the host chooses how.
enum class WriteMode {
  // Before write() returns: a follower or candidate has nothing to overlap
  // with its write (its messages wait for it), and a snapshot is installed
  // in order.
  kNow,
  // A leader's write: its messages are out and its committed entries are
  // applied, so the write may go on while the loop does other work.
  kOverlap,
  // A lazy follower's write (Ready::persist_lazily): it may be held for a
  // short window, so that what arrives meanwhile shares one sync.
  kLazy,
};

std::string_view write_mode_name(WriteMode mode);

class DriverHost {
 public:
  virtual ~DriverHost() = default;

  // Step 1: persists rd.snapshot (when set: it replaces the log), then
  // rd.hard_state and rd.entries, synced when rd.must_sync. Returns true
  // when the write is done. A kOverlap or kLazy write may instead return
  // false and go on elsewhere; the host then calls Driver::write_done() on
  // the driver's thread once the write is durable (`rd` stays alive in the
  // driver until then). kNow writes are done at once; the simulator alone
  // returns false for one, to crash the node in the middle of it. A
  // snapshot's write (rd.snapshot set) must be done at once. A failed write
  // aborts: a node that lost durability must not go on.
  virtual bool write(const Ready& rd, WriteMode mode) = 0;
  // Writes a hard state that only moves the commit index, without a sync.
  virtual void write_commit(const raftpb::HardState& hard_state) = 0;
  // Sends one message to its `to`.
  virtual void send(const raftpb::Message& message) = 0;
  // The leader or this node's role changed (before the Ready's entries are applied).
  virtual void on_soft_state(const SoftState& soft) = 0;
  // The latest configuration changed (Ready::conf_state); called before any
  // message of the Ready is sent, so a new member's address is known.
  virtual void on_conf_state(const raftpb::ConfState& /*conf*/) {}
  // Step 3: restores the state machine from a snapshot the core installed.
  virtual void restore(const raftpb::Snapshot& snapshot) = 0;
  // Step 3: applies one committed entry (no-ops included), in index order.
  virtual void apply(const raftpb::Entry& entry) = 0;
  // Step 3: a read whose index the state machine must reach before serving it.
  virtual void on_read_state(const ReadState& read_state) = 0;
  // Called after every advance(); the core may be called again.
  virtual void advanced() {}
};

class Driver {
 public:
  // `node` and `host` must outlive the driver.
  Driver(RawNode& node, DriverHost& host) : node_(node), host_(host) {}
  Driver(const Driver&) = delete;
  Driver& operator=(const Driver&) = delete;

  // Handles every Ready the core has, until it has none or a write goes on
  // elsewhere (write_done() then takes over). A no-op while a write is in
  // flight.
  void handle_ready();

  // True while a write is in flight: the core must not be called.
  bool writing() const { return writing_; }

  // While a write is in flight, keeps `input` (a call into the core: a
  // tick, a message, a proposal) to run after it, and returns true; else
  // returns false and the caller runs the input now.
  bool defer(std::function<void()> input);

  // The host's asynchronous write finished and is durable: finishes that
  // Ready (steps 2-4), then runs the inputs that waited, in their order.
  // The caller handles the Ready that follows (handle_ready, directly or
  // scheduled).
  void write_done();

  // Writes the commit index held back from commit-only hard states, unless
  // a write is in flight (then it rides on that one's successor). The server
  // calls it every tick, and before it snapshots its state machine so that
  // no snapshot lies beyond the durable commit index.
  void flush_commit();

 private:
  void apply(const Ready& rd);
  void finish(Ready& rd, bool apply_now);

  RawNode& node_;
  DriverHost& host_;
  bool writing_ = false;
  std::optional<Ready> in_flight_;
  bool in_flight_applied_ = false;  // its committed entries went out before its write
  std::vector<std::function<void()>> deferred_;
  // The newest hard state that only moved the commit index, not yet written.
  std::optional<raftpb::HardState> unsaved_commit_;
};

}  // namespace fencelock::raft
