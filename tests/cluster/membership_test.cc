// Membership change on real clusters: replace a member while `fencelock
// lock` contenders loop, remove the leader, grow 3 to 5 and shrink back.

#include <sys/wait.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <thread>

#include "client/session.h"
#include "tests/cluster/process_cluster.h"

#ifndef FENCELOCK_CLI_PATH
#error "FENCELOCK_CLI_PATH must name the fencelock binary"
#endif

namespace fencelock::testing {
namespace {

using namespace std::chrono_literals;

ProcessClusterOptions three_nodes() {
  ProcessClusterOptions options;
  options.nodes = 3;
  return options;
}

// Member add, start with --join, member promote once caught up. Returns the new id.
uint64_t grow(ProcessCluster& cluster, client::Client& client, uint64_t id = 0) {
  if (id == 0) id = cluster.add_joining_node();
  auto added = client.member_add(id, cluster.peer_endpoint(id), cluster.client_endpoint(id));
  INFO(added.status().to_string());
  REQUIRE(added.ok());
  bool learner = false;
  for (const auto& member : added.value().members()) learner |= member.id() == id && member.learner();
  REQUIRE(learner);
  cluster.start(id);
  Result<clientpb::MemberListResult> promoted = Status(lockpb::UNAVAILABLE, "not tried");
  eventually([&] { return (promoted = client.member_promote(id)).ok(); }, 30s);
  INFO(promoted.status().to_string() << "\n" << cluster.log_tail(id));
  REQUIRE(promoted.ok());
  return id;
}

// The voters and learners the leader lists.
std::pair<std::set<uint64_t>, std::set<uint64_t>> members_of(client::Client& client) {
  auto list = client.member_list();
  REQUIRE(list.ok());
  std::set<uint64_t> voters, learners;
  for (const auto& member : list.value().members()) {
    (member.learner() ? learners : voters).insert(member.id());
  }
  return {voters, learners};
}

// Every running node applied the same configuration: each one's own
// status lists exactly `ids`.
bool everyone_sees(ProcessCluster& cluster, const std::set<uint64_t>& ids) {
  for (uint64_t id : ids) {
    auto status = cluster.status_of(id);
    if (!status) return false;
    std::set<uint64_t> seen;
    for (const auto& member : status->members()) seen.insert(member.id());
    if (seen != ids) return false;
  }
  return true;
}

// Opens a session, takes `lock`, releases it and closes: a write through
// the whole cluster.
Status acquire_and_release(const std::shared_ptr<client::Client>& client, const std::string& lock) {
  auto session = client::Session::open(client, client::SessionOptions{});
  if (!session.ok()) return session.status();
  auto held = session.value()->acquire(lock, client::AcquireOptions{});
  if (!held.ok()) return held.status();
  Status released = held.value()->release();
  session.value()->close();
  return released;
}

TEST_CASE("a member is replaced while fencelock lock contenders loop, with tokens still increasing",
          "[membership]") {
  ProcessCluster cluster(three_nodes());
  cluster.start_all();
  REQUIRE(cluster.wait_for_leader() != 0);
  uint64_t newcomer = cluster.add_joining_node();
  std::string endpoints;
  for (const auto& endpoint : cluster.client_endpoints()) {
    endpoints += (endpoints.empty() ? "" : ",") + endpoint;
  }
  auto tokens_file = cluster.data_dir(1).parent_path() / "tokens";

  // Each contender runs the real CLI in a loop; the command appends the
  // token it was given while it holds the exclusive lock, so the file is in
  // grant order.
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<std::string> failures;
  std::atomic<int> runs{0};
  auto contend = [&] {
    std::string command = std::string(FENCELOCK_CLI_PATH) + " --endpoints " + endpoints +
                          " --timeout 20s lock member/res --wait 60s -- sh -c 'echo "
                          "$FENCELOCK_TOKEN >> " +
                          tokens_file.string() + "' 2>&1";
    auto deadline = std::chrono::steady_clock::now() + 90s;
    while (!stop && std::chrono::steady_clock::now() < deadline) {
      FILE* pipe = popen(command.c_str(), "r");
      std::string output;
      char buffer[1024];
      size_t n;
      while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
      int status = pclose(pipe);
      ++runs;
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::lock_guard lock(mu);
        failures.push_back("exit " + std::to_string(WEXITSTATUS(status)) + ": " + output);
      }
    }
  };
  std::vector<std::thread> contenders;
  for (int i = 0; i < 3; ++i) contenders.emplace_back(contend);
  REQUIRE(eventually([&] { return runs.load() >= 5; }, 30s));

  auto client = cluster.client();
  grow(cluster, *client, newcomer);
  uint64_t leader = cluster.wait_for_leader();
  uint64_t old = leader == 1 ? 2 : 1;  // replace a follower
  auto removed = client->member_remove(old);
  INFO(removed.status().to_string());
  REQUIRE(removed.ok());
  cluster.forget(old);
  int runs_after = runs.load();
  REQUIRE(eventually([&] { return runs.load() >= runs_after + 5; }, 30s));
  stop = true;
  for (auto& thread : contenders) thread.join();

