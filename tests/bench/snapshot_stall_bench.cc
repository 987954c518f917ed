// How long a leader taking a state machine snapshot of a ~200 MiB state
// stalls its clients: the old way (the whole snapshot taken on the event
// loop: fencelockd --test-only-snapshot-on-loop) against the new (an image
// of the state taken on the loop, serialised and written on a background
// thread), one after the other in the same run on the same machine.
//
//   build/tests/bench/snapshot_stall_bench [--locks 200000] [--value-bytes 1024]
//                                          [--modes old,new] [--nodes 3]
//
// For each mode: a fresh 3-node cluster (fsync on) is filled with --locks
// locks, each holding a value, with --snapshot-every set just past the
// fill, so that the first snapshot (of everything) comes while a probe
// client times serial acquire/release pairs on one lock. Printed per mode:
// the probe's acquire latency before the snapshots (p50, p99, max), the
// slowest acquire while a node took one, and what each node's log says the
// snapshot cost its loop; then the ratios old/new.
//
// Not run by ctest (it takes a minute or two and 3 GB of disk).

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "client/session.h"
#include "tests/cluster/fill.h"
#include "tests/cluster/process_cluster.h"

namespace fencelock::testing {
namespace {

using namespace std::chrono_literals;
using SystemClock = std::chrono::system_clock;

struct Op {
  SystemClock::time_point start;
  double acquire_ms = 0;
};

// A node's account of its snapshot: when it ended, how long it took in
// all and on the loop.
struct Saved {
  uint64_t node = 0;
  SystemClock::time_point end;
  double total_ms = 0;
  double loop_ms = 0;      // in all
  double longest_ms = 0;   // at a time
  std::string line;
};

std::vector<Saved> saved_snapshots(ProcessCluster& cluster) {
  static const std::regex saved(
      R"((\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3}) .*saved snapshot at index \d+ .* in (\d+) ms; the loop spent ([\d.]+) ms on it, at most ([\d.]+) ms at a time.*)");
  std::vector<Saved> out;
  for (uint64_t id : cluster.ids()) {
    std::ifstream in(cluster.data_dir(id) / "fencelockd.log");
    for (std::string line; std::getline(in, line);) {
      std::smatch m;
      if (!std::regex_match(line, m, saved)) continue;
      std::tm tm{};
      std::istringstream(m[1].str()) >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
      tm.tm_isdst = -1;
      Saved s;
      s.node = id;
      s.end = SystemClock::from_time_t(std::mktime(&tm)) + std::chrono::milliseconds(std::stoi(m[2]));
      s.total_ms = std::stod(m[3]);
      s.loop_ms = std::stod(m[4]);
      s.longest_ms = std::stod(m[5]);
      s.line = line.substr(line.find("saved snapshot"));
      out.push_back(s);
    }
  }
  return out;
}

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t at = static_cast<size_t>(p * static_cast<double>(values.size() - 1));
  return values[at];
}

struct ModeResult {
  std::string mode;
  double before_p50 = 0, before_p99 = 0, before_max = 0;
  double during_p99 = 0, during_max = 0;
  double leader_loop_ms = 0;
  double max_loop_ms = 0;
  uint64_t leader_changes = 0;
};

ModeResult run_mode(const std::string& mode, int nodes, uint64_t locks, size_t value_bytes) {
  ModeResult result;
  result.mode = mode;
  const uint64_t sessions = (locks + 9999) / 10000;
  ProcessClusterOptions options;
  options.nodes = nodes;
  // Past the fill (its acquires, sessions and the leader's no-op): the
  // first snapshot comes during the probe.
  options.snapshot_every = locks + sessions + 2000;
  options.keep_log_entries = 1000;
  if (mode == "old") options.extra_flags.push_back("--test-only-snapshot-on-loop");
  ProcessCluster cluster(options);
  cluster.start_all();
  uint64_t leader = cluster.wait_for_leader();
  if (leader == 0) {
    std::fprintf(stderr, "%s: no leader\n", mode.c_str());
    std::exit(1);
  }
  auto client = cluster.client();
  FillOptions fill;
  fill.locks = locks;
  fill.value_bytes = value_bytes;
  fill.timeout = 600s;
  FillResult filled = fill_locks(client, fill);
  if (!filled.ok) {
    std::fprintf(stderr, "%s: fill failed: %s\n", mode.c_str(), filled.error.c_str());
    std::exit(1);
  }
  std::printf("[%s] filled %llu locks of %zu-byte values in %.1f s\n", mode.c_str(),
              static_cast<unsigned long long>(locks), value_bytes, filled.elapsed.count() / 1000.0);
  leader = cluster.wait_for_leader();

  client::SessionOptions session_options;
  session_options.ttl = 60s;
  auto session = client::Session::open(client, session_options);
  if (!session.ok()) std::exit(1);
  client::AcquireOptions acquire_options;
  acquire_options.wait = 30s;
  std::vector<Op> ops;
  auto deadline = std::chrono::steady_clock::now() + 300s;
  std::chrono::steady_clock::time_point all_saved{};
  while (std::chrono::steady_clock::now() < deadline) {
    Op op;
    op.start = SystemClock::now();
    auto start = std::chrono::steady_clock::now();
    auto lock = session.value()->acquire("probe/lock", acquire_options);
    op.acquire_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (!lock.ok()) {
      std::fprintf(stderr, "%s: probe acquire failed: %s\n", mode.c_str(),
                   lock.status().to_string().c_str());
      std::exit(1);
    }
    (void)lock.value()->release();
    ops.push_back(op);
    if (ops.size() % 200 == 0 && all_saved == std::chrono::steady_clock::time_point{} &&
        saved_snapshots(cluster).size() >= cluster.ids().size()) {
      all_saved = std::chrono::steady_clock::now();
    }
    if (all_saved != std::chrono::steady_clock::time_point{} &&
        std::chrono::steady_clock::now() - all_saved > 1s) {
      break;
    }
  }
  uint64_t leader_after = cluster.wait_for_leader();
  result.leader_changes = leader_after == leader ? 0 : 1;

  std::vector<Saved> saved = saved_snapshots(cluster);
  if (saved.empty()) {
    std::fprintf(stderr, "%s: no snapshot was taken\n", mode.c_str());
    std::exit(1);
  }
  auto first_start = SystemClock::time_point::max();
  for (const Saved& s : saved) {
    auto start = s.end - std::chrono::microseconds(static_cast<int64_t>(s.total_ms * 1000));
    first_start = std::min(first_start, start);
    result.max_loop_ms = std::max(result.max_loop_ms, s.longest_ms);
    if (s.node == leader) result.leader_loop_ms = s.longest_ms;
    std::printf("[%s] node %llu%s %s\n", mode.c_str(), static_cast<unsigned long long>(s.node),
                s.node == leader ? " (leader)" : "", s.line.c_str());
  }
  auto last_end = SystemClock::time_point::min();
  for (const Saved& s : saved) last_end = std::max(last_end, s.end);
  std::vector<double> before, during;
  for (const Op& op : ops) {
    auto end = op.start + std::chrono::microseconds(static_cast<int64_t>(op.acquire_ms * 1000));
    if (end < first_start) {
      before.push_back(op.acquire_ms);
    } else if (op.start <= last_end) {
      during.push_back(op.acquire_ms);
    }
  }
  result.during_p99 = percentile(during, 0.99);
  result.during_max = percentile(during, 1.0);
  result.before_p50 = percentile(before, 0.5);
  result.before_p99 = percentile(before, 0.99);
  result.before_max = percentile(before, 1.0);
  std::printf("[%s] probe acquires: before the snapshots p50 %.2f ms, p99 %.2f ms, max %.2f ms "
              "(%zu); while they were taken p99 %.1f ms, max %.1f ms (%zu); leader changed: %s\n",
              mode.c_str(), result.before_p50, result.before_p99, result.before_max, before.size(),
              result.during_p99, result.during_max, during.size(),
              result.leader_changes ? "yes" : "no");
  return result;
}

}  // namespace
}  // namespace fencelock::testing

