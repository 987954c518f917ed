#pragma once
// Driver: how fencelock-bench speaks to one lock service. A driver owns
// `count` client sessions, numbered 0..count-1, and takes and releases one
// lock per session with that system's standard recipe, asynchronously, so one
// process drives hundreds of busy clients (and thousands of idle ones)
// without a thread per client.
//
// Contract for the runner (cli/bench/runner.cc):
//   open_sessions() once, then any number of acquire()/release() pairs per
//   session, at most one operation of a session in flight at a time, then
//   close_sessions(). acquire() waits in the lock's queue as long as it takes
//   (up to the driver's own deadline); release() releases what the session's
//   last successful acquire() took.
//
// Thread-safety: acquire/release may be called from any thread, including
// from inside a completion. Completions run on the driver's own threads and
// must not block.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace fencelock::bench {

// The outcome of one operation: empty error = success.
struct Outcome {
  std::string error;
  bool ok() const { return error.empty(); }
};

using Completion = std::function<void(Outcome)>;

// Runs functions later on a timer thread shared by the runner and the
// drivers (retries after an error, keepalive ticks).
class Scheduler {
 public:
  virtual ~Scheduler() = default;
  virtual void after(std::chrono::milliseconds delay, std::function<void()> fn) = 0;
};

// keepalive workload: sessions per connection for drivers whose sessions are
// not connections (fencelock, etcd); a Client per 16 idle sessions would
// mostly measure 625 client I/O threads.
constexpr int kIdleSessionsPerConnection = 500;

struct DriverOptions {
  std::vector<std::string> endpoints;  // host:port of every server, in --server-pids order
  int sessions_per_connection = 16;    // sessions sharing one client connection
  std::chrono::milliseconds session_ttl{10000};
  // The sessions will sit idle (keepalive workload): a driver whose session
  // is a connection (ZooKeeper) opens one connection per session.
  bool keepalive_only = false;
  Scheduler* scheduler = nullptr;
  // fencelock only (--tls DIR): TLS with this CA, client certificate and key.
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
};

class Driver {
 public:
  virtual ~Driver() = default;

  virtual std::string name() const = 0;

  // Opens `count` sessions (several in flight at once). Blocks until all are
  // open or `timeout` passes; an error names what failed.
  virtual Outcome open_sessions(int count, std::chrono::milliseconds timeout) = 0;

  // Session `session` acquires exclusive lock `lock`, waiting its turn.
  virtual void acquire(int session, const std::string& lock, Completion done) = 0;

  // Session `session` releases the lock it holds.
  virtual void release(int session, Completion done) = 0;

  // Closes every session (best effort, bounded in time).
  virtual void close_sessions() = 0;

  // Index into DriverOptions::endpoints of the current leader, -1 if none is
  // known. Blocking, bounded by about a second per endpoint; not called from
  // a completion.
  virtual int leader_index() = 0;

  // How many open sessions the driver knows to be lost (expired, closed by
  // the server); the keepalive workload reports it as errors.
  virtual int lost_sessions() { return 0; }
};

// Runs start(0) .. start(count - 1) with at most `window` in flight (a
// driver opening thousands of sessions: all at once would only queue), each
// calling its Completion once, on any thread. Blocks until all completed or
// `timeout` passed; returns the first error, or "<verb> N of <count> <noun>
// in time" on a timeout. Nothing new starts after it returned.
Outcome run_windowed(int count, int window, std::chrono::milliseconds timeout,
                     const std::function<void(int index, Completion done)>& start,
                     const std::string& verb, const std::string& noun);

std::unique_ptr<Driver> make_fencelock_driver(const DriverOptions& options);
#ifdef FENCELOCK_BENCH_ETCD
std::unique_ptr<Driver> make_etcd_driver(const DriverOptions& options);
#endif
#ifdef FENCELOCK_BENCH_ZOOKEEPER
std::unique_ptr<Driver> make_zookeeper_driver(const DriverOptions& options);
#endif

}  // namespace fencelock::bench