  INFO((failures.empty() ? std::string() : failures.front()));
  CHECK(failures.empty());
  std::ifstream in(tokens_file);
  std::vector<uint64_t> tokens;
  for (uint64_t token; in >> token;) tokens.push_back(token);
  REQUIRE(tokens.size() >= 10);
  for (size_t i = 1; i < tokens.size(); ++i) {
    INFO("token " << i);
    CHECK(tokens[i] > tokens[i - 1]);
  }
  std::set<uint64_t> expected{1, 2, 3, newcomer};
  expected.erase(old);
  auto [voters, learners] = members_of(*client);
  CHECK(voters == expected);
  CHECK(learners.empty());
  CHECK(eventually([&] { return everyone_sees(cluster, expected); }));
}

TEST_CASE("removing the leader hands leadership over first, and the removed node stops serving",
          "[membership]") {
  ProcessCluster cluster(three_nodes());
  cluster.start_all();
  uint64_t leader = cluster.wait_for_leader();
  REQUIRE(leader != 0);
  auto client = cluster.client();
  REQUIRE(acquire_and_release(client, "before").ok());
  auto removed = client->member_remove(leader);
  INFO(removed.status().to_string());
  REQUIRE(removed.ok());
  uint64_t next = removed.value().leader_id();
  CHECK(next != 0);
  CHECK(next != leader);
  std::set<uint64_t> rest{1, 2, 3};
  rest.erase(leader);
  auto [voters, learners] = members_of(*client);
  CHECK(voters == rest);
  // The removed node hears of its removal and refuses clients.
  CHECK(eventually([&] {
    auto status = cluster.status_of(leader);
    if (!status) return false;
    for (const auto& member : status->members()) {
      if (member.id() == leader) return member.role() == "removed";
    }
    return false;
  }));
  client::ClientOptions options;
  options.endpoints = {cluster.client_endpoint(leader)};
  options.request_timeout = 1s;
  auto only_removed = client::Client::connect(options).value();
  CHECK(only_removed->member_list().code() != lockpb::OK);
  cluster.forget(leader);
  REQUIRE(acquire_and_release(client, "after").ok());
  // Two voters: both are needed. Stop one and the other cannot commit.
  CHECK(everyone_sees(cluster, rest));
}

TEST_CASE("a cluster grows from 3 to 5 voters, survives two failures, and shrinks back to 3",
          "[membership]") {
  ProcessClusterOptions options = three_nodes();
  // Newcomers then catch up from a snapshot, not from the log.
  options.snapshot_every = 50;
  options.keep_log_entries = 10;
  ProcessCluster cluster(options);
  cluster.start_all();
  REQUIRE(cluster.wait_for_leader() != 0);
  auto client = cluster.client();
  // Enough entries that the newcomers need a snapshot.
  for (int i = 0; i < 40; ++i) REQUIRE(acquire_and_release(client, "warm/" + std::to_string(i)).ok());
  uint64_t four = grow(cluster, *client);
  uint64_t five = grow(cluster, *client);
  auto [voters, learners] = members_of(*client);
  REQUIRE(voters == std::set<uint64_t>{1, 2, 3, four, five});
  REQUIRE(eventually([&] { return everyone_sees(cluster, voters); }));

  // Five voters tolerate two failures: stop two founding members.
  uint64_t leader = cluster.wait_for_leader();
  std::vector<uint64_t> stopped;
  for (uint64_t id : {1, 2, 3}) {
    if (id != leader && stopped.size() < 2) stopped.push_back(id);
  }
  for (uint64_t id : stopped) cluster.kill(id);
  client::ClientOptions survivor_options;
  survivor_options.endpoints = {cluster.client_endpoint(leader), cluster.client_endpoint(four),
                                cluster.client_endpoint(five)};
  auto survivors = client::Client::connect(survivor_options);
  REQUIRE(survivors.ok());
  CHECK(acquire_and_release(survivors.value(), "two-down").ok());
  // A restarted joiner recovers its configuration from its own log.
  cluster.terminate(four);
  cluster.start(four);
  CHECK(acquire_and_release(survivors.value(), "joiner-restarted").ok());
  for (uint64_t id : stopped) cluster.start(id);

  // Shrink back.
  for (uint64_t id : {four, five}) {
    auto removed = client->member_remove(id);
    INFO(removed.status().to_string());
    REQUIRE(removed.ok());
    cluster.forget(id);
  }
  std::set<uint64_t> founders{1, 2, 3};
  REQUIRE(members_of(*client).first == founders);
  REQUIRE(eventually([&] { return everyone_sees(cluster, founders); }, 15s));
  // Three voters again: one failure is tolerated.
  uint64_t follower = cluster.wait_for_leader() == 1 ? 2 : 1;
  cluster.kill(follower);
  CHECK(acquire_and_release(client, "shrunk").ok());
}

}  // namespace
}  // namespace fencelock::testing
