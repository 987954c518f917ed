#include "server/process_stats.h"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace fencelock::server {

namespace {

// The machine's boot time, in seconds since the epoch (/proc/stat btime).
std::optional<double> boot_time() {
  std::ifstream stat("/proc/stat");
  std::string key;
  while (stat >> key) {
    if (key == "btime") {
      double seconds = 0;
      if (stat >> seconds) return seconds;
      return std::nullopt;
    }
    stat.ignore(1 << 16, '\n');
  }
  return std::nullopt;
}

}  // namespace

std::optional<ProcessStats> read_process_stats() {
  std::ifstream file("/proc/self/stat");
  std::string line;
  if (!std::getline(file, line)) return std::nullopt;
  // The command name (field 2) is in parentheses and may hold spaces.
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(close + 2));
  // Fields from 3 on: state ppid pgrp session tty tpgid flags minflt
  // cminflt majflt cmajflt utime(14) stime(15) cutime cstime priority nice
  // num_threads(20) itrealvalue starttime(22) vsize(23) rss(24).
  std::string fields[22];
  for (auto& field : fields) {
    if (!(rest >> field)) return std::nullopt;
  }
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const long page = ::sysconf(_SC_PAGESIZE);
  ProcessStats stats;
  try {
    stats.cpu_seconds = (std::stod(fields[11]) + std::stod(fields[12])) / ticks;
    stats.threads = std::stoull(fields[17]);
    stats.virtual_bytes = std::stoull(fields[20]);
    stats.resident_bytes = std::stoull(fields[21]) * static_cast<uint64_t>(page);
    if (auto boot = boot_time()) stats.start_time_seconds = *boot + std::stod(fields[19]) / ticks;
  } catch (const std::exception&) {
    return std::nullopt;
  }
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
       it.increment(ec)) {
    ++stats.open_fds;
  }
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) stats.max_fds = limit.rlim_cur;
  return stats;
}

}  // namespace fencelock::server
