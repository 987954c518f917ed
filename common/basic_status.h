#pragma once
// BasicStatus and BasicResult: an outcome as a value — a code of one
// layer's own vocabulary with a message for people — and a value or such an
// outcome. Each layer instantiates them with its own code enum: the client
// wire's (fencelock::Status, common/status.h), the Raft core's
// (raft::Status, raft/status.h), the lock state machine's (sm::Status,
// statemachine/status.h). Expected outcomes travel as these values, never
// as exceptions across module APIs (docs/design.md "Errors").
//
// Thread-safety: value types; distinct objects may be used from any thread.

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "common/check.h"

namespace fencelock {

// `kOk` is Code's success value; `kName` names a code for to_string().
template <typename Code, Code kOk, std::string_view (*kName)(Code)>
class BasicStatus {
 public:
  using CodeType = Code;

  BasicStatus() = default;
  BasicStatus(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static BasicStatus ok_status() { return BasicStatus(); }

  bool ok() const { return code_ == kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // "CODE: message", or "OK".
  std::string to_string() const {
    if (ok()) return "OK";
    std::string out(kName(code_));
    if (!message_.empty()) {
      out += ": ";
      out += message_;
    }
    return out;
  }

  friend bool operator==(const BasicStatus& a, const BasicStatus& b) {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }

 private:
  Code code_ = kOk;
  std::string message_;
};

// Either a value or a non-OK status. value() of an error aborts through
// FL_CHECK: check ok() first.
template <typename T, typename Status>
class BasicResult {
 public:
  using Code = typename Status::CodeType;

  BasicResult(T value) : value_(std::move(value)) {}          // NOLINT: implicit by design
  BasicResult(Status status) : status_(std::move(status)) {}  // NOLINT
  BasicResult(Code code, std::string message) : status_(code, std::move(message)) {}

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
    FL_CHECK(value_.has_value(), "value() of an error Result: {}", status_.to_string());
  }

  std::optional<T> value_;
  Status status_;
};

}  // namespace fencelock
