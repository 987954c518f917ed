#include "common/status.h"

#include "common/check.h"

namespace fencelock {

std::string_view error_code_name(ErrorCode code) {
  const std::string& name = lockpb::ErrorCode_Name(code);
  if (name.empty()) return "UNKNOWN_CODE";
  return name;
}

std::string Status::to_string() const {
  if (ok()) return "OK";
  std::string out(error_code_name(code_));
  if (!message_.empty()) {
    out += ": ";
    out += message_;
  }
  return out;
}

namespace detail {
void result_value_of_error(const Status& status) {
  FL_CHECK(false, "value() of an error Result: {}", status.to_string());
  __builtin_unreachable();
}
}  // namespace detail

}  // namespace fencelock
