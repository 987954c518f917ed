// fencelockd: one fencelock cluster member.
//
//   fencelockd --id 1 --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003
//              --client-addr 127.0.0.1:8001 --data-dir var/n1
//
// A node added to a running cluster (`fencelock member add 4 PEER CLIENT`)
// starts with --join instead of --peers: it asks the members at the given
// client addresses for the configuration, then catches up as a learner.
//
//   fencelockd --id 4 --join 127.0.0.1:8001,127.0.0.1:8002 --peer-addr 127.0.0.1:7004
//              --client-addr 127.0.0.1:8004 --data-dir var/n4
//   fencelockd ... --restore backup.flbackup   (a new cluster from a backup:
//              every node with the same file, on an empty --data-dir)
//   fencelockd ... --tls-cert node1.crt --tls-key node1.key --tls-ca ca.crt
//              --client-auth cert --acl acl.txt   (docs/security.md)
//
// Every flag can also come from a TOML file given with --config (same keys,
// e.g. `client-addr = "127.0.0.1:8001"`). A wrong flag, an unknown id, a
// port in use or an unusable data directory prints one line and exits 2
// (a JSON line with --log-format json, once the flags have parsed).
// SIGTERM/SIGINT stop it gracefully (a leader hands leadership over first)
// with exit code 0.

#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "client/client.h"
#include "common/logging.h"
#include "common/text.h"
#include "fencelock/version.h"
#include "net/asio.h"
#include "server/daemon.h"

