// fencelock-bench: fencelock, etcd and ZooKeeper side by side, each with its
// standard lock recipe (docs/benchmark.md).
//
//   fencelock-bench --system fencelock|etcd|zookeeper --endpoints H:P,...
//                   [--server-pids P,...] --workload uncontended|contended|keepalive|failover
//                   [--clients 1,16,64,256] [--duration 10s] [--warmup 2s]
//                   [--sessions 10000] [--kill-after 2s] [--output text|json]
//
// One run per client count. Each run opens its sessions, lets them loop
// acquire+release for the warm-up, then measures for the duration: pairs per
// second, acquire latency percentiles from a log-bucketed histogram, errors,
// the servers' CPU seconds and peak RSS (from /proc, --server-pids in
// --endpoints order) and this process's own CPU seconds.

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include "cli/bench/driver.h"
#include "cli/bench/histogram.h"
#include "cli/bench/proc_stats.h"
#include "common/logging.h"
#include "common/text.h"
#include "net/asio.h"

namespace fencelock::bench {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// The timer thread shared by the runner and the drivers.
class AsioScheduler : public Scheduler {
 public:
  AsioScheduler() : work_(boost::asio::make_work_guard(io_)), thread_([this] { io_.run(); }) {}
  ~AsioScheduler() override {
    work_.reset();
    io_.stop();
    thread_.join();
  }
  void after(std::chrono::milliseconds delay, std::function<void()> fn) override {
    auto timer = std::make_shared<boost::asio::steady_timer>(io_, delay);
    timer->async_wait([timer, fn = std::move(fn)](const boost::system::error_code& ec) {
      if (!ec) fn();
    });
  }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::thread thread_;
};

struct Config {
  std::string system;
  std::string workload;
  std::vector<std::string> endpoints;
  std::string tls_dir;  // fencelock: ca.crt, admin.crt, admin.key (scripts/tls-certs.sh)
  std::vector<pid_t> server_pids;
  std::chrono::milliseconds warmup{2000};
  std::chrono::milliseconds duration{10000};
  std::chrono::milliseconds kill_after{2000};
  std::chrono::milliseconds session_ttl{10000};
  int sessions = 10000;
  int sessions_per_connection = 16;
  bool json = false;
  bool progress = false;
  std::string lock_prefix = "bench";
};

struct Result {
  int clients = 0;
  double seconds = 0;
  uint64_t pairs = 0;
  uint64_t errors = 0;
  std::string first_error;
  LogHistogram latency_us;
  double server_cpu_s = 0;
  double leader_cpu_s = 0;
  uint64_t server_peak_rss_kb = 0;
  uint64_t leader_peak_rss_kb = 0;
  double client_cpu_s = 0;
  int leader = -1;
  double open_s = 0;
  // failover
  double recovery_ms = -1;
  double full_rate_ms = -1;
  double max_gap_ms = -1;
  std::string failure;  // the run could not be done at all
};

// Everything the completions of one run share; guarded by `mutex`.
struct RunState {
  std::mutex mutex;
  bool measuring = false;
  bool record_times = false;
  LogHistogram latency_us;
  LogHistogram interval_us;
  uint64_t pairs = 0;
  uint64_t interval_pairs = 0;
  uint64_t errors = 0;
  uint64_t interval_errors = 0;
  std::string first_error;
  std::vector<Clock::time_point> acquired_at;  // failover: every successful acquire
  std::atomic<bool> stop{false};
  std::atomic<int> running{0};
  std::condition_variable idle;
};

class Runner {
 public:
  Runner(Config config, Scheduler& scheduler) : config_(std::move(config)), scheduler_(scheduler) {}

