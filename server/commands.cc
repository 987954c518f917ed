#include "server/commands.h"

namespace fencelock::server {

std::optional<lockpb::Command> to_command(const clientpb::Request& request, std::string* invalid) {
  lockpb::Command command;
  switch (request.kind_case()) {
    case clientpb::Request::kOpenSession:
      *command.mutable_open_session() = request.open_session();
      break;
    case clientpb::Request::kCloseSession:
      *command.mutable_close_session() = request.close_session();
      break;
    case clientpb::Request::kAcquire:
      *command.mutable_acquire() = request.acquire();
      // A set now_ms marks an entry of an earlier version's leader
      // (proto/command.proto): a client must not set it.
      command.mutable_acquire()->clear_now_ms();
      break;
    case clientpb::Request::kRelease:
      *command.mutable_release() = request.release();
      break;
    case clientpb::Request::kCancelWait:
      if (request.cancel_wait().key().sequence() == 0) {
        *invalid = "cancel_wait needs a sequence number";
        return std::nullopt;
      }
      *command.mutable_cancel_wait() = request.cancel_wait();
      // wait_id is for the leader's own deadline proposals only.
      command.mutable_cancel_wait()->set_wait_id(0);
      break;
    case clientpb::Request::kForceRelease:
      *command.mutable_force_release() = request.force_release();
      command.mutable_force_release()->clear_now_ms();
      break;
    default:
      return std::nullopt;
  }
  return command;
}

}  // namespace fencelock::server
