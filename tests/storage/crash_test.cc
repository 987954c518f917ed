// Crash safety: a child process appends with sync and acknowledges each
// batch over a pipe; the parent SIGKILLs it at random moments and reopens the
// log after each kill. Every acknowledged entry must be there, the log must
// be contiguous, and the hard state must match. Seeded by Catch::rngSeed().
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include "storage/disk_log.h"
#include "tests/storage/temp_dir.h"

namespace fencelock::storage {
namespace {

using testing::TempDir;

constexpr int kKills = 50;
constexpr auto kTimeLimit = std::chrono::seconds(240);

struct Ack {
  uint64_t lo = 0;
  uint64_t hi = 0;
  uint64_t term = 0;
};

uint64_t get_u64(const unsigned char* in) {
  uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value = (value << 8) | in[i];
  return value;
}

// Reads one acknowledgement; false at end of stream.
bool read_ack(int fd, Ack& ack) {
  unsigned char message[24];
  size_t done = 0;
  while (done < sizeof(message)) {
    ssize_t n = ::read(fd, message + done, sizeof(message) - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  ack = Ack{get_u64(message), get_u64(message + 8), get_u64(message + 16)};
  return true;
}

class Child {
 public:
  // Starts the helper on `dir`; with a non-empty `file_size_limit` the
  // helper's writes fail past that size, and its stdout and stderr go to
  // `stderr_path`.
  Child(const std::string& dir, uint64_t seed, std::string file_size_limit = {},
        const std::string& stderr_path = {}) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    std::string helper = FENCELOCK_CRASH_HELPER;
    std::string seed_arg = std::to_string(seed);
    std::string fd_arg = "3";
    char* argv[] = {helper.data(),
                    const_cast<char*>(dir.c_str()),
                    seed_arg.data(),
                    fd_arg.data(),
                    file_size_limit.empty() ? nullptr : file_size_limit.data(),
                    nullptr};
    int stderr_fd = -1;
    if (!stderr_path.empty()) {
      stderr_fd = ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      REQUIRE(stderr_fd >= 0);
    }
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      // Only async-signal-safe calls between fork and exec.
      ::dup2(fds[1], 3);
      if (stderr_fd >= 0) {
        // FL_CHECK logs through spdlog's default logger, which is stdout.
        ::dup2(stderr_fd, 1);
        ::dup2(stderr_fd, 2);
      }
      ::execv(argv[0], argv);
      ::_exit(127);
    }
    ::close(fds[1]);
    if (stderr_fd >= 0) ::close(stderr_fd);
    read_fd_ = fds[0];
  }
  ~Child() {
    if (pid_ > 0) kill_and_wait();
    if (read_fd_ >= 0) ::close(read_fd_);
  }

  int read_fd() const { return read_fd_; }

  // SIGKILLs the child and returns its wait status.
  int kill_and_wait() {
    ::kill(pid_, SIGKILL);
    return wait();
  }

  // Waits for the child to end and returns its wait status.
  int wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_ = -1;
  int read_fd_ = -1;
};

std::string entry_data(uint64_t index, uint64_t term) {
  std::string data = std::to_string(index) + ":" + std::to_string(term) + ":";
  data.resize(100, 'x');
  return data;
}

TEST_CASE("every acknowledged entry survives SIGKILL at random moments", "[storage][crash]") {
  uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed << "; replay: storage_crash_test --rng-seed " << seed);
  std::mt19937_64 rng(seed);
  auto pick = [&](uint64_t lo, uint64_t hi) {
    return std::uniform_int_distribution<uint64_t>(lo, hi)(rng);
  };
  TempDir dir;
  DiskLogOptions options;
  options.dir = dir.path() / "node";
  options.cluster_id = 1;
  options.node_id = 1;
  options.initial_conf_state.add_voters(1);

  // index -> term of every acknowledged entry still in the log.
  std::map<uint64_t, uint64_t> acked;
  uint64_t last_ack_term = 0;
  uint64_t last_ack_lo = 0;
  uint64_t total_acks = 0;
  uint64_t entries_verified = 0;
  auto started = std::chrono::steady_clock::now();

