#pragma once
// ProcessCluster: real fencelockd processes on 127.0.0.1 for process-level
// tests. Each node gets free ports and a data directory under a temporary
// directory that the cluster removes. Waits are on conditions with
// deadlines, never fixed sleeps (STYLE.md "Tests").
//
// Thread-safety: not thread-safe; one test thread.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "client/client.h"

namespace fencelock::testing {

struct ProcessClusterOptions {
  int nodes = 3;
  uint32_t tick_ms = 50;
  int election_ticks = 10;
  uint64_t snapshot_every = 10000;
  uint64_t keep_log_entries = 1000;
  bool unsafe_no_fsync = false;
  std::vector<std::string> extra_flags;
};

class ProcessCluster {
 public:
  explicit ProcessCluster(ProcessClusterOptions options);
  ~ProcessCluster();  // SIGKILLs every node, removes the directory

  void start(uint64_t id);
  void start_all();
  // SIGKILL (or another signal) and reap.
  void kill(uint64_t id, int signal = 9);
  // SIGTERM and wait for exit; returns the exit status (-1 if killed by signal).
  int terminate(uint64_t id, std::chrono::milliseconds timeout = std::chrono::seconds(15));
  bool running(uint64_t id) const;

  // Waits until a running node reports itself leader; returns its id, or 0
  // after `timeout`.
  uint64_t wait_for_leader(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Every member's view; empty when unreachable.
  std::optional<clientpb::ClusterStatusResult> status_of(uint64_t id);

  std::string client_endpoint(uint64_t id) const { return client_addrs_.at(id); }
  std::vector<std::string> client_endpoints() const;
  std::vector<uint64_t> ids() const;
  std::filesystem::path data_dir(uint64_t id) const;
  std::shared_ptr<client::Client> client();  // to every endpoint
  // The last lines of a node's log, for failure messages.
  std::string log_tail(uint64_t id, int lines = 30) const;

 private:
  ProcessClusterOptions options_;
  std::filesystem::path dir_;
  std::map<uint64_t, std::string> peer_addrs_;
  std::map<uint64_t, std::string> client_addrs_;
  std::map<uint64_t, pid_t> pids_;
  std::shared_ptr<client::Client> probe_;
};

// Polls `done` every 20 ms until it is true or `timeout` passes.
bool eventually(const std::function<bool()>& done,
                std::chrono::milliseconds timeout = std::chrono::seconds(10));

// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
uint16_t free_port();

}  // namespace fencelock::testing
