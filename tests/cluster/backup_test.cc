// Backup and restore against real processes (docs/operations.md "Backup and
// restore"): `fencelock snapshot save` of a running 3-node cluster, then a
// new 3-node cluster started from the file with `fencelockd --restore`. It
// has the backup's locks, holders, queues and values; a session reconnects
// and keeps its lock; and its tokens exceed every token the old cluster
// issued, those after the backup included. Bad restore inputs exit 2.

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <fstream>
#include <future>
#include <random>
#include <sstream>

#include "client/session.h"
#include "storage/backup_file.h"
#include "tests/cluster/process_cluster.h"
#include "tests/run_command.h"

#ifndef FENCELOCK_CLI_PATH
#error "FENCELOCK_CLI_PATH must name the fencelock binary"
#endif

namespace fencelock::testing {
namespace {

using namespace std::chrono_literals;
using client::AcquireOptions;
using client::Session;
using client::SessionOptions;

constexpr uint64_t kFirstTokenOfEpoch1 = uint64_t{1} << 48;
constexpr int kBulkLocks = 2500;

struct TempDir {
  TempDir() {
    std::random_device random;
    path =
        std::filesystem::temp_directory_path() / ("fencelock-backup-" + std::to_string(random()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::filesystem::path path;
};

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& part : parts) out += (out.empty() ? "" : ",") + part;
  return out;
}

std::shared_ptr<Session> open_session(const std::shared_ptr<client::Client>& client,
                                      const std::string& name) {
  SessionOptions options;
  options.ttl = 30s;  // outlasts stopping one cluster and starting the other
  options.client_name = name;
  auto session = Session::open(client, options);
  REQUIRE(session.ok());
  return session.value();
}

struct Outcome {
  int exit_code = -1;
  std::string stderr_text;
};

// Runs fencelockd with `args`; kills it if still running after `timeout`.
Outcome run_daemon(std::vector<std::string> args, std::chrono::milliseconds timeout = 10s) {
  args.insert(args.begin(), FENCELOCKD_PATH);
  int pipe_fds[2];
  REQUIRE(pipe(pipe_fds) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pipe_fds[1], 2);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(pipe_fds[1]);
  int status = 0;
  bool exited = eventually([&] { return waitpid(pid, &status, WNOHANG) == pid; }, timeout);
  if (!exited) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  Outcome outcome;
  char buffer[4096];
  ssize_t n;
  while ((n = read(pipe_fds[0], buffer, sizeof buffer)) > 0) outcome.stderr_text.append(buffer, n);
  close(pipe_fds[0]);
  outcome.exit_code = exited && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return outcome;
}

std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

}  // namespace

TEST_CASE("a cluster restored from a backup has its locks, sessions and queues, and higher tokens",
          "[cluster][backup]") {
  TempDir tmp;
  const auto backup_file = tmp.path / "cluster.flbackup";
  ProcessCluster cluster(ProcessClusterOptions{});
  cluster.start_all();
  REQUIRE(cluster.wait_for_leader() != 0);
  auto client = cluster.client();

  // Before the backup: a holder with a value, a shared holder, a waiter.
  auto holder = open_session(client, "holder");
  auto reader = open_session(client, "reader");
  auto waiter = open_session(client, "waiter");
  AcquireOptions exclusive;
  exclusive.value = "held by holder";
  auto lock_a = holder->acquire("jobs/a", exclusive);
  REQUIRE(lock_a.ok());
  const uint64_t token_a = lock_a.value()->token();
  AcquireOptions shared;
  shared.mode = lockpb::SHARED;
  shared.value = "reader's value";
  auto lock_b = reader->acquire("jobs/b", shared);
  REQUIRE(lock_b.ok());
  auto waited = std::make_shared<std::promise<Result<lockpb::Sequencer>>>();
  AcquireOptions wait_long;
  wait_long.wait = 120s;
  wait_long.value = "waiter's value";
  waiter->acquire_async("jobs/a", wait_long,
                        [waited](Result<lockpb::Sequencer> result) { waited->set_value(result); });
  REQUIRE(eventually([&] {
    auto info = client->describe("jobs/a");
    return info.ok() && info.value().waiters_size() == 1;
  }));
  // Enough locks with values that the snapshot takes several 1 MiB chunks.
  auto bulk = open_session(client, "bulk");
  auto bulk_granted = std::make_shared<std::atomic<int>>(0);
  AcquireOptions with_value;
  with_value.value = std::string(1000, 'v');
  for (int i = 0; i < kBulkLocks; ++i) {
    bulk->acquire_async("bulk/" + std::to_string(i), with_value,
                        [bulk_granted](Result<lockpb::Sequencer> result) {
                          if (result.ok()) ++*bulk_granted;
                        });
  }
  REQUIRE(eventually([&] { return bulk_granted->load() == kBulkLocks; }, 60s));

  // The backup, by the real command line.
  auto saved =
      run_command(std::string(FENCELOCK_CLI_PATH) + " --endpoints " +
                  join(cluster.client_endpoints()) + " snapshot save " + backup_file.string());
  INFO(saved.output);
  REQUIRE(saved.exit_code == 0);
  CHECK_THAT(saved.output, Catch::Contains("saved snapshot of cluster fencelock") &&
                               Catch::Contains("index") && Catch::Contains("sha256"));
  auto backup = storage::read_backup_file(backup_file);
  REQUIRE(backup.ok());
  CHECK(backup.value().header.cluster_id == "fencelock");
  CHECK(backup.value().header.index > 0);
  CHECK(backup.value().header.term > 0);
  CHECK(backup.value().header.data_bytes > 2 * (1u << 20));
  CHECK_THAT(saved.output, Catch::Contains(storage::to_hex(backup.value().header.data_sha256)));
  CHECK_THAT(saved.output, Catch::Contains(std::to_string(backup.value().header.data_bytes)));
  CHECK_FALSE(std::filesystem::exists(backup_file.string() + ".tmp"));

  // After the backup the old cluster goes on: a session the backup does not
  // know, and tokens it never sees.
  uint64_t max_old_token = token_a;
  auto later = open_session(client, "later");
  for (int i = 0; i < 20; ++i) {
    auto lock = later->acquire("after/x");
    REQUIRE(lock.ok());
    max_old_token = std::max(max_old_token, lock.value()->token());
    REQUIRE(lock.value()->release().ok());
  }
  CHECK(max_old_token < kFirstTokenOfEpoch1);

  // Stop the old cluster; start a new one (fresh data directories, another
  // cluster id) on the same addresses from the backup.
  for (uint64_t id : cluster.ids()) cluster.terminate(id);
  for (uint64_t id : cluster.ids()) std::filesystem::remove_all(cluster.data_dir(id) / "data");
  cluster.set_extra_flags({"--restore", backup_file.string(), "--cluster-id", "restored"});
  cluster.start_all();
  REQUIRE(cluster.wait_for_leader() != 0);
  const auto restarted = client::Clock::now();
  for (uint64_t id : cluster.ids()) {
    CHECK_THAT(cluster.log_tail(id, 200), Catch::Contains("restored " + backup_file.string()));
  }

  // The locks, holders, queues and values of the backup; nothing after it.
  auto a = client->describe("jobs/a");
  REQUIRE(a.ok());
  REQUIRE(a.value().holders_size() == 1);
  CHECK(a.value().holders(0).session_id() == holder->id());
  CHECK(a.value().holders(0).token() == token_a);
  CHECK(a.value().holders(0).value() == "held by holder");
  REQUIRE(a.value().waiters_size() == 1);
  CHECK(a.value().waiters(0).session_id() == waiter->id());
  auto b = client->describe("jobs/b");
  REQUIRE(b.ok());
  REQUIRE(b.value().holders_size() == 1);
  CHECK(b.value().holders(0).session_id() == reader->id());
  CHECK(b.value().holders(0).mode() == lockpb::SHARED);
  CHECK(b.value().holders(0).value() == "reader's value");
  CHECK(client->describe("after/x").code() == lockpb::NOT_FOUND);
  size_t bulk_locks = 0;
  std::string after;
  do {
    auto page = client->list("bulk/", after, 1000);
    REQUIRE(page.ok());
    for (const auto& lock : page.value().locks()) {
      CHECK(lock.holders(0).session_id() == bulk->id());
      CHECK(lock.holders(0).value() == with_value.value);
      ++bulk_locks;
    }
    after = page.value().next_start_after();
  } while (!after.empty());
  CHECK(bulk_locks == kBulkLocks);
  auto sessions = client->list_sessions();
  REQUIRE(sessions.ok());
  CHECK(sessions.value().sessions_size() == 4);

  // The sessions reconnect: keepalives to the new cluster are acknowledged
  // (a full TTL from its leader taking office), and the holder still holds.
  REQUIRE(eventually([&] { return holder->safe_until() > restarted + 15s; }, 20s));
  CHECK_FALSE(holder->lost());
  CHECK_FALSE(waiter->lost());
  // A session opened after the backup is unknown to the new cluster, which
  // says so: it never shares an id with a session of the new cluster.
  REQUIRE(eventually([&] { return later->lost(); }, 20s));
  auto current = client->check_sequencer(lock_a.value()->sequencer());
  REQUIRE(current.ok());
  CHECK(current.value());

  // The first token of the new cluster exceeds every token of the old one:
  // the holder's release hands jobs/a to the waiter, whose Acquire the
  // client library re-sent to the new cluster.
  REQUIRE(lock_a.value()->release().ok());
  auto granted = waited->get_future();
  REQUIRE(granted.wait_for(20s) == std::future_status::ready);
  auto grant = granted.get();
  REQUIRE(grant.ok());
  CHECK(grant.value().token() == kFirstTokenOfEpoch1);
  CHECK(grant.value().token() > max_old_token);
  auto fresh = open_session(client, "fresh");
  CHECK(fresh->id() > kFirstTokenOfEpoch1);  // the log goes on at index 2^48
  CHECK(fresh->id() > later->id());
  auto lock = fresh->acquire("after/x");
  REQUIRE(lock.ok());
  CHECK(lock.value()->token() == kFirstTokenOfEpoch1 + 1);

  // A backup of the restored cluster restores into the epoch after it.
  auto again = run_command(std::string(FENCELOCK_CLI_PATH) + " --endpoints " +
                           join(cluster.client_endpoints()) + " --output json snapshot save " +
                           (tmp.path / "again").string());
  INFO(again.output);
  CHECK(again.exit_code == 0);
  CHECK_THAT(again.output, Catch::Contains("\"cluster_id\": \"restored\""));
}

TEST_CASE("fencelockd --restore refuses bad inputs with one line and exit code 2",
          "[cluster][backup]") {
  TempDir tmp;
  const auto good = tmp.path / "good";
  storage::BackupHeader header;
  header.index = 10;
  header.term = 2;
  header.cluster_id = "fencelock";
  // A well-formed file whose data is no state machine snapshot.
  REQUIRE(storage::write_backup_file(good, header, "not a state machine snapshot").ok());
  const std::string bytes = read_bytes(good);

  auto start = [&](const std::filesystem::path& file, const std::filesystem::path& data_dir,
                   std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--id",          "1",
                                     "--peers",       "1=127.0.0.1:" + std::to_string(free_port()),
                                     "--client-addr", "127.0.0.1:" + std::to_string(free_port()),
                                     "--data-dir",    data_dir.string()};
    if (!file.empty()) {
      args.push_back("--restore");
      args.push_back(file.string());
    }
    for (auto& flag : extra) args.push_back(flag);
    return run_daemon(args);
  };
  auto check_refused = [](const Outcome& outcome, const std::string& must_contain) {
    INFO(outcome.stderr_text);
    CHECK(outcome.exit_code == 2);
    CHECK_THAT(outcome.stderr_text,
               Catch::StartsWith("fencelockd: ") && Catch::Contains(must_contain));
    CHECK(std::count(outcome.stderr_text.begin(), outcome.stderr_text.end(), '\n') == 1);
  };
  const auto data = tmp.path / "data";
  auto nothing_written = [&] {
    CHECK((!std::filesystem::exists(data) || std::filesystem::is_empty(data)));
  };

