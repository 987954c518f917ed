#pragma once
// CPU time and memory of processes, read from /proc, and of this process,
// from getrusage: fencelock-bench shows with them that each driver keeps its
// servers busier than itself.
//
// Thread-safety: functions are thread-safe; ProcSampler is not (the
// runner's main thread owns it).

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

namespace fencelock::bench {

// utime + stime of `pid` in seconds, or nothing when it is gone.
std::optional<double> process_cpu_seconds(pid_t pid);
// Resident set size now (VmRSS) and its lifetime peak (VmHWM), in KiB.
struct Memory {
  uint64_t rss_kb = 0;
  uint64_t peak_kb = 0;
};
std::optional<Memory> process_memory(pid_t pid);
// User + system CPU seconds of this process so far.
double self_cpu_seconds();

// Tracks CPU use of a set of server processes over an interval and the
// largest RSS seen while sampling. A process that dies (failover) keeps its
// last sampled CPU time.
class ProcSampler {
 public:
  explicit ProcSampler(std::vector<pid_t> pids) : pids_(std::move(pids)) {}

  // Starts the interval: CPU baselines, RSS maxima cleared.
  void begin();
  // Takes a sample (call about once a second, and at the end).
  void sample();

  // CPU seconds since begin(), of one pid and of all.
  double cpu_seconds(pid_t pid) const;
  double total_cpu_seconds() const;
  // Largest RSS sampled since begin(), of one pid and the largest of all.
  uint64_t peak_rss_kb(pid_t pid) const;
  uint64_t max_peak_rss_kb() const;
  const std::vector<pid_t>& pids() const { return pids_; }

 private:
  struct Track {
    double start_cpu = 0;
    double last_cpu = 0;
    uint64_t peak_rss_kb = 0;
  };
  std::vector<pid_t> pids_;
  std::map<pid_t, Track> tracks_;
};

}  // namespace fencelock::bench
