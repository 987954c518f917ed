#pragma once
// What the state machine's reads return (LockStateMachine::describe,
// list_locks, check_sequencer, list_sessions): plain values in the state
// machine's own terms. The server turns them into client messages
// (server/wire.h).
//
// Thread-safety: value types; one thread per object.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "proto/command.pb.h"

namespace fencelock::sm {

// One holder of a lock, in grant order.
struct HolderView {
  uint64_t session_id = 0;
  uint64_t token = 0;
  lockpb::LockMode mode = lockpb::EXCLUSIVE;
  std::string value;

  friend bool operator==(const HolderView&, const HolderView&) = default;
};

// One queued Acquire, in queue order.
struct WaiterView {
  uint64_t session_id = 0;
  lockpb::LockMode mode = lockpb::EXCLUSIVE;
  uint64_t wait_id = 0;  // Raft index of the Acquire that queued
  uint64_t wait_ms = 0;  // the wait's duration; 0 when unknown (PendingWait)

  friend bool operator==(const WaiterView&, const WaiterView&) = default;
};

// A lock: who holds it, who waits for it, its options and lock-delay.
struct LockView {
  std::string name;
  std::vector<HolderView> holders;
  std::vector<WaiterView> waiters;
  uint32_t max_holders = 0;  // 0 = unbounded SHARED holders
  uint64_t lock_delay_ms = 0;
  bool in_lock_delay = false;
  uint64_t lock_delay_id = 0;  // with in_lock_delay: LockDelay::delay_id

  friend bool operator==(const LockView&, const LockView&) = default;
};

// A page of locks in name order; next_start_after is empty on the last page.
struct LockPage {
  std::vector<LockView> locks;
  std::string next_start_after;

  friend bool operator==(const LockPage&, const LockPage&) = default;
};

// Whether a sequencer is still current (LockStateMachine::check_sequencer).
struct SequencerStatus {
  bool current = false;

  friend bool operator==(const SequencerStatus&, const SequencerStatus&) = default;
};

// A live session.
struct SessionView {
  uint64_t session_id = 0;
  std::string client_name;
  uint64_t ttl_ms = 0;
  uint32_t held_locks = 0;
  uint32_t waiting_locks = 0;
  std::string principal;  // of the OpenSession that created it; "" without authentication

  friend bool operator==(const SessionView&, const SessionView&) = default;
};

// A page of sessions in id order; next_start_after is 0 on the last page.
struct SessionPage {
  std::vector<SessionView> sessions;
  uint64_t next_start_after = 0;

  friend bool operator==(const SessionPage&, const SessionPage&) = default;
};

// What a principal (or the whole cluster) holds against the Limits
// (LockStateMachine::usage_of, total_usage).
struct Usage {
  uint64_t sessions = 0;
  uint64_t holders_and_waiters = 0;  // over all locks
  uint64_t value_bytes = 0;          // of those holders' and waiters' values

  friend bool operator==(const Usage&, const Usage&) = default;
};

// --- Sizes, for pages that fit a frame ---
//
// An upper bound on the bytes a read result takes when the server encodes it
// as protobuf (server/wire.h): every member a field of at most a 2-byte tag
// and a 10-byte varint, or a 2-byte tag, a 5-byte length and the bytes; each
// entry of a page a nested message (tag and length) of its page. It depends
// only on the members, so the state machine can keep a page within a budget
// without knowing the wire; tests/server/wire_test.cc checks the bound
// against the real encoding.

// One lock as an entry of a LockPage.
size_t encoded_bytes_bound(const LockView& lock);
// One session as an entry of a SessionPage.
size_t encoded_bytes_bound(const SessionView& session);
// A whole page: its entries and next_start_after.
size_t encoded_bytes_bound(const LockPage& page);
size_t encoded_bytes_bound(const SessionPage& page);

}  // namespace fencelock::sm
