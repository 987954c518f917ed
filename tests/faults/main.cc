// fencelock-faults: a real cluster under kills, pauses, partitions and
// client cut-offs, checked by fencing (docs/faults.md).
//
//   fencelock-faults --seconds 60 [--seed S] [--nodes 3|5] [--no-fence]
//
// Prints the fault schedule, then one summary line
//   ops=N faults=F violations=V overlaps=K fenced=K
// and writes the history (JSON lines) to --out. Exits 0 when there is no
// violation; with --expect-lost-updates (the proof run, with --no-fence),
// exits 0 only when the checker reported lost updates.

#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <random>
#include <thread>

#include "client/session.h"
#include "common/logging.h"
#include "tests/cluster/process_cluster.h"
#include "tests/cluster/tcp_proxy.h"
#include "tests/faults/checker.h"
#include "tests/faults/history.h"
#include "tests/faults/nemesis.h"
#include "tests/faults/resource.h"
#include "tests/faults/schedule.h"
#include "tests/faults/worker.h"

using namespace fencelock;
using namespace fencelock::faults;
using namespace std::chrono_literals;

namespace {

struct Options {
  int seconds = 60;
  uint64_t seed = 0;
  int nodes = 3;
  int workers = 0;  // 0: 8 for 3 nodes, 10 for 5
  int locks = 3;
  bool no_fence = false;
  bool expect_lost_updates = false;
  std::string out;
  uint32_t tick_ms = 50;
  int election_ticks = 10;
  int64_t ttl_ms = 1000;
  int64_t liveness_slack_ms = 0;
};

// Acquires every hot lock (and a fresh one) from a new client and session,
// measuring from `healed_us` on the history clock.
Liveness probe_liveness(const std::vector<std::string>& endpoints, const std::vector<std::string>& locks,
                        const Options& options, History& history, int64_t healed_us) {
  Liveness out;
  out.bound_ms = 2 * options.election_ticks * options.tick_ms + options.ttl_ms + options.liveness_slack_ms;
  auto deadline = std::chrono::milliseconds(out.bound_ms + 5000);
  client::ClientOptions client_options;
  client_options.endpoints = endpoints;
  client_options.request_timeout = deadline;
  auto client = client::Client::connect(client_options).value();
  std::fprintf(stderr, "fencelock-faults: %8.3fs liveness probe starts\n", history.now_us() / 1e6);
  auto session = client::Session::open(client, {.ttl = std::chrono::milliseconds(options.ttl_ms), .client_name = "liveness"});
  std::fprintf(stderr, "fencelock-faults: %8.3fs liveness probe: session %s\n", history.now_us() / 1e6,
               session.ok() ? "open" : session.status().to_string().c_str());
  if (!session.ok()) {
    out.error = "liveness: cannot open a session: " + session.status().to_string();
    return out;
  }
  std::vector<std::string> names = locks;
  names.push_back("faults/liveness");
  for (const auto& name : names) {
    client::AcquireOptions acquire;
    acquire.wait = deadline;
    auto lock = session.value()->acquire(name, acquire);
    if (!lock.ok()) {
      out.error = "liveness: acquire " + name + ": " + lock.status().to_string();
      return out;
    }
    lock.value()->release();
  }
  out.elapsed_ms = (history.now_us() - healed_us) / 1000;
  out.ok = out.elapsed_ms <= out.bound_ms;
  session.value()->close();
  return out;
}

FinalState read_final_state(const std::vector<std::string>& endpoints, const std::vector<std::string>& locks,
                            const std::vector<std::unique_ptr<Worker>>& workers, const Options& options) {
  FinalState out;
  client::ClientOptions client_options;
  client_options.endpoints = endpoints;
  auto client = client::Client::connect(client_options).value();
  for (const auto& name : locks) {
    auto info = client->describe(name);
    if (!info.ok() && info.status().code() == lockpb::NOT_FOUND) continue;  // free locks are not kept
    if (!info.ok()) {
      out.error = "describe " + name + ": " + info.status().to_string();
      return out;
    }
    out.holders[name].assign(info.value().holders().begin(), info.value().holders().end());
  }
  uint64_t after = 0;
  for (int page = 0; page < 1000; ++page) {
    auto list = client->list_sessions(after);
    if (!list.ok()) {
      out.error = "list sessions: " + list.status().to_string();
      return out;
    }
    for (const auto& s : list.value().sessions()) out.live_sessions.insert(s.session_id());
    after = list.value().next_start_after();
    if (after == 0) break;
  }
  for (const auto& worker : workers) {
    auto session = worker->session();
    if (!session) continue;
    out.worker_sessions.insert(session->id());
    if (!session->lost()) out.believed_alive.insert(session->id());
  }
  auto session = client::Session::open(client, {.ttl = std::chrono::milliseconds(options.ttl_ms), .client_name = "final"});
  if (!session.ok()) {
    out.error = "open the final session: " + session.status().to_string();
    return out;
  }
  auto lock = session.value()->try_acquire("faults/final");
  if (!lock.ok()) {
    out.error = "final acquire: " + lock.status().to_string();
    return out;
  }
  out.fresh_token = lock.value()->token();
  lock.value()->release();
  session.value()->close();
  out.read = true;
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  CLI::App app("fencelock-faults: a real cluster under faults, checked by fencing (docs/faults.md)");
  app.add_option("--seconds", options.seconds, "length of the faulty part of the run")->check(CLI::Range(5, 86400));
  app.add_option("--seed", options.seed, "fault schedule seed (default: random, printed)");
  app.add_option("--nodes", options.nodes, "cluster size")->check(CLI::IsMember({3, 5}));
  app.add_option("--workers", options.workers, "client workers, one session each (default 8 or 10)");
  app.add_option("--locks", options.locks, "hot lock names")->check(CLI::Range(1, 16));
  app.add_flag("--no-fence", options.no_fence, "the resource trusts every holder (the checker must then fail)");
  app.add_flag("--expect-lost-updates", options.expect_lost_updates,
               "exit 0 only if lost updates were reported (the proof run)");
  app.add_option("--out", options.out, "directory for history.jsonl and node logs (default: a new temp dir)");
  app.add_option("--tick-ms", options.tick_ms, "Raft tick of the nodes");
  app.add_option("--election-ticks", options.election_ticks, "election timeout in ticks");
  app.add_option("--ttl-ms", options.ttl_ms, "workers' session TTL")->check(CLI::Range(500, 60000));
  app.add_option("--liveness-slack-ms", options.liveness_slack_ms, "added to the liveness bound");
  bool schedule_only = false;
  std::string client_log_level = "warn";
  app.add_option("--client-log-level", client_log_level, "log level of the client library (stderr)");
  app.add_flag("--schedule-only", schedule_only, "print the fault schedule and exit");
  CLI11_PARSE(app, argc, argv);
  if (options.seed == 0) options.seed = std::random_device()() | (uint64_t{std::random_device()()} << 32);
  if (options.workers == 0) options.workers = options.nodes == 3 ? 8 : 10;
  if (options.out.empty()) {
    options.out = (std::filesystem::temp_directory_path() /
                   ("fencelock-faults-" + std::to_string(options.seed) + (options.no_fence ? "-nofence-" : "-") +
                    std::to_string(getpid())))
                      .string();
  }
  signal(SIGPIPE, SIG_IGN);

  std::printf("fencelock-faults: seed=%llu nodes=%d seconds=%d workers=%d fencing=%s out=%s\n",
              static_cast<unsigned long long>(options.seed), options.nodes, options.seconds, options.workers,
              options.no_fence ? "off" : "on", options.out.c_str());
  std::printf("replay: fencelock-faults --seed %llu --nodes %d --seconds %d%s\n",
              static_cast<unsigned long long>(options.seed), options.nodes, options.seconds,
              options.no_fence ? " --no-fence" : "");
  ScheduleOptions schedule_options;
  schedule_options.seed = options.seed;
  schedule_options.nodes = options.nodes;
  schedule_options.workers = options.workers;
  schedule_options.run_ms = int64_t{options.seconds} * 1000;
  schedule_options.ttl_ms = options.ttl_ms;
  schedule_options.election_timeout_ms = int64_t{options.election_ticks} * options.tick_ms;
  auto schedule = make_schedule(schedule_options);
  std::printf("schedule (%zu faults):\n", schedule.size());
  for (const auto& fault : schedule) std::printf("  %s\n", describe(fault).c_str());
  std::fflush(stdout);
  if (schedule_only) return 0;
  set_log_level(client_log_level);
  std::filesystem::remove_all(options.out);
  std::filesystem::create_directories(options.out);

  // Every directed peer link (from, to) gets its own proxy target, which
  // forwards to `to`'s real peer port; `from` dials it.
  std::map<std::pair<uint64_t, uint64_t>, size_t> link_index;
  std::map<std::pair<uint64_t, uint64_t>, std::string> link_address;
  testing::ProcessClusterOptions cluster_options;
  cluster_options.nodes = options.nodes;
  cluster_options.tick_ms = options.tick_ms;
  cluster_options.election_ticks = options.election_ticks;
  cluster_options.dir = std::filesystem::path(options.out) / "nodes";
  cluster_options.dial_address = [&link_address](uint64_t from, uint64_t to, const std::string&) {
    return link_address.at({from, to});
  };
  testing::ProcessCluster cluster(cluster_options);
  std::vector<std::string> targets;
  for (uint64_t from : cluster.ids()) {
    for (uint64_t to : cluster.ids()) {
      if (from == to) continue;
      link_index[{from, to}] = targets.size();
      targets.push_back(cluster.peer_endpoint(to));
    }
  }
  testing::TcpProxy links(targets);
  auto link_endpoints = links.endpoints();
  for (const auto& [link, index] : link_index) link_address[link] = link_endpoints[index];

  cluster.start_all();
  if (cluster.wait_for_leader(20s) == 0) {
    std::fprintf(stderr, "fencelock-faults: no leader elected\n");
    for (uint64_t id : cluster.ids()) std::fprintf(stderr, "%s", cluster.log_tail(id).c_str());
    return 2;
  }

  History history;
  ProtectedResource resource(!options.no_fence);
  std::vector<std::string> locks;
  for (int i = 0; i < options.locks; ++i) locks.push_back("hot/" + std::to_string(i));
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < options.workers; ++i) {
    WorkerOptions worker_options;
    worker_options.id = i;
    worker_options.seed = options.seed * 1000003 + static_cast<uint64_t>(i);
    worker_options.locks = locks;
    worker_options.ttl = std::chrono::milliseconds(options.ttl_ms);
    workers.push_back(std::make_unique<Worker>(worker_options, cluster.client_endpoints(), resource, history));
  }
  for (auto& worker : workers) worker->start();

