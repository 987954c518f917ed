// The fencelock command line against a real 3-node cluster.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>

#include "client/session.h"
#include "tests/cluster/process_cluster.h"
#include "tests/cluster/tcp_proxy.h"
#include "tests/run_command.h"

#ifndef FENCELOCK_CLI_PATH
#error "FENCELOCK_CLI_PATH must name the fencelock binary"
#endif

namespace fencelock::testing {
namespace {

using namespace std::chrono_literals;

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& part : parts) out += (out.empty() ? "" : ",") + part;
  return out;
}

using Run = fencelock::testing::CommandRun;

// Runs `fencelock --endpoints E ARGS` through the shell; stdout and stderr together.
Run cli(const std::vector<std::string>& endpoints, const std::string& args) {
  return fencelock::testing::run_command(std::string(FENCELOCK_CLI_PATH) + " --endpoints " +
                                         join(endpoints) + " " + args);
}

// Starts `fencelock ... ARGS` in the background; returns its pid.
pid_t cli_background(const std::vector<std::string>& endpoints, const std::string& args,
                     const std::string& log) {
  std::string command = std::string(FENCELOCK_CLI_PATH) + " --endpoints " + join(endpoints) + " " + args +
                        " >>" + log + " 2>&1";
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

int wait_exit(pid_t pid, std::chrono::milliseconds timeout) {
  int status = 0;
  if (!eventually([&] { return waitpid(pid, &status, WNOHANG) == pid; }, timeout)) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

struct Fixture {
  Fixture() : cluster(ProcessClusterOptions{}) {
    cluster.start_all();
    REQUIRE(cluster.wait_for_leader() != 0);
    dir = cluster.data_dir(1).parent_path();
  }
  ProcessCluster cluster;
  std::filesystem::path dir;
};

}  // namespace

TEST_CASE("two fencelock lock contenders run one after the other, the second with a larger token",
          "[cli]") {
  Fixture f;
  auto file = (f.dir / "order.txt").string();
  std::string body = "-- sh -c 'echo start $FENCELOCK_LOCK $FENCELOCK_TOKEN >> " + file +
                     "; sleep 0.5; echo end $FENCELOCK_TOKEN >> " + file + "'";
  pid_t a = cli_background(f.cluster.client_endpoints(), "lock jobs/serial --wait 30s " + body, "/dev/null");
  pid_t b = cli_background(f.cluster.client_endpoints(), "lock jobs/serial --wait 30s " + body, "/dev/null");
  CHECK(wait_exit(a, 30s) == 0);
  CHECK(wait_exit(b, 30s) == 0);
  std::istringstream lines(read_file(file));
  std::string word1, lock1, word2, word3, lock3, word4;
  uint64_t t1 = 0, t2 = 0, t3 = 0, t4 = 0;
  lines >> word1 >> lock1 >> t1 >> word2 >> t2 >> word3 >> lock3 >> t3 >> word4 >> t4;
  INFO(read_file(file));
  CHECK(word1 == "start");
  CHECK(lock1 == "jobs/serial");
  CHECK(word2 == "end");
  CHECK(t2 == t1);  // the first ended before the second started
  CHECK(word3 == "start");
  CHECK(word4 == "end");
  CHECK(t3 > t1);
}

TEST_CASE("fencelock lock --no-wait on a held lock fails at once with exit code 75", "[cli]") {
  Fixture f;
  auto session = client::Session::open(f.cluster.client()).value();
  auto held = session->acquire("jobs/busy");
  REQUIRE(held.ok());
  auto started = std::chrono::steady_clock::now();
  auto run = cli(f.cluster.client_endpoints(), "lock --no-wait jobs/busy -- true");
  CHECK(std::chrono::steady_clock::now() - started < 2s);
  INFO(run.output);
  CHECK(run.exit_code == 75);
  CHECK_THAT(run.output, Catch::Contains("is held"));
}

TEST_CASE("a fencelock lock cut off from the cluster has its command killed before anyone else's starts",
          "[cli]") {
  Fixture f;
  // The proxy fronts the leader only: a follower would answer NOT_LEADER
  // with the leader's real address, and the client would go around it.
  TcpProxy proxy({f.cluster.client_endpoint(f.cluster.wait_for_leader())});
  auto pid_file = (f.dir / "first.pid").string();
  auto log = (f.dir / "first.log").string();
  pid_t first = cli_background(proxy.endpoints(),
                               "lock jobs/cut --ttl 2s -- sh -c 'echo $$ > " + pid_file + "; exec sleep 60'", log);
  REQUIRE(eventually([&] { return std::filesystem::exists(pid_file) && !read_file(pid_file).empty(); }));
  pid_t child = std::stoi(read_file(pid_file));

  proxy.cut();
  // The second contender reaches the cluster directly; its command checks
  // whether the first command is still alive the moment it starts.
  auto verdict = (f.dir / "verdict.txt").string();
  auto run = cli(f.cluster.client_endpoints(),
                 "lock jobs/cut --wait 30s -- sh -c 'if kill -0 " + std::to_string(child) +
                     " 2>/dev/null; then echo ALIVE; else echo DEAD; fi > " + verdict + "'");
  INFO(run.output << read_file(log));
  CHECK(run.exit_code == 0);
  CHECK(read_file(verdict) == "DEAD\n");
  CHECK(wait_exit(first, 10s) == 76);
  CHECK_THAT(read_file(log), Catch::Contains("lost"));
}

TEST_CASE("the library survives a leader kill mid-acquire without a duplicate grant", "[cli]") {
  Fixture f;
  auto client = f.cluster.client();
  auto holder = client::Session::open(client).value();
  auto first = holder->acquire("jobs/failover");
  REQUIRE(first.ok());
  auto waiter = client::Session::open(client).value();
  // Shared with the callback: a failed REQUIRE below must not leave it a
  // dangling promise to fill.
  auto promise = std::make_shared<std::promise<Result<lockpb::Sequencer>>>();
  auto future = promise->get_future();
  client::AcquireOptions wait;
  wait.wait = 20s;
  waiter->acquire_async("jobs/failover", wait,
                        [promise](Result<lockpb::Sequencer> result) { promise->set_value(std::move(result)); });
  // Kill the leader while the acquire waits in the queue, then release.
  uint64_t leader = f.cluster.wait_for_leader();
  f.cluster.kill(leader);
  Status released = first.value()->release();
  INFO(released.to_string());
  REQUIRE(released.ok());
  auto granted = future.get();
  INFO(granted.status().to_string());
  REQUIRE(granted.ok());
  CHECK(granted.value().token() > first.value()->token());
  auto info = client->describe("jobs/failover");
  REQUIRE(info.ok());
  REQUIRE(info.value().holders_size() == 1);
  CHECK(info.value().holders(0).session_id() == waiter->id());
  CHECK(info.value().holders(0).token() == granted.value().token());
  CHECK(info.value().waiters_size() == 0);
}

TEST_CASE("one client keeps thousands of requests in flight", "[cli]") {
  Fixture f;
  auto client = f.cluster.client();
  constexpr int kSessions = 1000;
  // 1,000 OpenSession requests at once, then 1,000 acquires (one per
  // session) and 2,000 reads at once, all on the client's one connection.
  std::mutex mutex;
  std::vector<uint64_t> session_ids;
  std::atomic<int> failed{0};
  for (int i = 0; i < kSessions; ++i) {
    clientpb::Request request;
    request.mutable_open_session()->set_ttl_ms(30000);
    client->call_async(request, [&](clientpb::Response response) {
      if (response.code() != lockpb::OK) {
        ++failed;
        return;
      }
      std::lock_guard guard(mutex);
      session_ids.push_back(response.session_opened().session_id());
    });
  }
  REQUIRE(eventually([&] { std::lock_guard guard(mutex); return session_ids.size() + failed == kSessions; }, 30s));
  REQUIRE(failed == 0);
  std::atomic<int> granted{0}, read{0};
  for (uint64_t session : session_ids) {
    clientpb::Request request;
    request.mutable_acquire()->mutable_key()->set_session_id(session);
    request.mutable_acquire()->mutable_key()->set_sequence(1);
    request.mutable_acquire()->set_lock("inflight/" + std::to_string(session));
    client->call_async(request, [&](clientpb::Response response) {
      (response.code() == lockpb::OK && response.has_granted() ? granted : failed)++;
    });
  }
  for (int i = 0; i < 2000; ++i) {
    clientpb::Request request;
    request.mutable_list_sessions()->set_limit(1);
    client->call_async(request, [&](clientpb::Response response) {
      (response.code() == lockpb::OK ? read : failed)++;
    });
  }
  REQUIRE(eventually([&] { return granted + read + failed == 3000; }, 30s));
  CHECK(failed == 0);
  CHECK(granted == kSessions);
  CHECK(client->list("inflight/", "", 1000).value().locks_size() == kSessions);
}

TEST_CASE("status, holder, list, check and sessions print what the cluster holds", "[cli]") {
  Fixture f;
  auto endpoints = f.cluster.client_endpoints();
  auto session = client::Session::open(f.cluster.client()).value();
  auto lock = session->acquire("report/a");
  REQUIRE(lock.ok());
  std::string token = std::to_string(lock.value()->token());
  std::string session_id = std::to_string(session->id());

  auto status = cli(endpoints, "status");
  CHECK(status.exit_code == 0);
  CHECK_THAT(status.output, Catch::Contains("leader") && Catch::Contains("follower"));
  auto holder = cli(endpoints, "holder report/a");
  CHECK(holder.exit_code == 0);
  CHECK_THAT(holder.output, Catch::Contains(token) && Catch::Contains(session_id));
  auto list = cli(endpoints, "--output json list report/");
  CHECK(list.exit_code == 0);
  CHECK_THAT(list.output, Catch::Contains("\"report/a\""));
  CHECK(cli(endpoints, "check report/a " + token).exit_code == 0);
  CHECK(cli(endpoints, "check report/a " + std::to_string(lock.value()->token() + 100)).exit_code == 1);
  auto sessions = cli(endpoints, "sessions");
  CHECK_THAT(sessions.output, Catch::Contains(session_id));
  auto released = cli(endpoints, "release --force report/a");
  CHECK(released.exit_code == 0);
  CHECK(cli(endpoints, "holder report/a").exit_code == 1);
  auto bad = cli(endpoints, "lock --ttl 10q x -- true");
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.output, Catch::Contains("bad duration"));
  auto unreachable = cli({"127.0.0.1:1"}, "--timeout 1s holder x");
  CHECK(unreachable.exit_code == 69);
}

}  // namespace fencelock::testing
