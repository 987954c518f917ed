// A follower that missed a state of over 200 MiB catches up by a streamed
// InstallSnapshot: real fencelockd processes with fsync, 205,000 locks each
// holding a 1 KiB value. Label "slow" (about a minute and a half here: see
// the timings it prints) and "cluster".

#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <set>
#include <sstream>

#include "tests/cluster/fill.h"
#include "tests/cluster/process_cluster.h"

namespace fencelock::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kLocks = 205'000;
constexpr uint64_t kMinSnapshotBytes = 200ull << 20;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

// The largest snapshot a node's log says it saved: (index, bytes).
std::pair<uint64_t, uint64_t> largest_saved_snapshot(ProcessCluster& cluster, uint64_t id) {
  static const std::regex saved(R"(saved snapshot at index (\d+) \(\d+ sessions, \d+ locks, (\d+) bytes\))");
  std::string log = read_file(cluster.data_dir(id) / "fencelockd.log");
  std::pair<uint64_t, uint64_t> best{0, 0};
  for (std::sregex_iterator it(log.begin(), log.end(), saved), end; it != end; ++it) {
    uint64_t bytes = std::stoull((*it)[2]);
    if (bytes >= best.second) best = {std::stoull((*it)[1]), bytes};
  }
  return best;
}

// Peak resident memory of a running process (VmHWM), in bytes.
uint64_t peak_rss_bytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

uint64_t applied_index(ProcessCluster& cluster, uint64_t id) {
  auto status = cluster.status_of(id);
  if (!status) return 0;
  for (const auto& member : status->members()) {
    if (member.id() == id) return member.applied_index();
  }
  return 0;
}

}  // namespace

TEST_CASE("a follower that missed a 200 MiB state catches up by a streamed snapshot and serves it",
          "[cluster][slow]") {
  const auto test_started = Clock::now();
  ProcessClusterOptions options;
  options.snapshot_every = 100'000;
  options.keep_log_entries = 1000;
  ProcessCluster cluster(options);
  cluster.start_all();
  uint64_t leader = cluster.wait_for_leader();
  REQUIRE(leader != 0);
  // The follower to stop is the lower-numbered one: at the end the leader
  // hands leadership to it (among followers equally up to date, the first).
  std::vector<uint64_t> followers;
  for (uint64_t id : cluster.ids()) {
    if (id != leader) followers.push_back(id);
  }
  const uint64_t lagging = followers.front();
  const uint64_t other = followers.back();
  cluster.kill(lagging);

  auto client = cluster.client();
  FillOptions fill;
  fill.locks = kLocks;
  FillResult filled = fill_locks(client, fill);
  INFO(filled.error);
  REQUIRE(filled.ok);
  std::printf("filled %llu locks with 1 KiB values in %.1f s\n",
              static_cast<unsigned long long>(kLocks), filled.elapsed.count() / 1000.0);

  // The leader's snapshot of (nearly) all of it, taken off its loop, and
  // the log compacted behind it.
  std::pair<uint64_t, uint64_t> snapshot;
  REQUIRE(eventually([&] {
    snapshot = largest_saved_snapshot(cluster, leader);
    return snapshot.second >= kMinSnapshotBytes;
  }, 120s));
  std::printf("leader %llu saved a snapshot of %.1f MiB at index %llu\n",
              static_cast<unsigned long long>(leader), snapshot.second / 1048576.0,
              static_cast<unsigned long long>(snapshot.first));
  const uint64_t target = applied_index(cluster, leader);
  REQUIRE(target >= snapshot.first);

  const auto restarted = Clock::now();
  cluster.start(lagging);
  REQUIRE(eventually([&] { return applied_index(cluster, lagging) >= target; }, 120s));
  const double catch_up_s = seconds_since(restarted);
  const std::string lagging_log = read_file(cluster.data_dir(lagging) / "fencelockd.log");
  const std::string leader_log = read_file(cluster.data_dir(leader) / "fencelockd.log");
  CHECK_THAT(lagging_log, Catch::Contains("received snapshot at index"));
  CHECK_THAT(lagging_log, Catch::Contains("restored snapshot at index"));
  CHECK_THAT(leader_log, Catch::Contains("streams snapshot at index"));
  CHECK_THAT(leader_log,
             Catch::Contains("reached " + std::to_string(lagging) + " ("));
  uint64_t installed_bytes = 0;
  for (const auto& file : std::filesystem::directory_iterator(cluster.data_dir(lagging) / "data" / "snap")) {
    installed_bytes = std::max<uint64_t>(installed_bytes, file.file_size());
  }
  CHECK(installed_bytes >= kMinSnapshotBytes);
  std::printf("follower %llu caught up to index %llu in %.1f s (peak RSS: follower %.0f MiB, "
              "leader %.0f MiB)\n",
              static_cast<unsigned long long>(lagging), static_cast<unsigned long long>(target),
              catch_up_s, peak_rss_bytes(cluster.pid(lagging)) / 1048576.0,
              peak_rss_bytes(cluster.pid(leader)) / 1048576.0);

  // It replicates as usual from then on: a new entry reaches it.
  auto probe = client::Session::open(client);
  REQUIRE(probe.ok());
  auto probe_lock = probe.value()->acquire("after/catch-up");
  REQUIRE(probe_lock.ok());
  const uint64_t after = applied_index(cluster, leader);
  REQUIRE(eventually([&] { return applied_index(cluster, lagging) >= after; }));

  // It serves the same state: made leader (a graceful stop of the leader
  // hands over to it), it lists every lock with its value.
  REQUIRE(cluster.terminate(leader) == 0);
  uint64_t new_leader = cluster.wait_for_leader(20s);
  INFO("leader after the hand-over: " << new_leader);
  REQUIRE(new_leader == lagging);
  (void)other;

  const auto listing = Clock::now();
  uint64_t listed = 0;
  std::set<uint64_t> sessions;
  for (const auto& session : filled.sessions) sessions.insert(session->id());
  std::string start_after;
  while (true) {
    auto page = client->list("fill/", start_after, 1000);
    INFO(page.status().to_string());
    REQUIRE(page.ok());
    for (const auto& lock : page.value().locks()) {
      REQUIRE(lock.name() == fill_lock_name(listed));
      REQUIRE(lock.holders_size() == 1);
      REQUIRE(lock.holders(0).value() == fill_value(listed, fill.value_bytes));
      REQUIRE(sessions.contains(lock.holders(0).session_id()));
      ++listed;
    }
    if (page.value().next_start_after().empty()) break;
    start_after = page.value().next_start_after();
  }
  CHECK(listed == kLocks);
  // And it goes on serving: the lock taken before the hand-over is held,
  // and a new grant gets a fresh token.
  auto held = client->describe("after/catch-up");
  REQUIRE(held.ok());
  REQUIRE(held.value().holders_size() == 1);
  CHECK(held.value().holders(0).token() == probe_lock.value()->token());
  auto lock = probe.value()->acquire("after/hand-over");
  REQUIRE(lock.ok());
  CHECK(lock.value()->token() > probe_lock.value()->token());
  std::printf("listed %llu locks from the caught-up node in %.1f s; the whole test took %.0f s\n",
              static_cast<unsigned long long>(listed), seconds_since(listing),
              seconds_since(test_started));
}

}  // namespace fencelock::testing
