// Fuzz target: the server's client request path on one frame body, without
// a network: decoding as the client listener does it
// (net::decode_client_request), then the command the leader would propose
// (server::to_command), then that command's bytes applied by a state
// machine holding one open session (session 1), whose lock invariants must
// hold afterwards.
//
// Checked: a decoded request has a kind, a malformed one answers id 0; a
// command exists exactly for the mutating kinds and is of the same kind,
// without the fields only a leader may set (Acquire/ForceRelease now_ms,
// CancelWait wait_id); a CancelWait without a sequence is refused, and
// nothing else is; the proposed bytes parse back to the command.
//
// Input: the frame body.

#include <google/protobuf/stubs/logging.h>

#include <cstdint>
#include <string>

#include "common/check.h"
#include "common/logging.h"
#include "net/client_request.h"
#include "server/commands.h"
#include "statemachine/lock_state_machine.h"
#include "tests/statemachine/sm_invariants.h"

namespace fencelock::fuzz {
namespace {

bool is_mutating(clientpb::Request::KindCase kind) {
  switch (kind) {
    case clientpb::Request::kOpenSession:
    case clientpb::Request::kCloseSession:
    case clientpb::Request::kAcquire:
    case clientpb::Request::kRelease:
    case clientpb::Request::kCancelWait:
    case clientpb::Request::kForceRelease:
      return true;
    default:
      return false;
  }
}

// The command's kind for a request kind: the oneof fields share their names.
bool same_kind(clientpb::Request::KindCase request, lockpb::Command::KindCase command) {
  switch (request) {
    case clientpb::Request::kOpenSession:
      return command == lockpb::Command::kOpenSession;
    case clientpb::Request::kCloseSession:
      return command == lockpb::Command::kCloseSession;
    case clientpb::Request::kAcquire:
      return command == lockpb::Command::kAcquire;
    case clientpb::Request::kRelease:
      return command == lockpb::Command::kRelease;
    case clientpb::Request::kCancelWait:
      return command == lockpb::Command::kCancelWait;
    case clientpb::Request::kForceRelease:
      return command == lockpb::Command::kForceRelease;
    default:
      return false;
  }
}

}  // namespace
}  // namespace fencelock::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fencelock::set_log_level("critical");  // FL_CHECK's message
  // proto3 logs each string field that is not UTF-8 as it refuses it.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fencelock;
  net::DecodedRequest decoded =
      net::decode_client_request(std::string_view(reinterpret_cast<const char*>(data), size));
  const clientpb::Request& request = decoded.request;
  if (!decoded.status.ok()) {
    FL_CHECK(decoded.status.code() == lockpb::MALFORMED_REQUEST ||
                 decoded.status.code() == lockpb::UNKNOWN_REQUEST,
             "decoding failed with {}", decoded.status.to_string());
    FL_CHECK(decoded.status.code() != lockpb::MALFORMED_REQUEST || request.id() == 0,
             "a malformed request answered with id {}", request.id());
    FL_CHECK(decoded.status.code() != lockpb::UNKNOWN_REQUEST ||
                 request.kind_case() == clientpb::Request::KIND_NOT_SET,
             "a request of kind {} is unknown", static_cast<int>(request.kind_case()));
    return 0;
  }
  FL_CHECK(request.kind_case() != clientpb::Request::KIND_NOT_SET, "a request without a kind");

  std::string invalid;
  std::optional<lockpb::Command> command = server::to_command(request, &invalid);
  bool refused = request.kind_case() == clientpb::Request::kCancelWait &&
                 request.cancel_wait().key().sequence() == 0;
  FL_CHECK(invalid.empty() != refused, "invalid \"{}\" for {}", invalid,
           request.ShortDebugString());
  FL_CHECK(command.has_value() == (fuzz::is_mutating(request.kind_case()) && !refused),
           "{} command for {}", command ? "a" : "no", request.ShortDebugString());
  if (!command) return 0;
  FL_CHECK(fuzz::same_kind(request.kind_case(), command->kind_case()), "{} became {}",
           request.ShortDebugString(), command->ShortDebugString());
  FL_CHECK(!command->has_acquire() || command->acquire().now_ms() == 0, "a client set now_ms");
  FL_CHECK(!command->has_force_release() || command->force_release().now_ms() == 0,
           "a client set now_ms");
  FL_CHECK(!command->has_cancel_wait() || command->cancel_wait().wait_id() == 0,
           "a client set wait_id");

  // What Requests::propose hands to Raft, and the state machine applies.
  std::string proposed;
  FL_CHECK(command->SerializeToString(&proposed), "a command does not serialize");
  lockpb::Command parsed;
  FL_CHECK(parsed.ParseFromString(proposed), "a proposed command does not parse");
  FL_CHECK(parsed.SerializeAsString() == proposed, "a proposed command changes on parsing");

  sm::LockStateMachine machine;
  sm::testing::InvariantChecker invariants;
  lockpb::Command open;
  open.mutable_open_session()->set_client_name("fuzz");
  sm::ApplyResult opened = machine.apply(1, open);
  FL_CHECK(opened.status.ok() && opened.session_id == 1, "session 1 did not open");
  sm::ApplyResult result = machine.apply(2, std::string_view(proposed));
  invariants.check(machine, result);
  FL_CHECK(invariants.ok(), "after {}: {}", command->ShortDebugString(), *invariants.violation());
  return 0;
}