  Result run(int clients) {
    Result result;
    result.clients = clients;
    DriverOptions options;
    options.endpoints = config_.endpoints;
    options.sessions_per_connection = config_.sessions_per_connection;
    options.session_ttl = config_.session_ttl;
    options.scheduler = &scheduler_;
    options.keepalive_only = config_.workload == "keepalive";
    if (!config_.tls_dir.empty()) {
      options.tls_ca = config_.tls_dir + "/ca.crt";
      options.tls_cert = config_.tls_dir + "/admin.crt";
      options.tls_key = config_.tls_dir + "/admin.key";
    }
    driver_ = make_driver(options, result.failure);
    if (!driver_) return result;
    state_ = std::make_shared<RunState>();
    lock_nonce_ = std::to_string(getpid()) + "-" + std::to_string(run_counter_++);

    auto opened = Clock::now();
    int sessions = config_.workload == "keepalive" ? config_.sessions : clients;
    if (config_.workload == "keepalive") result.clients = sessions;
    Outcome open = driver_->open_sessions(sessions, std::chrono::seconds(120));
    result.open_s = seconds_between(opened, Clock::now());
    if (!open.ok()) {
      result.failure = open.error;
      driver_->close_sessions();
      return result;
    }
    bool loops = config_.workload != "keepalive";
    if (loops) {
      for (int i = 0; i < clients; ++i) start_loop(i);
    }
    sleep_with_progress(config_.warmup, clients, "warm-up");

    ProcSampler sampler(config_.server_pids);
    if (config_.workload == "keepalive" || config_.workload == "failover") {
      result.leader = driver_->leader_index();
    }
    {
      std::lock_guard lock(state_->mutex);
      state_->measuring = true;
      state_->record_times = config_.workload == "failover";
      state_->latency_us.reset();
      state_->pairs = state_->errors = 0;
    }
    sampler.begin();
    double cpu_before = self_cpu_seconds();
    auto begin = Clock::now();
    auto end = begin + config_.duration;
    std::optional<Clock::time_point> killed_at;
    auto next_tick = begin + 1s;
    while (Clock::now() < end) {
      auto wake = std::min(end, next_tick);
      if (config_.workload == "failover" && !killed_at) wake = std::min(wake, begin + config_.kill_after);
      std::this_thread::sleep_until(wake);
      if (config_.workload == "failover" && !killed_at && Clock::now() >= begin + config_.kill_after) {
        killed_at = kill_leader(result);
        if (!killed_at) break;
      }
      if (Clock::now() >= next_tick) {
        sampler.sample();
        progress_line(clients, seconds_between(begin, Clock::now()));
        next_tick += 1s;
      }
    }
    auto finished = Clock::now();
    sampler.sample();
    result.client_cpu_s = self_cpu_seconds() - cpu_before;
    result.seconds = seconds_between(begin, finished);
    std::vector<Clock::time_point> acquired_at;
    {
      std::lock_guard lock(state_->mutex);
      state_->measuring = false;
      result.pairs = state_->pairs;
      result.errors = state_->errors;
      result.first_error = state_->first_error;
      result.latency_us = state_->latency_us;
      acquired_at = std::move(state_->acquired_at);
    }
    if (config_.workload == "keepalive") result.errors = static_cast<uint64_t>(driver_->lost_sessions());
    result.server_cpu_s = sampler.total_cpu_seconds();
    result.server_peak_rss_kb = sampler.max_peak_rss_kb();
    if (result.leader >= 0 && static_cast<size_t>(result.leader) < config_.server_pids.size()) {
      pid_t leader = config_.server_pids[static_cast<size_t>(result.leader)];
      result.leader_cpu_s = sampler.cpu_seconds(leader);
      result.leader_peak_rss_kb = sampler.peak_rss_kb(leader);
    }
    if (killed_at) failover_figures(result, *killed_at, begin, finished, acquired_at);
    if (config_.progress) std::fprintf(stderr, "\r\033[K");

    state_->stop = true;
    {
      // Loops end at their next completion; waiters in a queue end when
      // their sessions close.
      std::unique_lock lock(state_->mutex);
      state_->idle.wait_for(lock, 3s, [&] { return state_->running.load() == 0; });
    }
    driver_->close_sessions();
    {
      std::unique_lock lock(state_->mutex);
      state_->idle.wait_for(lock, 5s, [&] { return state_->running.load() == 0; });
    }
    if (state_->running.load() == 0) driver_.reset();
    else driver_.release();  // a completion may still come; leak rather than crash
    return result;
  }

