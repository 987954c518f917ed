#pragma once
// The Raft core's own error vocabulary. The core answers in terms of
// consensus — not the leader, a transfer under way, a message that is not
// for this node — and knows nothing of the client wire; server/ decides
// what a client is told.
//
// Thread-safety: value types.

#include <string_view>

#include "common/basic_status.h"

namespace fencelock::raft {

enum class Error {
  kOk,
  kNotLeader,       // this node is not the leader (or knows none)
  kTransferring,    // a leadership transfer is under way: no proposals meanwhile
  kChangeInProgress,// a membership change waits: the previous one or the leader's first commit
  kInvalidArgument, // a call the core refuses as asked (transfer to itself, to a non-voter)
  kWrongRecipient,  // a message addressed to another node
  kUnknownMessage,  // a message of no known type
  kInvalidMessage,  // a peer message with a field the core cannot accept (dropped)
};

std::string_view error_name(Error error);

using Status = BasicStatus<Error, Error::kOk, &error_name>;
template <typename T>
using Result = BasicResult<T, Status>;

}  // namespace fencelock::raft
