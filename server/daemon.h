#pragma once
// Daemon: a server::Node wired to the real world — fencelockd's Env. It
// opens the data directory (storage::DiskLog on RocksDB), binds the client
// listener and the peer transport (Boost.Asio), ticks the node from a
// steady timer, reads the machine's clocks, and carries out a leader's
// large writes on a storage thread of its own.
//
// Thread-safety: not thread-safe. Create, start and shut down on the thread
// that runs the io_context; everything else happens on that thread, except
// a large Ready's write, which runs on the storage thread (handed over and
// back with post; the node leaves its log alone meanwhile), and the
// serialising and writing of a state machine snapshot, which runs on the
// snapshot thread (Env::run_in_background).

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/logging.h"
#include "net/asio.h"
#include "net/client_listener.h"
#include "net/http_server.h"
#include "net/peer_transport.h"
#include "server/access.h"
#include "server/config.h"
#include "server/env.h"
#include "server/http_api.h"
#include "server/metrics.h"
#include "server/node.h"
#include "storage/disk_log.h"

namespace fencelock::server {

class Daemon final : private Env {
 public:
  // Validates `config`, binds both listeners (a port in use fails before
  // anything is written), opens the data directory and builds the node.
  // Errors (a directory of another cluster or node, a damaged store, a port
  // in use, a bad address) come back as a Status whose message names the
  // problem; the caller prints it and exits.
  static Result<std::unique_ptr<Daemon>> open(boost::asio::io_context& io, NodeConfig config);

  ~Daemon() override;
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Starts ticking, dialing peers and accepting clients.
  void start();
  // Node::shutdown; `done` runs on the loop once the node has stopped.
  void shutdown(std::function<void()> done) { node_->shutdown(std::move(done)); }

  const Node& node() const { return *node_; }
  std::string client_endpoint() const;
  std::string peer_endpoint() const;
  // The HTTP port's address; "" without --http-addr.
  std::string http_endpoint() const;

 private:
  Daemon(boost::asio::io_context& io, NodeConfig config, std::unique_ptr<storage::DiskLog> log,
         std::unique_ptr<net::PeerTransport> transport, std::unique_ptr<net::ClientListener> listener,
         std::unique_ptr<net::HttpServer> http, std::optional<Acl> acl,
         std::shared_ptr<const Tokens> tokens);
  // What a scrape of /metrics reads.
  MetricsInputs metrics_inputs() const;

  // A client's request: checked against the ACL (when auth is on), then
  // handed to the node.
  void on_request(ConnectionId from, const std::string& principal, clientpb::Request request);

  // Env.
  SteadyTime now() const override { return SteadyClock::now(); }
  void post(std::function<void()> fn) override { boost::asio::post(io_, std::move(fn)); }
  void write(raft::WriteMode mode, size_t entries, std::chrono::microseconds hold,
             std::function<void()> write, std::function<void()> done) override;
  void send(const raftpb::Message& message) override { transport_->send(message); }
  void send_snapshot(const raftpb::Message& message,
                     std::shared_ptr<const std::string> data) override;
  std::string peer_client_address(uint64_t id) const override {
    return transport_->client_address(id);
  }
  bool peer_connected(uint64_t id) const override { return transport_->connected(id); }
  void set_peers(const std::map<uint64_t, std::string>& peers) override {
    transport_->set_peers(peers);
  }
  void respond(ConnectionId connection, const clientpb::Response& response) override {
    edge_.count_response(response.code());
    listener_->respond(connection, response);
  }
  void stop() override;
  void run_in_background(std::function<void()> work, std::function<void()> done) override;
  // Every log line of the process carries the term (common/logging.h).
  void term_changed(uint64_t term) override { set_log_term(term); }

  boost::asio::awaitable<void> tick_loop();

  boost::asio::io_context& io_;
  uint32_t tick_ms_;
  std::unique_ptr<storage::DiskLog> log_;
  std::unique_ptr<net::PeerTransport> transport_;
  std::unique_ptr<net::ClientListener> listener_;
  std::unique_ptr<net::HttpServer> http_;  // null without --http-addr
  std::optional<Acl> acl_;  // set when client authentication is on
  std::shared_ptr<const Tokens> tokens_;  // set with token authentication
  EdgeMetrics edge_;
  std::shared_ptr<spdlog::logger> access_logger_;
  boost::asio::steady_timer tick_timer_;
  boost::asio::steady_timer lazy_timer_;
  boost::asio::thread_pool storage_thread_{1};
  // State machine snapshots are serialised and written here, never on the
  // storage thread, whose Ready writes must not wait behind one.
  boost::asio::thread_pool snapshot_thread_{1};
  bool snapshot_on_loop_ = false;
  bool stopped_ = false;
  std::unique_ptr<Node> node_;
  std::unique_ptr<HttpApi> http_api_;  // with http_
};

}  // namespace fencelock::server
