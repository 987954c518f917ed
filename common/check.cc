#include "common/check.h"

#include <spdlog/spdlog.h>

#include <cstdlib>

namespace fencelock::detail {

void check_failed(const char* file, int line, const char* condition, const std::string& message) {
  spdlog::critical("check failed at {}:{}: ({}) {}", file, line, condition, message);
  spdlog::default_logger()->flush();
  std::abort();
}

}  // namespace fencelock::detail