int main(int argc, char** argv) {
  using namespace fencelock::testing;
  CLI::App app{"snapshot_stall_bench: client stalls while a leader takes a snapshot"};
  uint64_t locks = 200'000;
  size_t value_bytes = 1024;
  std::vector<std::string> modes = {"old", "new"};
  int nodes = 3;
  app.add_option("--locks", locks, "locks in the state, each holding a value")->capture_default_str();
  app.add_option("--value-bytes", value_bytes, "bytes of each lock's value (at most 1024)")
      ->capture_default_str();
  app.add_option("--modes", modes, "old (on the loop), new (off it), in this order")
      ->delimiter(',')
      ->check(CLI::IsMember({"old", "new"}));
  app.add_option("--nodes", nodes, "cluster size")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::vector<ModeResult> results;
  for (const auto& mode : modes) results.push_back(run_mode(mode, nodes, locks, value_bytes));
  std::printf("\n| mode | leader's longest loop block (ms) | longest loop block, any node (ms) | "
              "probe acquire before: p99 / max (ms) | during: p99 / max (ms) |\n"
              "|---|---|---|---|---|\n");
  for (const auto& r : results) {
    std::printf("| %s | %.1f | %.1f | %.1f / %.1f | %.1f / %.1f |\n", r.mode.c_str(),
                r.leader_loop_ms, r.max_loop_ms, r.before_p99, r.before_max, r.during_p99,
                r.during_max);
  }
  if (results.size() == 2) {
    const auto& old_mode = results[0];
    const auto& new_mode = results[1];
    std::printf("\nold/new: leader's loop blocked %.0fx, slowest acquire during the snapshot %.0fx\n",
                old_mode.leader_loop_ms / std::max(new_mode.leader_loop_ms, 0.001),
                old_mode.during_max / std::max(new_mode.during_max, 0.001));
  }
  return 0;
}
