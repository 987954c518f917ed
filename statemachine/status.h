#pragma once
// The state machine's own outcome vocabulary: sm::Code, sm::Status and
// sm::Result. Only what the lock state machine can answer is here; the
// server translates it to the client wire (server/wire.h), so a change of
// either side is a change of that one mapping.
//
// Thread-safety: value types; distinct objects may be used from any thread.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "common/basic_status.h"

namespace fencelock::sm {

// What a command or a read came to (docs/locks.md, "Error codes"). The
// numbers are stored in snapshots (a session's last result, format 2 on):
// never renumber one, only append.
enum class Code : uint8_t {
  kOk = 0,
  kInvalidArgument = 1,     // a malformed field, sequence 0, a reused sequence number
  kNotFound = 2,            // CancelWait of no such wait; ForceRelease/Describe of no such lock
  kSessionExpired = 3,      // the request's session does not exist; a wait ended with its session
  kLockNotHeld = 4,         // Release of a lock not held with that token
  kTimeout = 5,             // try-acquire of a busy lock; a wait whose deadline passed
  kCancelled = 6,           // a wait ended by the client's own CancelWait
  kResourceExhausted = 7,   // a Limits bound would be exceeded
  kFailedPrecondition = 8,  // re-acquire in the other mode, a second wait, another max_holders
  kStaleSequence = 9,       // a request older than the session's last
  kPermissionDenied = 10,   // the request names a session another principal opened
};

// The highest Code; a stored number above it is not a Code.
inline constexpr Code kMaxCode = Code::kPermissionDenied;

// The name of `code` in upper snake case, e.g. "LOCK_NOT_HELD"; for logs and
// test output, never parsed.
std::string_view code_name(Code code);

// A Code with a message for people, or a value or such an outcome
// (common/basic_status.h). Default-constructed: OK, no message.
using Status = BasicStatus<Code, Code::kOk, &code_name>;
template <typename T>
using Result = BasicResult<T, Status>;

}  // namespace fencelock::sm
