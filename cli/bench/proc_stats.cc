#include "cli/bench/proc_stats.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>

namespace fencelock::bench {

std::optional<double> process_cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  // The command name (field 2) is in parentheses and may hold spaces: parse
  // after the last ')'. Then state is field 3; utime and stime are 14, 15.
  auto close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(line.substr(close + 2));
  std::string field;
  uint64_t utime = 0, stime = 0;
  for (int index = 3; fields >> field; ++index) {
    if (index == 14) utime = std::stoull(field);
    if (index == 15) {
      stime = std::stoull(field);
      break;
    }
  }
  static const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  return static_cast<double>(utime + stime) / ticks;
}

std::optional<Memory> process_memory(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  if (!in) return std::nullopt;
  Memory memory;
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") in >> memory.rss_kb;
    if (key == "VmHWM:") in >> memory.peak_kb;
    in.ignore(1 << 20, '\n');
  }
  return memory;
}

double self_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

void ProcSampler::begin() {
  tracks_.clear();
  for (pid_t pid : pids_) {
    Track track;
    track.start_cpu = track.last_cpu = process_cpu_seconds(pid).value_or(0);
    tracks_[pid] = track;
  }
  sample();
}

void ProcSampler::sample() {
  for (pid_t pid : pids_) {
    Track& track = tracks_[pid];
    if (auto cpu = process_cpu_seconds(pid)) track.last_cpu = *cpu;
    if (auto memory = process_memory(pid)) track.peak_rss_kb = std::max(track.peak_rss_kb, memory->rss_kb);
  }
}

double ProcSampler::cpu_seconds(pid_t pid) const {
  auto it = tracks_.find(pid);
  return it == tracks_.end() ? 0.0 : it->second.last_cpu - it->second.start_cpu;
}

double ProcSampler::total_cpu_seconds() const {
  double total = 0;
  for (pid_t pid : pids_) total += cpu_seconds(pid);
  return total;
}

uint64_t ProcSampler::peak_rss_kb(pid_t pid) const {
  auto it = tracks_.find(pid);
  return it == tracks_.end() ? 0 : it->second.peak_rss_kb;
}

uint64_t ProcSampler::max_peak_rss_kb() const {
  uint64_t peak = 0;
  for (pid_t pid : pids_) peak = std::max(peak, peak_rss_kb(pid));
  return peak;
}

}  // namespace fencelock::bench
