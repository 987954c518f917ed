#include "raft/status.h"

namespace fencelock::raft {

std::string_view error_name(Error error) {
  switch (error) {
    case Error::kOk:
      return "OK";
    case Error::kNotLeader:
      return "NOT_LEADER";
    case Error::kTransferring:
      return "TRANSFERRING";
    case Error::kChangeInProgress:
      return "CHANGE_IN_PROGRESS";
    case Error::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case Error::kWrongRecipient:
      return "WRONG_RECIPIENT";
    case Error::kUnknownMessage:
      return "UNKNOWN_MESSAGE";
    case Error::kInvalidMessage:
      return "INVALID_MESSAGE";
  }
  return "UNKNOWN_ERROR";
}

}  // namespace fencelock::raft