namespace {

constexpr int kExitUsage = 2;

// Raises the open-file limit to the hard limit: each client is a socket,
// and RocksDB keeps files open too.
void raise_fd_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

// Set with --log-format json once the flags are parsed: from then on a
// start-up error is a JSON line too, like everything else fencelockd prints.
bool json_logs = false;

int fail(const std::string& message) {
  std::string line = "fencelockd: " + message;
  if (json_logs) {
    // Formatted, not logged: whatever --log-level says, a node that does
    // not start says why.
    spdlog::details::log_msg msg("fencelockd", spdlog::level::err, line);
    spdlog::memory_buf_t out;
    fencelock::make_json_formatter()->format(msg, out);
    std::fwrite(out.data(), 1, out.size(), stderr);
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  return kExitUsage;
}

// --join on a new data directory: the members, from the cluster's leader.
// This node must be among them (added with `fencelock member add`), with
// the addresses it was started with.
fencelock::Result<std::map<uint64_t, std::string>> members_to_join(
    const std::string& join, const fencelock::server::NodeConfig& config,
    const std::string& join_token) {
  using fencelock::Status;
  fencelock::client::ClientOptions options;
  options.endpoints = fencelock::split(join, ',');
  options.request_timeout = std::chrono::seconds(10);
  // With TLS, this node's own certificate is its client identity too.
  options.tls_ca_file = config.security.tls_ca;
  options.tls_cert_file = config.security.tls_cert;
  options.tls_key_file = config.security.tls_key;
  options.token = join_token;
  auto client = fencelock::client::Client::connect(options);
  if (!client.ok()) return client.status();
  auto members = client.value()->member_list();
  if (!members.ok()) {
    return Status(members.code(), "cannot learn the members from " + join + ": " +
                                      members.status().message());
  }
  std::map<uint64_t, std::string> peers;
  const fencelock::clientpb::MemberInfo* self = nullptr;
  for (const auto& member : members.value().members()) {
    peers[member.id()] = member.peer_address();
    if (member.id() == config.id) self = &member;
  }
  if (self == nullptr) {
    return Status(fencelock::lockpb::FAILED_PRECONDITION,
                  "node " + std::to_string(config.id) +
                      " is not a member of the cluster at " + join +
                      ": add it first with `fencelock member add`");
  }
  if (self->peer_address() != config.peer_addr || self->client_address() != config.client_addr) {
    return Status(fencelock::lockpb::FAILED_PRECONDITION,
                  "node " + std::to_string(config.id) + " was added with peer address " +
                      self->peer_address() + " and client address " + self->client_address() +
                      ", not " + config.peer_addr + " and " + config.client_addr);
  }
  return peers;
}

}  // namespace

int main(int argc, char** argv) {
  using fencelock::server::NodeConfig;
  NodeConfig config;
  std::string peers;
  std::string data_dir;
  std::string log_level = "info";

  CLI::App app{"fencelockd: a fencelock lock service node"};
  app.set_version_flag("--version", FENCELOCK_VERSION, "print the version and exit");
  app.set_config("--config", "", "read options from a TOML file (same keys as the flags)");
  app.allow_config_extras(CLI::config_extras_mode::error);
  std::string join;
  app.add_option("--id", config.id, "this node's id, one of --peers")->required();
  auto* peers_option = app.add_option(
      "--peers", peers, "a new cluster's founding members: ID=HOST:PORT,... (peer addresses)");
  auto* join_option =
      app.add_option("--join", join,
                     "join a running cluster: client addresses of its members, HOST:PORT,... "
                     "(add this node first with `fencelock member add`)")
          ->excludes(peers_option);
  peers_option->excludes(join_option);
  app.add_option("--client-addr", config.client_addr, "address clients connect to, HOST:PORT")
      ->required();
  app.add_option("--peer-addr", config.peer_addr,
                 "address to listen on for peers (default: this node's --peers entry)");
  app.add_option("--data-dir", data_dir, "data directory (created when missing)")->required();
  app.add_option("--cluster-id", config.cluster_id, "cluster name; every member must agree")
      ->capture_default_str();
  app.add_option("--tick-ms", config.tick_ms, "length of one Raft tick")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  app.add_option("--election-ticks", config.election_ticks, "election timeout in ticks")
      ->capture_default_str()
      ->check(CLI::Range(3, 1000));
  app.add_option("--lazy-window-us", config.lazy_window_us,
                 "how long a follower the leader does not wait for gathers appends before it "
                 "writes and syncs them (0 = at once; docs/operations.md)")
      ->capture_default_str()
      ->check(CLI::Range(uint32_t{0}, fencelock::server::kMaxLazyWindowUs));
  app.add_option("--snapshot-every", config.snapshot_every,
                 "applied entries between snapshots (the log is compacted after each)")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 40));
  app.add_option("--keep-log-entries", config.keep_entries_after_snapshot,
                 "log entries kept behind each snapshot, so a follower slightly behind catches up "
                 "from the log instead of by InstallSnapshot")
      ->capture_default_str();
  app.add_option("--max-frame-bytes", config.max_frame_bytes, "largest client frame accepted")
      ->capture_default_str()
      ->check(CLI::Range(uint32_t{1024}, uint32_t{1} << 30));
  app.add_option("--seed", config.seed, "election randomness seed (0 = random, logged)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical, off")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  std::string log_format = "text";
  app.add_option("--log-format", log_format,
                 "text, or json: one object per line (docs/operations.md \"Logs\")")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  std::string restore_file;
  auto* restore = app.add_option("--restore", restore_file,
                                 "start a new cluster from a backup (fencelock snapshot save): "
                                 "every node with the same FILE, on an empty data directory");
  app.add_option("--restore-token-floor", config.restore_token_floor,
                 "with --restore: the lowest fencing token the new cluster issues")
      ->needs(restore);
  auto* security = &config.security;
  app.add_option("--tls-cert", security->tls_cert,
                 "this node's certificate (PEM): TLS on both ports; peers use mutual TLS, and "
                 "the certificate must name this member (DNS fencelock-node-ID, or its host)")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", security->tls_key, "the private key of --tls-cert (PEM)")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-ca", security->tls_ca,
                 "CA certificates (PEM) that sign members' and clients' certificates")
      ->check(CLI::ExistingFile);
  std::string client_auth = "none";
  app.add_option("--client-auth", client_auth,
                 "where a client's identity comes from: none, cert (its TLS certificate's CN "
                 "or SAN) or token (a bearer token from --tokens-file)")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "cert", "token"}));
  std::string tokens_file;
  app.add_option("--tokens-file", tokens_file,
                 "with --client-auth token: lines of TOKEN PRINCIPAL")
      ->check(CLI::ExistingFile);
  std::string acl_file;
  app.add_option("--acl", acl_file,
                 "with --client-auth: lines of PRINCIPAL PREFIX RIGHTS (lock, read, admin)")
      ->check(CLI::ExistingFile);
  std::string join_token_file;
  app.add_option("--join-token-file", join_token_file,
                 "with --join to a cluster with --client-auth token: a file holding a token")
      ->check(CLI::ExistingFile)
      ->needs(join_option);
  auto* observability = &config.observability;
  app.add_option("--http-addr", observability->http_addr,
                 "serve /metrics, /healthz, /readyz, /v1/ and the operator page here, HOST:PORT "
                 "(HTTPS with --tls-cert; docs/operations.md)");
  app.add_option("--ready-max-lag", observability->ready_max_lag,
                 "/readyz: the most entries applied may trail commit by")
      ->capture_default_str();
  app.add_option("--metrics-prefix-segments", observability->prefix_segments,
                 "per-lock metrics: '/'-separated segments of a lock name that make its prefix")
      ->capture_default_str()
      ->check(CLI::Range(1, 16));
  app.add_option("--metrics-max-prefixes", observability->max_prefixes,
                 "per-lock metrics: distinct prefixes tracked (further ones count as _other)")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{100'000}));
  app.add_option("--metrics-top-k", observability->top_k,
                 "per-lock metrics: the busiest lock names given series of their own")
      ->capture_default_str()
      ->check(CLI::Range(size_t{0}, size_t{1000}));
  app.add_flag("--unsafe-no-fsync", config.unsafe_no_fsync,
               "do not fsync (tests only: a machine crash loses acknowledged writes)");
  // Hidden: the snapshot stall bench compares the old way with the new.
  app.add_flag("--test-only-snapshot-on-loop", config.test_only_snapshot_on_loop,
               "take state machine snapshots on the event loop (benchmarks only: stalls clients)")
      ->group("");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::CallForVersion&) {
    std::cout << "fencelockd " FENCELOCK_VERSION "\n";
    return 0;
  } catch (const CLI::ParseError& e) {
    return fail(e.what());
  }

  // Before anything logs: the first line printed is in the chosen format.
  fencelock::set_log_format(*fencelock::parse_log_format(log_format));
  fencelock::set_log_level(log_level);
  fencelock::set_log_node(config.id);
  spdlog::set_default_logger(fencelock::get_logger("fencelockd"));  // stderr, like every logger
  json_logs = log_format == "json";

  config.data_dir = data_dir;
  config.restore_file = restore_file;
  security->client_auth = client_auth == "cert"    ? fencelock::server::ClientAuthMode::kCert
                          : client_auth == "token" ? fencelock::server::ClientAuthMode::kToken
                                                   : fencelock::server::ClientAuthMode::kNone;
  security->tokens_file = tokens_file;
  security->acl_file = acl_file;
  std::string join_token;
  if (!join_token_file.empty()) {
    auto token = fencelock::client::read_token_file(join_token_file);
    if (!token.ok()) return fail("--join-token-file: " + token.status().message());
    join_token = token.value();
  }
  if (join.empty()) {
    if (peers.empty()) return fail("give --peers (a new cluster) or --join (a running one)");
    auto parsed_peers = fencelock::server::parse_peers(peers);
    if (!parsed_peers.ok()) return fail("--peers: " + parsed_peers.status().message());
    config.peers = std::move(parsed_peers).value();
  } else {
    if (config.peer_addr.empty()) return fail("--join needs --peer-addr");
    config.join = true;
    config.peers = {{config.id, config.peer_addr}};
    std::error_code ec;
    if (!std::filesystem::exists(std::filesystem::path(data_dir) / "db", ec)) {
      // A new member: it needs the members to answer the leader. A
      // restarted one knows them from its log.
      auto members = members_to_join(join, config, join_token);
      if (!members.ok()) return fail("--join: " + members.status().message());
      config.peers = std::move(members).value();
    }
  }
  raise_fd_limit();

  boost::asio::io_context io(1);
  auto node = fencelock::server::Daemon::open(io, config);
  if (!node.ok()) return fail(node.status().message());
  node.value()->start();
  spdlog::info("node {} serving clients on {}, peers on {} (fencelockd {})", config.id,
               node.value()->client_endpoint(), node.value()->peer_endpoint(), FENCELOCK_VERSION);
  if (!node.value()->http_endpoint().empty()) {
    spdlog::info("node {} serving HTTP{} on {} (/metrics, /healthz, /readyz, /v1/, /)", config.id,
                 config.security.tls() ? "S" : "", node.value()->http_endpoint());
  }

  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    spdlog::info("node {} received signal {}, stopping", config.id, signal);
    node.value()->shutdown([&io] { io.stop(); });
  });
  io.run();
  node.value().reset();
  spdlog::info("node {} stopped", config.id);
  spdlog::shutdown();
  return 0;
}
