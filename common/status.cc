#include "common/status.h"

namespace fencelock {

std::string_view error_code_name(ErrorCode code) {
  const std::string& name = lockpb::ErrorCode_Name(code);
  if (name.empty()) return "UNKNOWN_CODE";
  return name;
}

}  // namespace fencelock