 private:
  std::unique_ptr<Driver> make_driver(const DriverOptions& options, std::string& failure) {
    if (config_.system == "fencelock") return make_fencelock_driver(options);
#ifdef FENCELOCK_BENCH_ETCD
    if (config_.system == "etcd") return make_etcd_driver(options);
#endif
#ifdef FENCELOCK_BENCH_ZOOKEEPER
    if (config_.system == "zookeeper") return make_zookeeper_driver(options);
#endif
    failure = "system '" + config_.system + "' is not built into this fencelock-bench";
    return nullptr;
  }

  std::string lock_name(int client) const {
    if (config_.workload == "contended") return config_.lock_prefix + "-c-" + lock_nonce_;
    return config_.lock_prefix + "-u-" + lock_nonce_ + "-" + std::to_string(client);
  }

  void start_loop(int client) {
    state_->running.fetch_add(1);
    acquire(state_, client);
  }

  void acquire(const std::shared_ptr<RunState>& state, int client) {
    if (state->stop.load()) {
      finish(state);
      return;
    }
    auto started = Clock::now();
    driver_->acquire(client, lock_name(client), [this, state, client, started](Outcome outcome) {
      auto now = Clock::now();
      if (!outcome.ok()) {
        failed(state, client, outcome);
        return;
      }
      {
        std::lock_guard lock(state->mutex);
        // The interval figures feed the progress line, warm-up included.
        auto us = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(now - started).count());
        state->interval_us.record(us);
        if (state->measuring) {
          state->latency_us.record(us);
          if (state->record_times) state->acquired_at.push_back(now);
        }
      }
      driver_->release(client, [this, state, client](Outcome released) {
        if (!released.ok()) {
          failed(state, client, released);
          return;
        }
        {
          std::lock_guard lock(state->mutex);
          ++state->interval_pairs;
          if (state->measuring) ++state->pairs;
        }
        acquire(state, client);
      });
    });
  }

  // An error: count it, then start over after a pause (the driver recovers
  // its session's state itself).
  void failed(const std::shared_ptr<RunState>& state, int client, const Outcome& outcome) {
    {
      std::lock_guard lock(state->mutex);
      ++state->interval_errors;
      if (state->measuring) ++state->errors;
      if (state->first_error.empty()) state->first_error = outcome.error;
    }
    if (state->stop.load()) {
      finish(state);
      return;
    }
    scheduler_.after(50ms, [this, state, client] { acquire(state, client); });
  }

  void finish(const std::shared_ptr<RunState>& state) {
    std::lock_guard lock(state->mutex);
    if (state->running.fetch_sub(1) == 1) state->idle.notify_all();
  }

  void sleep_with_progress(std::chrono::milliseconds span, int clients, const char* phase) {
    auto end = Clock::now() + span;
    auto begin = Clock::now();
    while (Clock::now() < end) {
      std::this_thread::sleep_until(std::min(end, Clock::now() + 1s));
      if (config_.progress) {
        progress_line(clients, seconds_between(begin, Clock::now()), phase);
      }
    }
  }

  void progress_line(int clients, double elapsed, const char* phase = "") {
    uint64_t pairs, errors, p50;
    {
      std::lock_guard lock(state_->mutex);
      pairs = std::exchange(state_->interval_pairs, 0);
      errors = std::exchange(state_->interval_errors, 0);
      p50 = state_->interval_us.percentile(0.5);
      state_->interval_us.reset();
    }
    if (!config_.progress) return;
    std::fprintf(stderr, "\r\033[K%s %s c=%d %s%5.1fs  pairs/s %llu  p50 %.2f ms  errors %llu",
                 config_.system.c_str(), config_.workload.c_str(), clients, phase, elapsed,
                 static_cast<unsigned long long>(pairs), static_cast<double>(p50) / 1000.0,
                 static_cast<unsigned long long>(errors));
    std::fflush(stderr);
  }

