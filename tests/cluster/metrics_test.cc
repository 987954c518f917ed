// Process-level tests of a node's HTTP port (fencelockd --http-addr):
// /metrics passes promtool and its counters move as a scripted workload
// says they must on every node; /healthz, /readyz (also on a partitioned
// follower), /v1/ and the page's files.

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <thread>

#include "client/session.h"
#include "tests/cluster/http_get.h"
#include "tests/cluster/process_cluster.h"
#include "tests/cluster/partitioned_cluster.h"
#include "tests/run_command.h"

namespace fencelock::testing {
namespace {

using namespace std::chrono_literals;

// The value of the sample `series` (name and labels, exactly as exposed)
// in a scrape; -1 when absent.
double sample(const std::string& scrape, const std::string& series) {
  size_t at = 0;
  while ((at = scrape.find(series + " ", at)) != std::string::npos) {
    if (at == 0 || scrape[at - 1] == '\n') return std::stod(scrape.substr(at + series.size() + 1));
    at += series.size();
  }
  return -1;
}

std::string scrape(ProcessCluster& cluster, uint64_t id) {
  HttpResult result = http_get(cluster.http_endpoint(id), "/metrics");
  INFO("node " << id << ": " << result.error << " " << result.body.substr(0, 200));
  REQUIRE(result.status == 200);
  CHECK(result.content_type.starts_with("text/plain; version=0.0.4"));
  return result.body;
}

// promtool's verdict on a scrape: "" when it passes.
std::string promtool_check(const std::string& text) {
  const auto file = std::filesystem::temp_directory_path() /
                    ("fencelock-metrics-" + std::to_string(::getpid()) + ".txt");
  std::ofstream(file) << text;
  CommandRun run = run_command("promtool check metrics < " + file.string());
  std::filesystem::remove(file);
  if (run.exit_code == 0 && run.output.empty()) return "";
  return "exit " + std::to_string(run.exit_code) + ": " + run.output;
}

}  // namespace

TEST_CASE("metrics: a scripted workload moves the counters it must on every node, and each "
          "scrape passes promtool",
          "[metrics]") {
  ProcessClusterOptions options;
  options.http = true;
  ProcessCluster cluster(options);
  cluster.start_all();
  REQUIRE(cluster.wait_for_leader() != 0);

  client::SessionOptions session_options;
  session_options.client_name = "metrics_test";
  auto a = client::Session::open(cluster.client(), session_options).value();
  // 5 grants and releases of one lock.
  for (int i = 0; i < 5; ++i) {
    auto lock = a->acquire("jobs/a");
    REQUIRE(lock.ok());
    REQUIRE(lock.value()->release().ok());
  }
  // A hand-off: b queues behind a, a releases; then b closes its session
  // holding the lock.
  auto held = a->acquire("jobs/b").value();
  auto b = client::Session::open(cluster.client(), session_options).value();
  std::unique_ptr<client::Lock> b_lock;  // held until b closes its session below
  std::thread waiter([&] {
    client::AcquireOptions wait;
    wait.wait = 20s;
    auto lock = b->acquire("jobs/b", wait);
    CHECK(lock.ok());
    if (lock.ok()) b_lock = std::move(lock).value();
  });
  REQUIRE(eventually([&] {
    return sample(scrape(cluster, cluster.wait_for_leader()), "fencelock_lock_waiters") == 1;
  }));
  REQUIRE(held->release().ok());
  waiter.join();
  // An expiry: a CLI process holding a lock with a 1 s TTL is killed.
  std::string endpoints;
  for (const auto& endpoint : cluster.client_endpoints()) {
    endpoints += (endpoints.empty() ? "" : ",") + endpoint;
  }
  run_command("timeout -s KILL 2 " FENCELOCK_CLI_PATH " --endpoints " + endpoints +
              " lock jobs/expiring --ttl 1s -- sleep 4");
  REQUIRE(b->close().ok());
  b_lock.reset();

  // jobs/a 5, jobs/b twice (a, then b by hand-off), jobs/expiring once.
  const std::map<std::string, double> expected = {
      {"fencelock_lock_grants_total", 8},
      {"fencelock_lock_handoffs_total", 1},
      {"fencelock_lock_queued_total", 1},
      {"fencelock_lock_releases_total{reason=\"released\"}", 6},
      {"fencelock_lock_releases_total{reason=\"session_closed\"}", 1},
      {"fencelock_lock_releases_total{reason=\"session_expired\"}", 1},
      {"fencelock_sessions_expired_total", 1},
      {"fencelock_sessions_opened_total", 3},
      {"fencelock_sessions_closed_total", 1},
      {"fencelock_lock_prefix_grants_total{prefix=\"jobs/\"}", 8},
      {"fencelock_lock_prefix_handoffs_total{prefix=\"jobs/\"}", 1},
      {"fencelock_lock_top_grants_total{lock=\"jobs/a\"}", 5},
      {"fencelock_lock_waiters", 0},
      {"fencelock_lock_prefix_wait_seconds_count{prefix=\"jobs/\"}", 8},
      {"fencelock_lock_prefix_hold_seconds_count{prefix=\"jobs/\"}", 8},
  };
  for (uint64_t id : cluster.ids()) {
    INFO("node " << id);
    std::string text;
    bool all = eventually(
        [&] {
          text = scrape(cluster, id);
          for (const auto& [series, value] : expected) {
            if (sample(text, series) != value) return false;
          }
          return true;
        },
        15s);
    for (const auto& [series, value] : expected) {
      INFO(series);
      CHECK(sample(text, series) == value);
    }
    REQUIRE(all);
    CHECK(promtool_check(text) == "");
    CHECK(sample(text, "fencelock_raft_applied_index") > 0);
    CHECK(sample(text, "fencelock_storage_fsync_seconds_count") > 0);
    CHECK(sample(text, "process_resident_memory_bytes") > 0);
  }
  // The leader counts the requests it answered, and its peers' progress.
  const uint64_t leader = cluster.wait_for_leader();

  // `fencelock stats` prints the same from any member: here a follower.
  const uint64_t follower = leader == 1 ? 2 : 1;
  CommandRun stats = run_command(std::string(FENCELOCK_CLI_PATH) + " --endpoints " +
                                 cluster.client_endpoint(follower) + " stats jobs/");
  INFO(stats.output);
  CHECK(stats.exit_code == 0);
  CHECK(stats.output.find("node " + std::to_string(follower) + " ") != std::string::npos);
  CHECK(stats.output.find("8 grants, 1 hand-offs, 0 waiting") != std::string::npos);
  CHECK(std::regex_search(stats.output, std::regex(R"(\njobs/ +8 +1 +8 +0 )")));
  CHECK(std::regex_search(stats.output, std::regex(R"(\njobs/a +5 +0 +5 +0 )")));
  CommandRun json = run_command(std::string(FENCELOCK_CLI_PATH) + " --output json --endpoints " +
                                cluster.client_endpoint(follower) + " stats other/");
  INFO(json.output);
  CHECK(json.exit_code == 0);
  CHECK(json.output.find("\"grants\": \"8\"") != std::string::npos);
  CHECK(json.output.find("jobs/a") == std::string::npos);  // not under other/

  const std::string text = scrape(cluster, leader);
  CHECK(sample(text, "fencelock_raft_role{role=\"leader\"}") == 1);
  CHECK(sample(text, "fencelock_raft_proposals_total") >= 10);
  CHECK(sample(text, "fencelock_client_requests_total{kind=\"acquire\"}") >= 7);
  CHECK(sample(text, "fencelock_client_responses_total{code=\"OK\"}") >= 20);
  for (uint64_t id : cluster.ids()) {
    if (id == leader) continue;
    CHECK(sample(text, "fencelock_raft_peer_match_index{peer=\"" + std::to_string(id) + "\"}") > 0);
  }
}

TEST_CASE("metrics: 100,000 distinct lock names keep the per-lock series within their bound",
          "[metrics]") {
  ProcessClusterOptions options;
  options.http = true;
  options.extra_flags = {"--metrics-max-prefixes", "20", "--metrics-top-k", "5",
                         "--metrics-prefix-segments", "1"};
  options.unsafe_no_fsync = true;
  ProcessCluster cluster(options);
  cluster.start_all();
  REQUIRE(cluster.wait_for_leader() != 0);
  // 8 sessions (a session's requests are sequenced: one at a time each),
  // 100,000 names with a distinct prefix each ("n<i>/x").
  constexpr int kNames = 100'000;
  std::atomic<int> failures{0};
  std::mutex mutex;
  std::string first_failure;
  std::vector<std::thread> workers;
  for (int w = 0; w < 8; ++w) {
    workers.emplace_back([&, w] {
      auto session = client::Session::open(cluster.client(), {}).value();
      for (int i = w; i < kNames; i += 8) {
        auto lock = session->try_acquire("n" + std::to_string(i) + "/x");
        Status status = lock.ok() ? lock.value()->release() : lock.status();
        if (!status.ok()) {
          std::lock_guard guard(mutex);
          if (failures++ == 0) first_failure = status.to_string();
        }
      }
    });
  }
  for (auto& worker : workers) worker.join();
  INFO(first_failure);
  REQUIRE(failures == 0);
  const uint64_t leader = cluster.wait_for_leader();
  std::string text;
  REQUIRE(eventually([&] {
    text = scrape(cluster, leader);
    return sample(text, "fencelock_lock_grants_total") == kNames;
  }, 30s));
  size_t prefix_series = 0;
  size_t top_series = 0;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    prefix_series += line.starts_with("fencelock_lock_prefix_grants_total{");
    top_series += line.starts_with("fencelock_lock_top_grants_total{");
  }
  CHECK(prefix_series == 21);  // 20 prefixes and _other
  CHECK(top_series == 5);
  CHECK(sample(text, "fencelock_lock_prefix_grants_total{prefix=\"_other\"}") == kNames - 20);
  CHECK(promtool_check(text) == "");
}


