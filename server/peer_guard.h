#pragma once
// PeerGuard: the server's edge for Raft messages from peers. Every message
// is checked (raft::check_message) against the core right before it is
// stepped; one that fails is dropped, counted by fault, and logged with
// the sender, the fault and the node's term — at most one line per second,
// the next line saying how many were not logged. Messages the core itself
// refuses (raft::Error::kInvalidMessage, its second line) are counted too.
//
// Thread-safety: not thread-safe; the node's loop.

#include <array>
#include <cstdint>
#include <memory>

#include "raft/message_check.h"
#include "raft/raw_node.h"
#include "server/env.h"

namespace spdlog {
class logger;
}

namespace fencelock::server {

// What a node dropped of its peers' messages. Plain counters: ClusterStatus
// reports the total (ClusterStatusResult.dropped_peer_messages).
struct PeerMessageStats {
  uint64_t stepped = 0;  // passed the check and went to the core
  uint64_t dropped = 0;  // by the check and by the core
  // By raft::MessageFault (index kNone: refused by the core after passing the check).
  std::array<uint64_t, raft::kMessageFaultCount> by_fault{};
};

class PeerGuard {
 public:
  explicit PeerGuard(std::shared_ptr<spdlog::logger> logger) : logger_(std::move(logger)) {}

  // Whether `message` may be stepped into `core` now; counts and logs a
  // message that may not.
  bool admit(const raftpb::Message& message, const raft::RawNode& core, SteadyTime now);
  // Records what core.step(message) returned for an admitted message.
  void stepped(const raftpb::Message& message, const raft::Status& status,
               const raft::RawNode& core, SteadyTime now);

  // Counts and logs `message`, dropped by the server for `fault` (`why`).
  void drop(const raftpb::Message& message, raft::MessageFault fault, const std::string& why,
            const raft::RawNode& core, SteadyTime now);

  const PeerMessageStats& stats() const { return stats_; }

 private:

  std::shared_ptr<spdlog::logger> logger_;
  PeerMessageStats stats_;
  SteadyTime last_log_{};
  bool logged_once_ = false;
  uint64_t unlogged_ = 0;
};

}  // namespace fencelock::server