  std::optional<Clock::time_point> kill_leader(Result& result) {
    int leader = driver_->leader_index();
    result.leader = leader;
    if (leader < 0 || static_cast<size_t>(leader) >= config_.server_pids.size()) {
      result.failure = "failover: no leader found among the endpoints, or no --server-pids for it";
      return std::nullopt;
    }
    pid_t pid = config_.server_pids[static_cast<size_t>(leader)];
    auto at = Clock::now();
    if (::kill(pid, SIGKILL) != 0) {
      result.failure = "failover: cannot kill pid " + std::to_string(pid);
      return std::nullopt;
    }
    return at;
  }

  // Recovery: the end of the longest pause between successful acquires that
  // ends after the kill, measured from the kill. Full rate: the first 100 ms
  // after recovery with at least 90% of the pre-kill rate.
  static void failover_figures(Result& result, Clock::time_point killed, Clock::time_point begin,
                               Clock::time_point finished, std::vector<Clock::time_point> times) {
    std::sort(times.begin(), times.end());
    // No success after the kill, or a pause still open at the end that is
    // longer than any closed one: not recovered within the run (-1).
    if (times.empty() || times.back() <= killed) return;
    double longest = -1;
    Clock::time_point recovered{};
    for (size_t i = 1; i < times.size(); ++i) {
      if (times[i] <= killed) continue;
      double gap = seconds_between(times[i - 1], times[i]);
      if (gap > longest) {
        longest = gap;
        recovered = times[i];
      }
    }
    if (longest < 0) return;
    result.max_gap_ms = longest * 1000;
    if (seconds_between(times.back(), finished) > longest) {
      result.max_gap_ms = seconds_between(times.back(), finished) * 1000;
      return;
    }
    result.recovery_ms = seconds_between(killed, recovered) * 1000;
    double before_s = seconds_between(begin, killed);
    auto before = static_cast<double>(std::lower_bound(times.begin(), times.end(), killed) - times.begin());
    double rate_per_100ms = before_s > 0 ? before / before_s / 10.0 : 0;
    auto it = std::lower_bound(times.begin(), times.end(), recovered);
    for (auto window = recovered; it != times.end(); window += 100ms) {
      auto stop = std::lower_bound(it, times.end(), window + 100ms);
      if (static_cast<double>(stop - it) >= 0.9 * rate_per_100ms) {
        result.full_rate_ms = seconds_between(killed, window + 100ms) * 1000;
        return;
      }
      it = stop;
    }
  }

  Config config_;
  Scheduler& scheduler_;
  std::unique_ptr<Driver> driver_;
  std::shared_ptr<RunState> state_;
  std::string lock_nonce_;
  int run_counter_ = 0;
};

