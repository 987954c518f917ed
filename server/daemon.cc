#include "server/daemon.h"

#include <sys/resource.h>
#include <unistd.h>

#include <random>

#include "common/logging.h"
#include "server/restore.h"

namespace fencelock::server {

namespace asio = boost::asio;

namespace {

// A leader's Ready with at most this many entries is written on the loop,
// posted behind the sends already queued; a larger one on the storage
// thread, so that the loop goes on reading and parsing the next batch
// meanwhile. Where the figures behind it come from: docs/benchmark.md.
constexpr size_t kLoopWriteMaxEntries = 8;

uint64_t pick_seed(uint64_t configured, uint64_t id) {
  if (configured != 0) return configured;
  std::random_device device;
  return (uint64_t{device()} << 32) ^ device() ^ id;
}

std::string endpoint_text(const asio::ip::tcp::endpoint& endpoint) {
  return endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
}

// The TLS contexts of both ports, the tokens and the ACL.
struct Security {
  std::shared_ptr<net::TlsContext> client_server;  // the client port
  std::shared_ptr<net::TlsContext> peer_server;    // accepting peers
  std::shared_ptr<net::TlsContext> peer_client;    // dialing peers
  std::shared_ptr<net::TlsContext> http;           // the HTTP port (client certificate optional)
  std::shared_ptr<const Tokens> tokens;
  std::optional<Acl> acl;
};

Result<Security> load_security(const SecurityConfig& config) {
  Security security;
  if (config.tls()) {
    net::TlsFiles files{config.tls_cert, config.tls_key, config.tls_ca};
    auto logger = get_logger("tls");
    auto client_peer = config.client_auth == ClientAuthMode::kCert
                           ? net::PeerCertificate::kRequired
                           : net::PeerCertificate::kNone;
    auto client_server = net::TlsContext::load(files, true, client_peer, logger);
    if (!client_server.ok()) return client_server.status();
    auto peer_server = net::TlsContext::load(files, true, net::PeerCertificate::kRequired, logger);
    if (!peer_server.ok()) return peer_server.status();
    auto peer_client = net::TlsContext::load(files, false, net::PeerCertificate::kRequired, logger);
    if (!peer_client.ok()) return peer_client.status();
    security.client_server = std::move(client_server).value();
    security.peer_server = std::move(peer_server).value();
    security.peer_client = std::move(peer_client).value();
    auto http = net::TlsContext::load(files, true, net::PeerCertificate::kOptional, logger);
    if (!http.ok()) return http.status();
    security.http = std::move(http).value();
  }
  if (config.client_auth == ClientAuthMode::kToken) {
    auto tokens = Tokens::load(config.tokens_file);
    if (!tokens.ok()) return tokens.status();
    security.tokens = std::make_shared<const Tokens>(std::move(tokens).value());
  }
  if (config.client_auth != ClientAuthMode::kNone) {
    auto acl = Acl::load(config.acl_file);
    if (!acl.ok()) return acl.status();
    security.acl = std::move(acl).value();
  }
  return security;
}

}  // namespace

Result<std::unique_ptr<Daemon>> Daemon::open(asio::io_context& io, NodeConfig config) {
  if (Status status = validate(config); !status.ok()) return status;
  config.seed = pick_seed(config.seed, config.id);
  auto security = load_security(config.security);
  if (!security.ok()) return security.status();

  net::PeerTransportOptions transport_options;
  transport_options.tls_server = security.value().peer_server;
  transport_options.tls_client = security.value().peer_client;
  transport_options.self_id = config.id;
  transport_options.cluster_id = config.cluster_id;
  transport_options.peer_addresses = config.peers;
  transport_options.self_client_address = config.client_addr;
  transport_options.seed = config.seed;
  // Far above any heartbeat interval (heartbeat_ticks < election_ticks);
  // the dialer's keepalives keep a healthy idle link (follower to
  // follower) open anyway.
  transport_options.idle_timeout =
      std::max(std::chrono::milliseconds(30'000),
               std::chrono::milliseconds(10 * uint64_t{config.tick_ms} *
                                         static_cast<uint64_t>(config.election_ticks)));
  auto transport = std::make_unique<net::PeerTransport>(io, transport_options, get_logger("peer"));
  std::string peer_addr = config.peer_addr.empty() ? config.peers.at(config.id) : config.peer_addr;
  if (Status status = transport->listen(peer_addr); !status.ok()) return status;

  net::ClientListenerOptions listener_options;
  listener_options.max_frame_bytes = config.max_frame_bytes;
  listener_options.max_connections = config.max_connections;
  listener_options.max_in_flight = config.max_in_flight_per_connection;
  listener_options.idle_timeout = std::chrono::milliseconds(config.idle_timeout_ms);
  listener_options.tls = security.value().client_server;
  switch (config.security.client_auth) {
    case ClientAuthMode::kNone:
      listener_options.auth = net::ClientAuth::kNone;
      break;
    case ClientAuthMode::kCert:
      listener_options.auth = net::ClientAuth::kCert;
      break;
    case ClientAuthMode::kToken:
      listener_options.auth = net::ClientAuth::kToken;
      listener_options.principal_of_token =
          [tokens = security.value().tokens](const std::string& token) {
            return tokens->principal(token);
          };
      break;
  }
  auto listener = std::make_unique<net::ClientListener>(io, listener_options, get_logger("client"));
  if (Status status = listener->listen(config.client_addr); !status.ok()) return status;

  std::unique_ptr<net::HttpServer> http;
  if (!config.observability.http_addr.empty()) {
    net::HttpServerOptions http_options;
    http_options.tls = security.value().http;
    http = std::make_unique<net::HttpServer>(io, http_options, get_logger("http"));
    if (Status status = http->listen(config.observability.http_addr); !status.ok()) return status;
  }

  storage::DiskLogOptions options;
  options.dir = config.data_dir;
  options.cluster_id = cluster_hash(config.cluster_id);
  options.node_id = config.id;
  // A new data directory gets no configuration here: a founding member's
  // node writes the bootstrap entries, a joining one learns it
  // (server/node.h). A restored one starts from the backup's snapshot, whose
  // configuration is the new cluster's --peers.
  if (!config.restore_file.empty()) {
    for (const auto& [id, address] : config.peers) {
      options.initial_conf_state.add_voters(id);
      raftpb::Member* member = options.initial_conf_state.add_members();
      member->set_id(id);
      member->set_peer_address(address);
    }
  }
  options.sync = !config.unsafe_no_fsync;
  options.keep_entries_after_snapshot = config.keep_entries_after_snapshot;
  Status restored = config.restore_file.empty()
                        ? check_no_unfinished_restore(options.dir)
                        : restore_data_dir(config.restore_file, config.restore_token_floor,
                                           config.limits, options);
  if (!restored.ok()) return restored;
  auto log = storage::DiskLog::open(options);
  if (!log.ok()) return log.status();
  return std::unique_ptr<Daemon>(new Daemon(io, std::move(config), std::move(log).value(),
                                            std::move(transport), std::move(listener),
                                            std::move(http), std::move(security.value().acl),
                                            security.value().tokens));
}

Daemon::Daemon(asio::io_context& io, NodeConfig config, std::unique_ptr<storage::DiskLog> log,
               std::unique_ptr<net::PeerTransport> transport,
               std::unique_ptr<net::ClientListener> listener,
               std::unique_ptr<net::HttpServer> http, std::optional<Acl> acl,
               std::shared_ptr<const Tokens> tokens)
    : io_(io),
      tick_ms_(config.tick_ms),
      log_(std::move(log)),
      transport_(std::move(transport)),
      listener_(std::move(listener)),
      http_(std::move(http)),
      acl_(std::move(acl)),
      tokens_(std::move(tokens)),
      access_logger_(get_logger("access")),
      tick_timer_(io),
      lazy_timer_(io),
      snapshot_on_loop_(config.test_only_snapshot_on_loop),
      node_(std::make_unique<Node>(static_cast<Env&>(*this), *log_, std::move(config))) {
  // Serialising a large snapshot takes seconds of CPU: the loop (and the
  // storage thread) come first. Linux keeps a nice value per thread.
  asio::post(snapshot_thread_, [] { (void)::setpriority(PRIO_PROCESS, ::gettid(), 10); });
  if (http_) {
    HttpApiOptions options;
    options.ready_max_lag = node_->config().observability.ready_max_lag;
    if (acl_) options.acl = &*acl_;
    if (tokens_) {
      options.principal_of_token = [tokens = tokens_](const std::string& token) {
        return tokens->principal(token);
      };
    }
    http_api_ = std::make_unique<HttpApi>(*node_, std::move(options),
                                          [this] { return metrics_inputs(); }, edge_);
  }
}

MetricsInputs Daemon::metrics_inputs() const {
  MetricsInputs inputs;
  inputs.node = node_.get();
  inputs.edge = &edge_;
  inputs.log_sync_writes = &log_->sync_writes();
  inputs.client_connections = listener_->connection_count();
  inputs.client_connections_accepted = listener_->accepted_count();
  inputs.peer_connected = [this](uint64_t peer) { return transport_->connected(peer); };
  return inputs;
}

Daemon::~Daemon() {
  // A write or a snapshot in flight finishes first (the node it reads from
  // is still alive); its completion, posted to a loop that no longer runs,
  // is dropped.
  snapshot_thread_.join();
  storage_thread_.join();
  stop();
}

std::string Daemon::client_endpoint() const { return endpoint_text(listener_->local_endpoint()); }

std::string Daemon::peer_endpoint() const { return endpoint_text(transport_->local_endpoint()); }

std::string Daemon::http_endpoint() const {
  return http_ ? endpoint_text(http_->local_endpoint()) : "";
}

void Daemon::start() {
  transport_->start([this](raftpb::Message message) { node_->on_peer_message(message); },
                    [](uint64_t, bool) {},
                    [this](uint64_t peer, bool ok) { node_->report_snapshot(peer, ok); });
  listener_->start(
      [this](ConnectionId from, const std::string& principal, clientpb::Request request) {
        on_request(from, principal, std::move(request));
      },
      [this](ConnectionId id) { node_->on_connection_closed(id); });
  if (http_) {
    http_->start([this](const net::HttpRequest& request) { return http_api_->handle(request); });
  }
  asio::co_spawn(io_, tick_loop(), asio::detached);
  node_->start();
}

void Daemon::on_request(ConnectionId from, const std::string& principal,
                        clientpb::Request request) {
  edge_.count_request(request.kind_case());
  if (acl_) {
    Status allowed = acl_->check(principal, request);
    if (!allowed.ok()) {
      access_logger_->info("node {}: refused {} of '{}': {}", node_->id(),
                           clientpb::Request::descriptor()
                               ->FindFieldByNumber(static_cast<int>(request.kind_case()))
                               ->name(),
                           principal, allowed.message());
      clientpb::Response response;
      response.set_id(request.id());
      response.set_code(allowed.code());
      response.set_message(allowed.message());
      edge_.count_response(response.code());
      listener_->respond(from, response);
      return;
    }
  }
  node_->on_request(from, principal, request);
}

void Daemon::stop() {
  if (stopped_) return;
  stopped_ = true;
  listener_->stop();
  transport_->stop();
  if (http_) http_->stop();
  tick_timer_.cancel();
}

asio::awaitable<void> Daemon::tick_loop() {
  const auto tick = std::chrono::milliseconds(tick_ms_);
  auto next = SteadyClock::now();
  while (true) {
    next += tick;
    // Ticks missed while the loop was busy (installing a large snapshot
    // from the leader, say) are dropped, not fired in a burst: a burst
    // would count the whole stall against the election timeout before the
    // leader's heartbeats queued meanwhile are read.
    const auto now = SteadyClock::now();
    if (next + tick < now) next = now;
    tick_timer_.expires_at(next);
    boost::system::error_code ec;
    co_await tick_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (ec || stopped_) co_return;
    node_->on_tick();
  }
}

void Daemon::send_snapshot(const raftpb::Message& message,
                           std::shared_ptr<const std::string> data) {
  if (transport_->send_snapshot(message, std::move(data))) return;
  // Not connected: the core may try again at once, once it hears a probe.
  uint64_t peer = message.to();
  asio::post(io_, [this, peer] { node_->report_snapshot(peer, false); });
}

void Daemon::run_in_background(std::function<void()> work, std::function<void()> done) {
  if (snapshot_on_loop_) {
    work();
    done();
    return;
  }
  asio::post(snapshot_thread_, [this, work = std::move(work), done = std::move(done)]() mutable {
    work();
    asio::post(io_, std::move(done));
  });
}

void Daemon::write(raft::WriteMode mode, size_t entries, std::chrono::microseconds hold,
                   std::function<void()> write, std::function<void()> done) {
  if (mode == raft::WriteMode::kLazy) {
    // A follower the leader does not wait for: the write waits for the
    // window, and what arrives meanwhile shares the next one.
    lazy_timer_.expires_after(hold);
    lazy_timer_.async_wait([write = std::move(write), done = std::move(done)](
                               const boost::system::error_code& ec) {
      // Nothing cancels this timer: an error means the daemon is being
      // destroyed, and nothing may be touched.
      if (ec) return;
      write();
      done();
    });
    return;
  }
  if (entries <= kLoopWriteMaxEntries) {
    // A lock hand-off or a lone client: the storage thread's two wake-ups
    // cost more than the loop has to do meanwhile, so the write runs on
    // the loop, behind the AppendEntries and answers already queued.
    asio::post(io_, [write = std::move(write), done = std::move(done)] {
      write();
      done();
    });
    return;
  }
  asio::post(storage_thread_, [this, write = std::move(write), done = std::move(done)]() mutable {
    write();
    asio::post(io_, std::move(done));
  });
}

}  // namespace fencelock::server
