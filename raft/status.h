#pragma once
// The Raft core's own error vocabulary. The core answers in terms of
// consensus — not the leader, a transfer under way, a message that is not
// for this node — and knows nothing of the client wire; server/ decides
// what a client is told.
//
// Thread-safety: value types.

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "common/check.h"

namespace fencelock::raft {

enum class Error {
  kOk,
  kNotLeader,       // this node is not the leader (or knows none)
  kTransferring,    // a leadership transfer is under way: no proposals meanwhile
  kInvalidArgument, // a call the core refuses as asked (transfer to itself, to a non-voter)
  kWrongRecipient,  // a message addressed to another node
  kUnknownMessage,  // a message of no known type
};

std::string_view error_name(Error error);

class Status {
 public:
  Status() = default;
  Status(Error error, std::string message) : error_(error), message_(std::move(message)) {}

  bool ok() const { return error_ == Error::kOk; }
  Error error() const { return error_; }
  const std::string& message() const { return message_; }
  // "NOT_LEADER: message", or "OK".
  std::string to_string() const;

 private:
  Error error_ = Error::kOk;
  std::string message_;
};

// A value or a non-OK Status; value() of an error aborts (FL_CHECK).
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT
  Result(Error error, std::string message) : status_(error, std::move(message)) {}

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  Error error() const { return status_.error(); }
  const T& value() const {
    FL_CHECK(value_.has_value(), "value() of an error Result: {}", status_.to_string());
    return *value_;
  }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace fencelock::raft