void print_result(const Config& config, const Result& r) {
  double pairs_per_s = r.seconds > 0 ? static_cast<double>(r.pairs) / r.seconds : 0;
  auto ms = [](uint64_t us) { return static_cast<double>(us) / 1000.0; };
  if (config.json) {
    std::printf(
        "{\"system\":%s,\"workload\":%s,\"clients\":%d,\"seconds\":%.3f,\"pairs\":%llu,"
        "\"pairs_per_s\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"mean_ms\":%.3f,"
        "\"max_ms\":%.3f,\"errors\":%llu,\"first_error\":%s,\"server_cpu_s\":%.2f,"
        "\"leader_cpu_s\":%.2f,\"server_peak_rss_kb\":%llu,\"leader_peak_rss_kb\":%llu,"
        "\"client_cpu_s\":%.2f,\"leader\":%d,\"open_s\":%.3f,\"recovery_ms\":%.1f,"
        "\"full_rate_ms\":%.1f,\"max_gap_ms\":%.1f,\"failure\":%s}\n",
        json_quote(config.system).c_str(), json_quote(config.workload).c_str(), r.clients, r.seconds,
        static_cast<unsigned long long>(r.pairs), pairs_per_s, ms(r.latency_us.percentile(0.5)),
        ms(r.latency_us.percentile(0.99)), ms(r.latency_us.percentile(0.999)), r.latency_us.mean() / 1000.0,
        ms(r.latency_us.max()), static_cast<unsigned long long>(r.errors), json_quote(r.first_error).c_str(),
        r.server_cpu_s, r.leader_cpu_s, static_cast<unsigned long long>(r.server_peak_rss_kb),
        static_cast<unsigned long long>(r.leader_peak_rss_kb), r.client_cpu_s, r.leader, r.open_s,
        r.recovery_ms, r.full_rate_ms, r.max_gap_ms, json_quote(r.failure).c_str());
    std::fflush(stdout);
    return;
  }
  std::printf("%s %s, %d %s\n", config.system.c_str(), config.workload.c_str(), r.clients,
              config.workload == "keepalive" ? "idle sessions" : "clients");
  if (!r.failure.empty()) {
    std::printf("  FAILED: %s\n", r.failure.c_str());
    return;
  }
  if (config.workload == "keepalive") {
    std::printf("  opened in %.2f s; held for %.1f s; sessions lost: %llu\n", r.open_s, r.seconds,
                static_cast<unsigned long long>(r.errors));
    std::printf("  leader (endpoint %d): %.2f CPU s, peak RSS %.1f MiB\n", r.leader, r.leader_cpu_s,
                static_cast<double>(r.leader_peak_rss_kb) / 1024.0);
  } else {
    std::printf("  %.0f pairs/s (%llu in %.1f s), errors %llu%s%s\n", pairs_per_s,
                static_cast<unsigned long long>(r.pairs), r.seconds, static_cast<unsigned long long>(r.errors),
                r.first_error.empty() ? "" : ", first: ", r.first_error.c_str());
    std::printf("  acquire latency ms: p50 %.3f  p99 %.3f  p99.9 %.3f  mean %.3f  max %.3f\n",
                ms(r.latency_us.percentile(0.5)), ms(r.latency_us.percentile(0.99)),
                ms(r.latency_us.percentile(0.999)), r.latency_us.mean() / 1000.0, ms(r.latency_us.max()));
  }
  if (config.workload == "failover") {
    if (r.recovery_ms < 0) {
      std::printf("  failover (killed endpoint %d): no acquire succeeded after the kill within the run\n", r.leader);
    } else {
      std::printf("  failover (killed endpoint %d): next acquire %.0f ms after the kill, full rate after %.0f ms\n",
                  r.leader, r.recovery_ms, r.full_rate_ms);
    }
  }
  if (config.server_pids.empty()) {
    std::printf("  CPU s: this client %.2f (servers: give --server-pids)\n", r.client_cpu_s);
  } else {
    std::printf("  CPU s: servers %.2f, this client %.2f; peak server RSS %.1f MiB\n", r.server_cpu_s,
                r.client_cpu_s, static_cast<double>(r.server_peak_rss_kb) / 1024.0);
  }
  std::fflush(stdout);
}

// 10,000 idle ZooKeeper sessions are 10,000 connections (3 descriptors each
// in the C client): raise the limit as far as allowed (root may pass the
// hard limit up to fs.nr_open).
void raise_file_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  rlimit wanted{1 << 20, 1 << 20};
  if (wanted.rlim_max > limit.rlim_max && setrlimit(RLIMIT_NOFILE, &wanted) == 0) return;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

