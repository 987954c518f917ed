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

#include "common/check.h"

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
};

// The highest Code; a stored number above it is not a Code.
inline constexpr Code kMaxCode = Code::kStaleSequence;

// The name of `code` in upper snake case, e.g. "LOCK_NOT_HELD"; for logs and
// test output, never parsed.
std::string_view code_name(Code code);

// A Code with a message for people. Default-constructed: OK, no message.
class Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // "CODE: message", or "OK".
  std::string to_string() const;

  friend bool operator==(const Status& a, const Status& b) = default;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

// Either a value or a non-OK Status. value() of an error aborts through
// FL_CHECK: check ok() first.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}          // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT
  Result(Code code, std::string message) : status_(code, std::move(message)) {}

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  Code code() const { return status_.code(); }

  const T& value() const& {
    check_value();
    return *value_;
  }
  T& value() & {
    check_value();
    return *value_;
  }
  T&& value() && {
    check_value();
    return std::move(*value_);
  }

 private:
  void check_value() const {
    FL_CHECK(value_.has_value(), "value() of an error sm::Result: {}", status_.to_string());
  }

  std::optional<T> value_;
  Status status_;
};

}  // namespace fencelock::sm
