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

}  // namespace

Result<std::unique_ptr<Daemon>> Daemon::open(asio::io_context& io, NodeConfig config) {
  if (Status status = validate(config); !status.ok()) return status;
  config.seed = pick_seed(config.seed, config.id);

  net::PeerTransportOptions transport_options;
  transport_options.self_id = config.id;
  transport_options.cluster_id = config.cluster_id;
  transport_options.peer_addresses = config.peers;
  transport_options.self_client_address = config.client_addr;
  transport_options.seed = config.seed;
  auto transport = std::make_unique<net::PeerTransport>(io, transport_options, get_logger("peer"));
  std::string peer_addr = config.peer_addr.empty() ? config.peers.at(config.id) : config.peer_addr;
  if (Status status = transport->listen(peer_addr); !status.ok()) return status;

  net::ClientListenerOptions listener_options;
  listener_options.max_frame_bytes = config.max_frame_bytes;
  listener_options.max_connections = config.max_connections;
  listener_options.max_in_flight = config.max_in_flight_per_connection;
  listener_options.idle_timeout = std::chrono::milliseconds(config.idle_timeout_ms);
  auto listener = std::make_unique<net::ClientListener>(io, listener_options, get_logger("client"));
  if (Status status = listener->listen(config.client_addr); !status.ok()) return status;

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
                                            std::move(transport), std::move(listener)));
}

Daemon::Daemon(asio::io_context& io, NodeConfig config, std::unique_ptr<storage::DiskLog> log,
               std::unique_ptr<net::PeerTransport> transport,
               std::unique_ptr<net::ClientListener> listener)
    : io_(io),
      tick_ms_(config.tick_ms),
      log_(std::move(log)),
      transport_(std::move(transport)),
      listener_(std::move(listener)),
      tick_timer_(io),
      lazy_timer_(io),
      snapshot_on_loop_(config.test_only_snapshot_on_loop),
      node_(std::make_unique<Node>(static_cast<Env&>(*this), *log_, std::move(config))) {
  // Serialising a large snapshot takes seconds of CPU: the loop (and the
  // storage thread) come first. Linux keeps a nice value per thread.
  asio::post(snapshot_thread_, [] { (void)::setpriority(PRIO_PROCESS, ::gettid(), 10); });
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

void Daemon::start() {
  transport_->start([this](raftpb::Message message) { node_->on_peer_message(message); },
                    [](uint64_t, bool) {},
                    [this](uint64_t peer, bool ok) { node_->report_snapshot(peer, ok); });
  listener_->start(
      [this](ConnectionId from, clientpb::Request request) { node_->on_request(from, request); },
      [this](ConnectionId id) { node_->on_connection_closed(id); });
  asio::co_spawn(io_, tick_loop(), asio::detached);
  node_->start();
}

void Daemon::stop() {
  if (stopped_) return;
  stopped_ = true;
  listener_->stop();
  transport_->stop();
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