  for (int kill = 0; kill < kKills; ++kill) {
    INFO("kill " << kill);
    REQUIRE(std::chrono::steady_clock::now() - started < kTimeLimit);
    uint64_t acks_before_kill = pick(0, 4) == 0 ? 0 : pick(1, 80);
    {
      Child child(options.dir.string(), seed + static_cast<uint64_t>(kill));
      Ack ack;
      uint64_t acks = 0;
      auto record = [&](const Ack& a) {
        acked.erase(acked.lower_bound(a.lo), acked.end());  // overwritten suffix
        if (a.hi == 0) return;  // announced overwrite: may or may not be durable
        for (uint64_t i = a.lo; i <= a.hi; ++i) acked[i] = a.term;
        last_ack_term = a.term;
        last_ack_lo = a.lo;
        ++total_acks;
      };
      while (acks < acks_before_kill && read_ack(child.read_fd(), ack)) {
        record(ack);
        if (ack.hi != 0) ++acks;
      }
      REQUIRE(acks == acks_before_kill);  // the child did not die on its own
      std::this_thread::sleep_for(std::chrono::microseconds(pick(0, 5000)));
      int status = child.kill_and_wait();
      REQUIRE(WIFSIGNALED(status));
      // Acknowledgements already in the pipe were sent after their fsync.
      while (read_ack(child.read_fd(), ack)) record(ack);
    }

    auto opened = DiskLog::open(options);
    INFO(opened.status().to_string());
    REQUIRE(opened.ok());
    std::unique_ptr<DiskLog> log = std::move(opened).value();
    uint64_t first = log->first_index();
    uint64_t last = log->last_index();
    if (!acked.empty()) REQUIRE(last >= acked.rbegin()->first);
    // The log is contiguous and every entry is the one written at its index.
    auto entries = log->entries(first, last + 1, UINT64_MAX);
    REQUIRE(entries.size() == last - first + 1);
    uint64_t previous_term = log->term(first - 1);
    for (const raftpb::Entry& entry : entries) {
      REQUIRE(entry.data() == entry_data(entry.index(), entry.term()));
      REQUIRE(entry.term() >= previous_term);
      previous_term = entry.term();
    }
    for (const auto& [index, term] : acked) {
      if (index < first) continue;  // compacted into the snapshot
      INFO("acknowledged entry " << index);
      REQUIRE(log->term(index) == term);
      ++entries_verified;
    }
    // The hard state was written in the same batch as the entries: the
    // helper's commit is the index before the batch's first entry, so the
    // last batch (1..16 entries) is exactly (commit, last].
    raftpb::HardState hard_state = log->initial_state().hard_state;
    if (last_ack_term > 0) {
      REQUIRE(hard_state.term() >= last_ack_term);
      REQUIRE(hard_state.vote() == 1);
      REQUIRE(hard_state.term() == log->term(last));
      REQUIRE(hard_state.commit() + 1 >= last_ack_lo);
      REQUIRE(last - hard_state.commit() >= 1);
      REQUIRE(last - hard_state.commit() <= 16);
    }
    REQUIRE(hard_state.commit() <= last);
    raftpb::Snapshot snapshot = log->snapshot();
    if (snapshot.metadata().index() > 0) {
      REQUIRE(snapshot.data() == "snap:" + std::to_string(snapshot.metadata().index()));
      REQUIRE(first - 1 <= snapshot.metadata().index());
    }
  }
  WARN("crash test: " << kKills << " kills, " << total_acks << " batches acknowledged, "
                      << entries_verified << " acknowledged entries verified after reopening, "
                      << "seed " << seed);
}

TEST_CASE("a write that fails like on a full disk stops the node and loses nothing acknowledged",
          "[storage][crash]") {
  TempDir dir;
  DiskLogOptions options;
  options.dir = dir.path() / "node";
  options.cluster_id = 1;
  options.node_id = 1;
  options.initial_conf_state.add_voters(1);
  std::filesystem::path stderr_path = dir.path() / "stderr";
  std::map<uint64_t, uint64_t> acked;
  {
    // Writes past 256 KiB per file fail with EFBIG, as on a full disk.
    Child child(options.dir.string(), 1, std::to_string(256 * 1024), stderr_path.string());
    Ack ack;
    while (read_ack(child.read_fd(), ack)) {
      for (uint64_t i = ack.lo; i <= ack.hi; ++i) acked[i] = ack.term;
    }
    int status = child.wait();
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGABRT);
  }
  std::ostringstream child_stderr;
  child_stderr << std::ifstream(stderr_path).rdbuf();
  INFO("child stderr: " << child_stderr.str());
  CHECK_THAT(child_stderr.str(), Catch::Contains("cannot persist"));
  CHECK_THAT(child_stderr.str(), Catch::Contains((options.dir / "db").string()));
  REQUIRE(acked.size() > 100);

  auto opened = DiskLog::open(options);
  INFO(opened.status().to_string());
  REQUIRE(opened.ok());
  std::unique_ptr<DiskLog> log = std::move(opened).value();
  for (const auto& [index, term] : acked) {
    if (index < log->first_index()) continue;
    INFO("acknowledged entry " << index);
    REQUIRE(index <= log->last_index());
    REQUIRE(log->term(index) == term);
  }
}

}  // namespace
}  // namespace fencelock::storage
