#pragma once
// ProcessCluster: real fencelockd processes on 127.0.0.1 for process-level
// tests. Each node gets free ports and a data directory under a temporary
// directory that the cluster removes. Waits are on conditions with
// deadlines, never fixed sleeps (docs/design.md "Tests").
//
// Thread-safety: not thread-safe; one test thread.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
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
  // Where node `from` dials node `to` (its --peers entry for `to`); unset =
  // `to`'s real peer address. Each node listens on its real address (passed
  // as --peer-addr). The fault driver routes every directed peer link
  // through a proxy this way. Called by start().
  std::function<std::string(uint64_t from, uint64_t to, const std::string& real)> dial_address;
  // The cluster's directory (data and logs of every node); unset = a fresh
  // temporary directory. A directory given here is kept at destruction.
  std::filesystem::path dir;
  // Flags for node `id` alone (its TLS certificate), after extra_flags.
  std::function<std::vector<std::string>(uint64_t id)> node_flags;
  // How client() and status_of() reach the nodes (TLS, identity).
  std::string client_ca;
  std::string client_cert;
  std::string client_key;
  std::string client_token;
  // Each node gets an HTTP port (--http-addr; http_endpoint()).
  bool http = false;
};

class ProcessCluster {
 public:
  explicit ProcessCluster(ProcessClusterOptions options);
  ~ProcessCluster();  // SIGKILLs every node, removes the directory

  void start(uint64_t id);
  void start_all();
  // Replaces ProcessClusterOptions::extra_flags for the starts that follow
  // (e.g. a cluster started again from a backup with --restore).
  void set_extra_flags(std::vector<std::string> flags) { options_.extra_flags = std::move(flags); }
  // SIGKILL (or another signal) and reap.
  void kill(uint64_t id, int signal = 9);
  // SIGTERM and wait for exit; returns the exit status (-1 if killed by signal).
  int terminate(uint64_t id, std::chrono::milliseconds timeout = std::chrono::seconds(15));
  bool running(uint64_t id) const;

  // Waits until a running node reports itself leader; returns its id, or 0
  // after `timeout`.
  uint64_t wait_for_leader(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Membership change: a new node id (one above any so far) with fresh
  // ports; start() runs it with --join (the other nodes' client addresses)
  // instead of --peers. Add it to the cluster (member add) before starting it.
  uint64_t add_joining_node();
  // A removed node: stops it if it runs; ids() and client_endpoints() no
  // longer list it (its log stays for failure messages).
  void forget(uint64_t id);

  // Every member's view; empty when unreachable.
  std::optional<clientpb::ClusterStatusResult> status_of(uint64_t id);

  std::string client_endpoint(uint64_t id) const { return client_addrs_.at(id); }
  // With options.http: node `id`'s HTTP address.
  std::string http_endpoint(uint64_t id) const { return http_addrs_.at(id); }
  std::string peer_endpoint(uint64_t id) const { return peer_addrs_.at(id); }
  // The process id of a running node; -1 if it is not running.
  pid_t pid(uint64_t id) const;
  std::vector<std::string> client_endpoints() const;
  std::vector<uint64_t> ids() const;
  std::filesystem::path data_dir(uint64_t id) const;
  std::shared_ptr<client::Client> client();  // to every endpoint
  // The options client() uses, to start from (TLS, identity).
  client::ClientOptions client_options() const;
  // The last lines of a node's log, for failure messages.
  std::string log_tail(uint64_t id, int lines = 30) const;

 private:
  ProcessClusterOptions options_;
  std::filesystem::path dir_;
  bool keep_dir_ = false;
  std::map<uint64_t, std::string> peer_addrs_;
  std::map<uint64_t, std::string> client_addrs_;
  std::map<uint64_t, std::string> http_addrs_;
  std::map<uint64_t, pid_t> pids_;
  std::set<uint64_t> joining_;    // started with --join
  std::set<uint64_t> forgotten_;  // removed: their logs remain
  uint64_t last_id_ = 0;
  std::shared_ptr<client::Client> probe_;
};

// Polls `done` every 20 ms until it is true or `timeout` passes.
bool eventually(const std::function<bool()>& done,
                std::chrono::milliseconds timeout = std::chrono::seconds(10));

// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
uint16_t free_port();

}  // namespace fencelock::testing
