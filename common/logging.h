#pragma once
// One named spdlog logger per module (docs/design.md "Logging").
//
// Thread-safety: get_logger may be called from any thread; the loggers are
// spdlog's thread-safe (_mt) sinks.

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace fencelock {

// Returns the logger called `name`, creating it on first use with the
// default sink (stderr, colour when a terminal). Never returns null.
std::shared_ptr<spdlog::logger> get_logger(const std::string& name);

// Sets the level of every existing and future logger: "trace", "debug",
// "info", "warn", "error", "critical" or "off". Returns false for an
// unknown name and changes nothing.
bool set_log_level(const std::string& level);

}  // namespace fencelock
