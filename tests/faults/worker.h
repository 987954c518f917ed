#pragma once
// Worker: one client of fencelock-faults. Its own Client, reaching every
// node through its own TcpProxy (so the nemesis can cut it off), and one
// session at a time. It loops: acquire a hot lock (exclusive or shared),
// read-modify-write the protected resource presenting its token (shared:
// read only), release. One mutating request of its session is in flight at
// a time (the cluster keeps the last result per session only).
//
// A stall (request_stall) is a simulated GC pause: on its next exclusive
// grant, after reading, the worker cuts its own links (its keepalives stop
// too), waits until a newer holder has written, then writes what it read
// plus one, ignoring that its session is lost — the write a paused holder
// makes when it wakes. Only the fence can stop it.
//
// Thread-safety: cut/heal/request_stall/stop and session() may be called
// from any thread; run() runs on the worker's own thread.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "client/session.h"
#include "tests/cluster/tcp_proxy.h"
#include "tests/faults/history.h"
#include "tests/faults/resource.h"

namespace fencelock::faults {

struct WorkerOptions {
  int id = 0;
  uint64_t seed = 0;
  std::vector<std::string> locks;
  std::chrono::milliseconds ttl{1000};
  std::chrono::milliseconds acquire_wait{500};
  std::chrono::milliseconds request_timeout{3000};
  std::chrono::milliseconds stall_max{8000};
  int shared_percent = 20;
};

class Worker {
 public:
  // `real_endpoints`: every node's client address, by node id order.
  Worker(WorkerOptions options, const std::vector<std::string>& real_endpoints, ProtectedResource& resource,
         History& history);
  ~Worker();

  void start();
  // Asks the loop to stop after its current operation (releasing what it
  // holds); join() waits for it.
  void stop() { stop_ = true; }
  void join();

  // Cuts (heals) every link of this worker's client; nested cuts count.
  void cut();
  void heal();
  void request_stall() { stall_requested_ = true; }
  void cancel_stall() { stall_requested_ = false; }

  // The worker's current session (null if none); for the final checks.
  std::shared_ptr<client::Session> session() const;

 private:
  void run();
  bool open_session();
  void drop_session();
  void cycle();
  bool critical_section(const lockpb::Sequencer& grant, bool stall);
  bool stopped() const { return stop_.load(); }

  WorkerOptions options_;
  ProtectedResource& resource_;
  History& history_;
  std::unique_ptr<testing::TcpProxy> proxy_;
  std::shared_ptr<client::Client> client_;
  std::mt19937_64 rng_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> stall_requested_{false};
  std::mutex cut_mutex_;
  int cuts_ = 0;
  mutable std::mutex session_mutex_;
  std::shared_ptr<client::Session> session_;
  std::thread thread_;
};

}  // namespace fencelock::faults