TEST_CASE("readyz: a partitioned follower turns unready and ready again once it heals; healthz "
          "stays up; the page and /v1/ answer",
          "[metrics]") {
  ProcessClusterOptions options;
  options.http = true;
  PartitionedCluster c(options);
  const uint64_t leader = c.cluster.wait_for_leader();
  REQUIRE(leader != 0);
  uint64_t follower = leader == 1 ? 2 : 1;
  auto ready = [&](uint64_t id) { return http_get(c.cluster.http_endpoint(id), "/readyz"); };
  REQUIRE(eventually([&] { return ready(follower).status == 200; }));
  CHECK(ready(leader).status == 200);

  c.isolate(follower, true);
  HttpResult unready;
  REQUIRE(eventually([&] { return (unready = ready(follower)).status == 503; }, 15s));
  CHECK(unready.body.find("not ready: no leader known") != std::string::npos);
  CHECK(http_get(c.cluster.http_endpoint(follower), "/healthz").status == 200);
  CHECK(ready(leader).status == 200);

  c.isolate(follower, false);
  REQUIRE(eventually([&] { return ready(follower).status == 200; }, 15s));

  HttpResult status = http_get(c.cluster.http_endpoint(leader), "/v1/status");
  CHECK(status.status == 200);
  CHECK(status.content_type == "application/json");
  CHECK(status.body.find("\"role\":\"leader\"") != std::string::npos);
  HttpResult page = http_get(c.cluster.http_endpoint(leader), "/");
  CHECK(page.status == 200);
  CHECK(page.body.find("<script src=\"/ui/app.js\">") != std::string::npos);
  CHECK(http_get(c.cluster.http_endpoint(leader), "/ui/app.js").status == 200);
  CHECK(http_get(c.cluster.http_endpoint(leader), "/nothing").status == 404);
  CHECK(http_get(c.cluster.http_endpoint(leader), "/v1/locks?limit=0").status == 400);
}

}  // namespace fencelock::testing
