#pragma once
// Status and Result: expected outcomes as values, never exceptions across
// module APIs (docs/design.md "Errors"). The code enum is the wire's ErrorCode.
// The lock state machine has its own (statemachine/status.h), which the
// server translates (server/wire.h).
//
// Thread-safety: value types; distinct objects may be used from any thread.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "proto/command.pb.h"

namespace fencelock {

using ErrorCode = lockpb::ErrorCode;

// Returns the wire name of `code`, e.g. "NOT_LEADER".
std::string_view error_code_name(ErrorCode code);

class Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok_status() { return Status(); }

  bool ok() const { return code_ == lockpb::OK; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // "CODE: message", or "OK".
  std::string to_string() const;

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }

 private:
  ErrorCode code_ = lockpb::OK;
  std::string message_;
};

// Either a value or a non-OK status. Accessing value() of an error aborts
// through FL_CHECK: check ok() first.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT
  Result(ErrorCode code, std::string message) : status_(code, std::move(message)) {}

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  ErrorCode code() const { return status_.code(); }

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
  void check_value() const;

  std::optional<T> value_;
  Status status_;
};

namespace detail {
[[noreturn]] void result_value_of_error(const Status& status);
}  // namespace detail

template <typename T>
void Result<T>::check_value() const {
  if (!value_.has_value()) detail::result_value_of_error(status_);
}

}  // namespace fencelock
