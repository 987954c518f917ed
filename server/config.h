#pragma once
// NodeConfig: everything a fencelockd node is started with (cli/fencelockd
// fills it from flags or a config file; tests fill it directly).
//
// Thread-safety: a value type.

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

#include "common/status.h"
#include "statemachine/lock_state_machine.h"

namespace fencelock::server {

inline constexpr uint32_t kMaxLazyWindowUs = 100'000;

// Deliberate node-level bugs the node simulator's checker must catch. TEST
// ONLY: never set outside tests; kNone in every real configuration.
enum class InjectedBug {
  kNone,
  // Writes are not synced before the messages that promise them go out
  // (docs/design.md "Durability").
  kAckBeforeSync,
  // A new leader does not give sessions a full TTL from taking office: it
  // counts from half a TTL ago, as if it went on with the old leader's
  // deadlines.
  kExpireOnOldDeadline,
  // A new leader ends every pending lock-delay at once, as one that
  // compared an old leader's wall-clock end with its own clock would.
  kEarlyLockDelay,
  // A state machine snapshot names the latest configuration in the log
  // instead of the one in force at its index (a change appended but not yet
  // committed, which may still be overwritten, rides along).
  kSnapshotLatestConf,
};

// Where a client's identity comes from (docs/security.md).
enum class ClientAuthMode { kNone, kCert, kToken };

// TLS and client access (docs/security.md). The three TLS files together
// turn on TLS on both ports (peers always mutual); none, plaintext.
struct SecurityConfig {
  std::string tls_cert;
  std::string tls_key;
  std::string tls_ca;
  ClientAuthMode client_auth = ClientAuthMode::kNone;
  std::filesystem::path tokens_file;  // kToken: "TOKEN PRINCIPAL" lines
  std::filesystem::path acl_file;     // required with client auth on
  bool tls() const { return !tls_cert.empty() || !tls_key.empty() || !tls_ca.empty(); }
};

// The HTTP port and what its metrics break down (docs/operations.md
// "Metrics"). Per-lock series are bounded whatever the lock names:
// max_prefixes prefixes of prefix_segments '/'-separated segments (any
// more count under "_other") and the top_k busiest names.
struct ObservabilityConfig {
  std::string http_addr;  // "ip:port"; empty = no HTTP port
  uint64_t ready_max_lag = 1000;
  uint32_t prefix_segments = 1;
  size_t max_prefixes = 256;
  size_t top_k = 10;
};

struct NodeConfig {
  uint64_t id = 0;
  // Nodes of one cluster share a cluster id; a node refuses peers of
  // another cluster and a data directory made for another cluster.
  std::string cluster_id = "fencelock";
  // Every member's peer address, this node's included: id -> "ip:port".
  std::map<uint64_t, std::string> peers;
  std::string client_addr;  // where clients connect, "ip:port"
  std::string peer_addr;    // where peers connect; empty = peers[id]
  // This node joins a running cluster (fencelockd --join): `peers` are the
  // members it was told of, and its log starts empty, learning the
  // configuration from the leader. A founding member (false) writes the
  // bootstrap configuration (the voters in `peers`) into a new log.
  bool join = false;
  std::filesystem::path data_dir;

  uint32_t tick_ms = 100;
  int election_ticks = 10;  // election timeout = election_ticks * tick_ms (randomized up to 2x)
  int heartbeat_ticks = 1;
  // A follower outside the leader's commit quorum (raft::Config::
  // lazy_followers) gathers appends this long before it writes and syncs
  // them; 0 = every follower persists each append at once. At most
  // kMaxLazyWindowUs.
  uint32_t lazy_window_us = 2000;
  uint64_t snapshot_every = 10000;  // applied entries between state machine snapshots
  uint64_t keep_entries_after_snapshot = 1000;
  bool unsafe_no_fsync = false;     // tests only: acknowledged writes may be lost on a crash
  uint64_t seed = 0;                // election randomness; 0 = pick one (logged)

  uint32_t max_frame_bytes = 4u << 20;
  size_t max_connections = 10000;
  size_t max_in_flight_per_connection = 10000;
  uint32_t idle_timeout_ms = 5 * 60 * 1000;
  sm::Limits limits;
  SecurityConfig security;
  ObservabilityConfig observability;
  // --restore: before starting, initialize the empty data directory from
  // this backup file, in the next token epoch (server/restore.h); empty =
  // no restore. --restore-token-floor: the lowest token it may issue then.
  std::filesystem::path restore_file;
  uint64_t restore_token_floor = 0;
  InjectedBug test_only_inject_bug = InjectedBug::kNone;  // TEST ONLY, see InjectedBug
  // TEST ONLY (benchmarks): take state machine snapshots wholly on the
  // event loop, as before they moved to a background thread, which stalls
  // every client meanwhile (tests/bench/snapshot_stall_bench.cc).
  bool test_only_snapshot_on_loop = false;
};

// Parses "1=127.0.0.1:7001,2=127.0.0.1:7002" into id -> address.
// INVALID_ARGUMENT naming the bad part.
Result<std::map<uint64_t, std::string>> parse_peers(const std::string& text);

// Checks a config for what would stop the node at once: id not among the
// peers, an even or empty membership is allowed but a missing address is
// not, tick and election settings out of range. INVALID_ARGUMENT naming
// the field.
Status validate(const NodeConfig& config);

// A stable 64-bit id for a cluster name (FNV-1a), stored in the data directory.
uint64_t cluster_hash(const std::string& cluster_id);

}  // namespace fencelock::server