  SECTION("a truncated file") {
    write_bytes(tmp.path / "cut", bytes.substr(0, bytes.size() - 5));
    check_refused(start(tmp.path / "cut", data), "truncated");
    nothing_written();
  }
  SECTION("a flipped byte") {
    std::string flipped = bytes;
    flipped[flipped.size() - 3] ^= 0x10;
    write_bytes(tmp.path / "flipped", flipped);
    check_refused(start(tmp.path / "flipped", data), "checksum mismatch");
    nothing_written();
  }
  SECTION("not a backup") {
    write_bytes(tmp.path / "other", "FLSNAP01 and so on");
    check_refused(start(tmp.path / "other", data), "not a fencelock backup");
    nothing_written();
  }
  SECTION("a missing file") {
    check_refused(start(tmp.path / "missing", data), "missing");
    nothing_written();
  }
  SECTION("a sound file whose data is no state") {
    check_refused(start(good, data), "does not restore: damaged snapshot");
    nothing_written();
  }
  SECTION("a data directory that is not empty") {
    std::filesystem::create_directories(data);
    write_bytes(data / "something", "x");
    check_refused(start(good, data), "--restore needs an empty data directory");
    CHECK(read_bytes(data / "something") == "x");
  }
  SECTION("an unfinished restore is never started as it is") {
    std::filesystem::create_directories(data);
    write_bytes(data / "RESTORING", "");
    check_refused(start("", data), "holds an unfinished restore");
  }
  SECTION("--restore-token-floor without --restore") {
    check_refused(start("", data, {"--restore-token-floor", "5"}), "--restore");
  }
}

}  // namespace fencelock::testing
