#include "net/peer_transport.h"

#include <spdlog/spdlog.h>

#include "net/address.h"
#include "proto/peer.pb.h"

namespace fencelock::net {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;

struct PeerTransport::Peer {
  Peer(asio::io_context& io, uint64_t id, std::string address)
      : id(id), address(std::move(address)), wake(io) {}
  uint64_t id;
  std::string address;
  std::shared_ptr<FramedConnection> connection;  // set once Hello is accepted
  asio::steady_timer wake;                       // cancelled when the connection closes
  bool accepted = false;
  bool removed = false;  // no longer a member: the dial loop ends
};

PeerTransport::PeerTransport(asio::io_context& io, PeerTransportOptions options,
                             std::shared_ptr<spdlog::logger> logger)
    : io_(io),
      options_(std::move(options)),
      logger_(std::move(logger)),
      acceptor_(io),
      rng_(options_.seed) {
  for (const auto& [id, address] : options_.peer_addresses) {
    if (id == options_.self_id) continue;
    peers_.emplace(id, std::make_shared<Peer>(io_, id, address));
  }
}

PeerTransport::~PeerTransport() {
  stop();
  *alive_ = false;
}

Status PeerTransport::listen(const std::string& address) {
  return listen_on(acceptor_, address, "peer");
}

Tcp::endpoint PeerTransport::local_endpoint() const {
  boost::system::error_code ec;
  return acceptor_.local_endpoint(ec);
}

void PeerTransport::start(MessageHandler on_message, StatusHandler on_status) {
  on_message_ = std::move(on_message);
  on_status_ = std::move(on_status);
  started_ = true;
  if (acceptor_.is_open()) {
    asio::co_spawn(io_, accept_loop(alive_), asio::detached);
  }
  for (auto& [id, peer] : peers_) {
    asio::co_spawn(io_, dial_loop(peer, alive_), asio::detached);
  }
}

bool PeerTransport::send(const raftpb::Message& message) {
  auto it = peers_.find(message.to());
  if (it == peers_.end()) return false;
  Peer& peer = *it->second;
  if (!peer.accepted || !peer.connection || !peer.connection->open()) return false;
  if (peer.connection->queued_bytes() > options_.max_queued_bytes) return false;
  peerpb::PeerEnvelope envelope;
  *envelope.mutable_raft() = message;
  return peer.connection->send(envelope);
}

void PeerTransport::set_peers(const std::map<uint64_t, std::string>& peer_addresses) {
  for (auto it = peers_.begin(); it != peers_.end();) {
    auto wanted = peer_addresses.find(it->first);
    if (wanted != peer_addresses.end() && wanted->second == it->second->address) {
      ++it;
      continue;
    }
    logger_->info("{} forgets peer {} at {}", options_.self_id, it->first, it->second->address);
    it->second->removed = true;
    if (it->second->connection) it->second->connection->stop("no longer a member");
    it->second->wake.cancel();
    it = peers_.erase(it);
  }
  for (const auto& [id, address] : peer_addresses) {
    if (id == options_.self_id || peers_.contains(id)) continue;
    logger_->info("{} adds peer {} at {}", options_.self_id, id, address);
    auto peer = std::make_shared<Peer>(io_, id, address);
    peers_.emplace(id, peer);
    if (started_ && !stopped_) asio::co_spawn(io_, dial_loop(peer, alive_), asio::detached);
  }
}

bool PeerTransport::connected(uint64_t peer) const {
  auto it = peers_.find(peer);
  return it != peers_.end() && it->second->accepted && it->second->connection &&
         it->second->connection->open();
}

std::string PeerTransport::client_address(uint64_t peer) const {
  auto it = client_addresses_.find(peer);
  return it == client_addresses_.end() ? std::string() : it->second;
}

void PeerTransport::stop() {
  if (stopped_) return;
  stopped_ = true;
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  for (auto& [id, peer] : peers_) {
    if (peer->connection) peer->connection->stop("transport stopped");
    peer->wake.cancel();
  }
  auto inbound = std::move(inbound_);
  for (auto& [key, connection] : inbound) connection->stop("transport stopped");
}

std::chrono::milliseconds PeerTransport::backoff(int attempt) {
  auto base = options_.min_backoff.count();
  for (int i = 0; i < attempt && base < options_.max_backoff.count(); ++i) base *= 2;
  base = std::min<int64_t>(base, options_.max_backoff.count());
  // Full jitter in [base/2, base]: peers that lost each other at the same
  // moment do not redial in lockstep.
  int64_t jitter = static_cast<int64_t>(rng_() % static_cast<uint64_t>(base / 2 + 1));
  return std::chrono::milliseconds(base - jitter);
}

awaitable<void> PeerTransport::accept_loop(std::shared_ptr<bool> alive) {
  while (!stopped_) {
    boost::system::error_code ec;
    Tcp::socket socket = co_await acceptor_.async_accept(asio::redirect_error(use_awaitable, ec));
    if (!*alive) co_return;
    if (ec) {
      if (stopped_ || ec == asio::error::operation_aborted) co_return;
      logger_->warn("{} peer accept failed: {}", options_.self_id, ec.message());
      continue;
    }
    ConnectionOptions connection_options;
    connection_options.max_frame_bytes = options_.max_frame_bytes;
    connection_options.max_queued_bytes = options_.max_queued_bytes * 2;
    connection_options.write_at_once = true;
    on_inbound(std::make_shared<FramedConnection>(std::move(socket), connection_options));
  }
}

void PeerTransport::on_inbound(std::shared_ptr<FramedConnection> connection) {
  uint64_t key = next_inbound_++;
  inbound_.emplace(key, connection);
  // The peer id is learned from the Hello; 0 until then.
  auto from = std::make_shared<uint64_t>(0);
  FramedConnection* raw = connection.get();
  connection->start(
      [this, raw, from](std::string_view body) {
        peerpb::PeerEnvelope envelope;
        if (!envelope.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
          logger_->warn("{} dropped peer connection from {}: malformed frame", options_.self_id,
                        raw->remote());
          raw->stop("malformed peer frame");
          return;
        }
        if (*from == 0) {
          peerpb::PeerEnvelope ack;
          auto* hello_ack = ack.mutable_hello_ack();
          std::string reason;
          if (!envelope.has_hello()) {
            reason = "first frame is not a Hello";
          } else if (envelope.hello().cluster_id() != options_.cluster_id) {
            reason = "cluster id '" + envelope.hello().cluster_id() + "' is not this cluster's '" +
                     options_.cluster_id + "'";
          } else if (envelope.hello().to() != options_.self_id) {
            reason = "this is node " + std::to_string(options_.self_id) + ", not node " +
                     std::to_string(envelope.hello().to());
          } else if (!peers_.contains(envelope.hello().from())) {
            reason = "node " + std::to_string(envelope.hello().from()) + " is not a member";
          }
          hello_ack->set_accepted(reason.empty());
          hello_ack->set_reason(reason);
          raw->send(ack);
          if (!reason.empty()) {
            logger_->error("{} refused peer connection from {}: {}", options_.self_id,
                           raw->remote(), reason);
            raw->close_after_flush(reason);
            return;
          }
          *from = envelope.hello().from();
          client_addresses_[*from] = envelope.hello().client_address();
          return;
        }
        if (!envelope.has_raft() || envelope.raft().from() != *from ||
            envelope.raft().to() != options_.self_id) {
          logger_->warn("{} dropped peer connection from node {}: unexpected message",
                        options_.self_id, *from);
          raw->stop("unexpected peer message");
          return;
        }
        if (on_message_) on_message_(std::move(*envelope.mutable_raft()));
      },
      [this, raw](uint64_t length) {
        logger_->warn("{} peer {} sent a frame of {} bytes, over the maximum", options_.self_id,
                      raw->remote(), length);
      },
      [this, key](const std::string&) { inbound_.erase(key); });
}

awaitable<void> PeerTransport::dial_loop(std::shared_ptr<Peer> peer, std::shared_ptr<bool> alive) {
  int attempt = 0;
  asio::steady_timer timer(io_);
  Tcp::resolver resolver(io_);
  while (!stopped_ && !peer->removed) {
    std::string host;
    uint16_t port = 0;
    if (!split_host_port(peer->address, host, port)) {
      logger_->error("{} peer {} address '{}' is not host:port", options_.self_id, peer->id,
                     peer->address);
      co_return;
    }
    boost::system::error_code ec;
    auto endpoints = co_await resolver.async_resolve(host, std::to_string(port),
                                                     asio::redirect_error(use_awaitable, ec));
    if (!*alive) co_return;
    Tcp::socket socket(io_);
    if (!ec) {
      // Boost 1.74 has no per-operation cancellation: the timeout closes the socket.
      asio::steady_timer deadline(io_);
      deadline.expires_after(options_.connect_timeout);
      deadline.async_wait([&socket](boost::system::error_code wait_ec) {
        if (!wait_ec) socket.close();
      });
      co_await asio::async_connect(socket, endpoints, asio::redirect_error(use_awaitable, ec));
      if (!*alive) co_return;
      deadline.cancel();
      if (!ec && !socket.is_open()) ec = asio::error::timed_out;
    }
    if (stopped_) co_return;
    if (!ec) {
      ConnectionOptions connection_options;
      connection_options.max_frame_bytes = options_.max_frame_bytes;
      connection_options.max_queued_bytes = options_.max_queued_bytes * 2;
      connection_options.write_at_once = true;
      auto connection = std::make_shared<FramedConnection>(std::move(socket), connection_options);
      peer->connection = connection;
      peer->accepted = false;
      peer->wake.expires_at(std::chrono::steady_clock::time_point::max());
      FramedConnection* raw = connection.get();
      // The handlers live inside the connection, which the peer owns: they
      // hold the peer weakly to make no cycle.
      std::weak_ptr<Peer> weak_peer = peer;
      auto refused = std::make_shared<bool>(false);
      connection->start(
          [this, weak_peer, raw, refused](std::string_view body) {
            auto peer = weak_peer.lock();
            if (!peer) return;
            peerpb::PeerEnvelope envelope;
            if (!envelope.ParseFromArray(body.data(), static_cast<int>(body.size())) ||
                !envelope.has_hello_ack()) {
              raw->stop("unexpected frame from peer");
              return;
            }
            if (!envelope.hello_ack().accepted()) {
              logger_->error("{} peer {} refused our connection: {}", options_.self_id, peer->id,
                             envelope.hello_ack().reason());
              *refused = true;
              raw->stop("refused");
              return;
            }
            peer->accepted = true;
            logger_->info("{} connected to peer {} at {}", options_.self_id, peer->id,
                          peer->address);
            if (on_status_) on_status_(peer->id, true);
          },
          [](uint64_t) {},
          [this, weak_peer](const std::string& reason) {
            auto peer = weak_peer.lock();
            if (!peer) return;
            if (peer->accepted) {
              logger_->info("{} lost peer {}: {}", options_.self_id, peer->id, reason);
              if (on_status_) on_status_(peer->id, false);
            }
            peer->accepted = false;
            peer->wake.cancel();
          });
      peerpb::PeerEnvelope hello;
      hello.mutable_hello()->set_cluster_id(options_.cluster_id);
      hello.mutable_hello()->set_from(options_.self_id);
      hello.mutable_hello()->set_to(peer->id);
      hello.mutable_hello()->set_client_address(options_.self_client_address);
      connection->send(hello);
      // Wait until the connection closes.
      while (connection->open() && !stopped_) {
        boost::system::error_code wait_ec;
        co_await peer->wake.async_wait(asio::redirect_error(use_awaitable, wait_ec));
        if (!*alive) co_return;
      }
      peer->connection.reset();
      if (peer->removed) co_return;
      // A refusal is a configuration error: retry, but slowly.
      attempt = *refused ? std::max(attempt + 1, 5) : 0;
    } else {
      ++attempt;
    }
    if (stopped_ || peer->removed) co_return;
    timer.expires_after(backoff(attempt));
    boost::system::error_code wait_ec;
    co_await timer.async_wait(asio::redirect_error(use_awaitable, wait_ec));
    if (!*alive) co_return;
  }
}

}  // namespace fencelock::net
