#pragma once
// Status and Result: expected outcomes as values, never exceptions across
// module APIs (docs/design.md "Errors"). The code enum is the wire's ErrorCode.
// The lock state machine has its own (statemachine/status.h), which the
// server translates (server/wire.h).
//
// Thread-safety: value types; distinct objects may be used from any thread.

#include <string_view>

#include "common/basic_status.h"
#include "proto/command.pb.h"

namespace fencelock {

using ErrorCode = lockpb::ErrorCode;

// Returns the wire name of `code`, e.g. "NOT_LEADER".
std::string_view error_code_name(ErrorCode code);

// The client wire's vocabulary (common/basic_status.h).
using Status = BasicStatus<ErrorCode, lockpb::OK, &error_code_name>;
template <typename T>
using Result = BasicResult<T, Status>;

}  // namespace fencelock
