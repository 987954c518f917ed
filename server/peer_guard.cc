#include "server/peer_guard.h"

#include <spdlog/spdlog.h>

namespace fencelock::server {

namespace {
constexpr auto kLogInterval = std::chrono::seconds(1);
}

bool PeerGuard::admit(const raftpb::Message& message, const raft::RawNode& core, SteadyTime now) {
  raft::MessageCheck check = raft::check_message(message, core);
  if (check.ok()) return true;
  drop(message, check.fault, check.reason, core, now);
  return false;
}

void PeerGuard::stepped(const raftpb::Message& message, const raft::Status& status,
                        const raft::RawNode& core, SteadyTime now) {
  if (status.code() == raft::Error::kInvalidMessage) {
    drop(message, raft::MessageFault::kNone, status.to_string(), core, now);
    return;
  }
  ++stats_.stepped;
  if (!status.ok()) {
    logger_->debug("{} dropped peer message: {}", core.id(), status.to_string());
  }
}

void PeerGuard::drop(const raftpb::Message& message, raft::MessageFault fault,
                     const std::string& why, const raft::RawNode& core, SteadyTime now) {
  ++stats_.dropped;
  ++stats_.by_fault[static_cast<size_t>(fault)];
  if (logged_once_ && now - last_log_ < kLogInterval) {
    ++unlogged_;
    return;
  }
  std::string fault_name = fault == raft::MessageFault::kNone
                               ? "refused by the core"
                               : std::string(raft::message_fault_name(fault));
  logger_->warn("{} dropped {} from {} at term {}: {}: {} ({} dropped in all, {} not logged)",
                core.id(), raftpb::MessageType_Name(message.type()), message.from(), core.term(),
                fault_name, why, stats_.dropped, unlogged_);
  logged_once_ = true;
  last_log_ = now;
  unlogged_ = 0;
}

}  // namespace fencelock::server
