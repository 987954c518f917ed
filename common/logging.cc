#include "common/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace fencelock {

std::shared_ptr<spdlog::logger> get_logger(const std::string& name) {
  if (auto existing = spdlog::get(name)) return existing;
  auto logger = spdlog::stderr_color_mt(name);
  logger->set_level(spdlog::get_level());
  return logger;
}

bool set_log_level(const std::string& level) {
  auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") return false;
  spdlog::set_level(parsed);
  return true;
}

}  // namespace fencelock