  Nemesis nemesis(cluster, links, [&link_index](uint64_t from, uint64_t to) { return link_index.at({from, to}); },
                  workers, history);
  std::atomic<bool> stop_nemesis{false};
  nemesis.run(schedule, schedule_options.run_ms, stop_nemesis);
  nemesis.heal_all();
  int64_t healed_us = history.now_us();
  std::fprintf(stderr, "fencelock-faults: %8.3fs every fault healed\n", healed_us / 1e6);

  for (auto& worker : workers) worker->stop();
  Liveness liveness = probe_liveness(cluster.client_endpoints(), locks, options, history, healed_us);
  for (auto& worker : workers) worker->join();
  FinalState final_state = read_final_state(cluster.client_endpoints(), locks, workers, options);

  auto ops = resource.ops();
  Report report = check(history.grants(), history.releases(), ops, resource.values(), final_state, liveness);
  {
    std::ofstream out(std::filesystem::path(options.out) / "history.jsonl");
    history.write(out, ops);
  }
  workers.clear();
  bool passed = options.expect_lost_updates ? report.lost_updates > 0 : report.violation_count == 0;
  if (passed) {
    // Keep the history and the node logs for inspection, not the data.
    for (uint64_t id : cluster.ids()) {
      cluster.kill(id);
      std::error_code ignored;
      std::filesystem::remove_all(cluster.data_dir(id) / "data", ignored);
    }
  }