int run_main(int argc, char** argv) {
  CLI::App app{"fencelock-bench: fencelock, etcd and ZooKeeper locks side by side"};
  Config config;
  std::string endpoints, pids, clients = "1,16,64,256", output = "text";
  std::string warmup = "2s", duration = "10s", kill_after = "2s", ttl = "10s";
  app.add_option("--system", config.system, "fencelock, etcd or zookeeper")->required();
  app.add_option("--endpoints", endpoints, "host:port of every server, comma-separated")->required();
  app.add_option("--server-pids", pids, "pids of the servers in --endpoints order (CPU, RSS, failover)");
  app.add_option("--workload", config.workload, "uncontended, contended, keepalive or failover")
      ->required()
      ->check(CLI::IsMember({"uncontended", "contended", "keepalive", "failover"}));
  app.add_option("--clients", clients, "client counts, one run each (default 1,16,64,256)");
  app.add_option("--sessions", config.sessions, "keepalive: idle sessions to hold (default 10000)");
  app.add_option("--sessions-per-connection", config.sessions_per_connection,
                 "sessions sharing one connection (default 16)");
  app.add_option("--warmup", warmup, "warm-up before measuring (default 2s)");
  app.add_option("--duration", duration, "measured interval (default 10s)");
  app.add_option("--kill-after", kill_after, "failover: kill the leader this long into the interval (2s)");
  app.add_option("--ttl", ttl, "session / lease TTL (default 10s)");
  app.add_option("--lock-prefix", config.lock_prefix, "prefix of lock names (default bench)");
  app.add_option("--tls", config.tls_dir,
                 "fencelock over TLS: a directory of scripts/tls-certs.sh with ca.crt and the "
                 "admin client's admin.crt and admin.key")
      ->check(CLI::ExistingDirectory);
  app.add_option("--output", output, "text or json (one object per run)")
      ->check(CLI::IsMember({"text", "json"}));
  CLI11_PARSE(app, argc, argv);

  config.endpoints = split(endpoints, ',');
  for (const auto& text : split(pids, ',')) {
    uint64_t pid = 0;
    if (!parse_uint64(text, pid) || pid == 0 || pid > INT32_MAX) {
      std::fprintf(stderr, "fencelock-bench: --server-pids: '%s' is not a process id\n", text.c_str());
      return 2;
    }
    config.server_pids.push_back(static_cast<pid_t>(pid));
  }
  if (!parse_duration(warmup, config.warmup) || !parse_duration(duration, config.duration) ||
      !parse_duration(kill_after, config.kill_after) || !parse_duration(ttl, config.session_ttl)) {
    std::fprintf(stderr, "fencelock-bench: a duration is not like 250ms, 10s or 2m\n");
    return 2;
  }
  config.json = output == "json";
  config.progress = isatty(STDERR_FILENO) != 0;
  if (config.workload == "failover" && config.server_pids.size() != config.endpoints.size()) {
    std::fprintf(stderr, "fencelock-bench: failover needs --server-pids, one per endpoint\n");
    return 2;
  }
  if (config.workload == "failover" && config.kill_after >= config.duration) {
    std::fprintf(stderr, "fencelock-bench: failover needs --kill-after shorter than --duration\n");
    return 2;
  }
  std::vector<int> counts;
  for (const auto& text : split(clients, ',')) {
    uint64_t count = 0;
    if (!parse_uint64(text, count) || count == 0 || count > 1'000'000) {
      std::fprintf(stderr, "fencelock-bench: --clients: '%s' is not a client count (1 to 1000000)\n",
                   text.c_str());
      return 2;
    }
    counts.push_back(static_cast<int>(count));
  }
  if (config.workload == "keepalive") counts = {0};
  raise_file_limit();
  signal(SIGPIPE, SIG_IGN);

  AsioScheduler scheduler;
  Runner runner(config, scheduler);
  int status = 0;
  for (int count : counts) {
    Result result = runner.run(count);
    print_result(config, result);
    if (!result.failure.empty()) status = 1;
  }
  return status;
}

}  // namespace
}  // namespace fencelock::bench

int main(int argc, char** argv) { return fencelock::bench::run_main(argc, argv); }
