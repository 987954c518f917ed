#include "statemachine/status.h"

namespace fencelock::sm {

std::string_view code_name(Code code) {
  switch (code) {
    case Code::kOk:
      return "OK";
    case Code::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case Code::kNotFound:
      return "NOT_FOUND";
    case Code::kSessionExpired:
      return "SESSION_EXPIRED";
    case Code::kLockNotHeld:
      return "LOCK_NOT_HELD";
    case Code::kTimeout:
      return "TIMEOUT";
    case Code::kCancelled:
      return "CANCELLED";
    case Code::kResourceExhausted:
      return "RESOURCE_EXHAUSTED";
    case Code::kFailedPrecondition:
      return "FAILED_PRECONDITION";
    case Code::kStaleSequence:
      return "STALE_SEQUENCE";
    case Code::kPermissionDenied:
      return "PERMISSION_DENIED";
  }
  return "UNKNOWN_CODE";
}

}  // namespace fencelock::sm