  for (const auto& violation : report.violations) std::printf("violation: %s\n", violation.c_str());
  std::printf("grants=%lld releases=%lld reads=%lld writes=%lld rejected=%lld lost_updates=%lld "
              "belief_overlaps=%lld shared_rejected=%lld liveness_ms=%lld (bound %lld) history=%s/history.jsonl\n",
              static_cast<long long>(report.grants), static_cast<long long>(report.releases_ok),
              static_cast<long long>(report.reads), static_cast<long long>(report.writes),
              static_cast<long long>(report.rejected), static_cast<long long>(report.lost_updates),
              static_cast<long long>(report.belief_overlaps), static_cast<long long>(report.shared_rejected),
              static_cast<long long>(liveness.elapsed_ms), static_cast<long long>(liveness.bound_ms),
              options.out.c_str());
  int64_t ops_count = report.grants + report.releases_ok + report.reads + report.writes;
  std::printf("ops=%lld faults=%d violations=%lld overlaps=%lld fenced=%lld\n", static_cast<long long>(ops_count),
              nemesis.applied(), static_cast<long long>(report.violation_count),
              static_cast<long long>(report.overlaps), static_cast<long long>(report.fenced));
  std::fflush(stdout);
  if (options.expect_lost_updates) {
    bool shown = report.lost_updates > 0;
    std::printf("%s\n", shown ? "proof run: the checker reported the lost updates of unfenced stale holders"
                              : "proof run FAILED: no lost update reported without fencing");
    return shown ? 0 : 1;
  }
  if (report.violation_count > 0) {
    for (uint64_t id : cluster.ids()) std::fprintf(stderr, "%s", cluster.log_tail(id, 40).c_str());
  }
  return report.violation_count == 0 ? 0 : 1;
}
