#pragma once
// The process's own resource use, read from /proc/self (Linux), for the
// standard process_* metrics every Prometheus client exports.

#include <cstdint>
#include <optional>

namespace fencelock::server {

struct ProcessStats {
  double cpu_seconds = 0;         // user + system
  uint64_t resident_bytes = 0;
  uint64_t virtual_bytes = 0;
  uint64_t open_fds = 0;
  uint64_t max_fds = 0;
  double start_time_seconds = 0;  // since the Unix epoch
  uint64_t threads = 0;
};

// nullopt when /proc/self cannot be read (not Linux, or no /proc).
std::optional<ProcessStats> read_process_stats();

}  // namespace fencelock::server
