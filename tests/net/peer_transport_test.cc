#include "net/peer_transport.h"

#include <catch2/catch.hpp>

#include <vector>

#include "net/frame.h"
#include "proto/peer.pb.h"

#include "common/logging.h"
#include "tests/net/loop.h"

namespace fencelock::net {
namespace {

using testing::run_until;

uint16_t free_port(boost::asio::io_context& io) {
  Tcp::acceptor probe(io, Tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  return probe.local_endpoint().port();
}

struct Member {
  Member(boost::asio::io_context& io, uint64_t id, std::map<uint64_t, std::string> addresses,
         std::string cluster = "test-cluster",
         std::function<void(PeerTransportOptions&)> tweak = nullptr) {
    PeerTransportOptions options;
    options.self_id = id;
    options.cluster_id = std::move(cluster);
    options.peer_addresses = addresses;
    options.self_client_address = "127.0.0.1:" + std::to_string(7000 + id);
    options.min_backoff = std::chrono::milliseconds(10);
    options.max_backoff = std::chrono::milliseconds(100);
    options.seed = id;
    if (tweak) tweak(options);
    transport = std::make_unique<PeerTransport>(io, options, get_logger("test"));
    REQUIRE(transport->listen(addresses.at(id)).ok());
    transport->start([this](raftpb::Message message) { received.push_back(std::move(message)); },
                     [](uint64_t, bool) {});
  }
  std::unique_ptr<PeerTransport> transport;
  std::vector<raftpb::Message> received;
};

raftpb::Message heartbeat(uint64_t from, uint64_t to, uint64_t term) {
  raftpb::Message message;
  message.set_type(raftpb::MSG_HEARTBEAT);
  message.set_from(from);
  message.set_to(to);
  message.set_term(term);
  return message;
}

}  // namespace

TEST_CASE("peers connect, exchange messages in order, and reconnect after a restart", "[net]") {
  boost::asio::io_context io;
  std::map<uint64_t, std::string> addresses = {
      {1, "127.0.0.1:" + std::to_string(free_port(io))},
      {2, "127.0.0.1:" + std::to_string(free_port(io))}};
  Member one(io, 1, addresses);
  auto two = std::make_unique<Member>(io, 2, addresses);
  REQUIRE(run_until(io, [&] { return one.transport->connected(2) && two->transport->connected(1); }));

  for (uint64_t term = 1; term <= 100; ++term) REQUIRE(one.transport->send(heartbeat(1, 2, term)));
  REQUIRE(run_until(io, [&] { return two->received.size() == 100; }));
  for (uint64_t i = 0; i < 100; ++i) CHECK(two->received[i].term() == i + 1);

  // Node 2 goes away: sends to it are dropped, never block.
  two.reset();
  REQUIRE(run_until(io, [&] { return !one.transport->connected(2); }));
  CHECK_FALSE(one.transport->send(heartbeat(1, 2, 500)));

  // Node 2 comes back on the same address: node 1 redials on its own.
  two = std::make_unique<Member>(io, 2, addresses);
  REQUIRE(run_until(io, [&] { return one.transport->connected(2); }));
  REQUIRE(one.transport->send(heartbeat(1, 2, 501)));
  REQUIRE(run_until(io, [&] { return two->received.size() == 1; }));
  CHECK(two->received[0].term() == 501);
}

TEST_CASE("a node of another cluster is refused", "[net]") {
  boost::asio::io_context io;
  std::map<uint64_t, std::string> addresses = {
      {1, "127.0.0.1:" + std::to_string(free_port(io))},
      {2, "127.0.0.1:" + std::to_string(free_port(io))}};
  Member one(io, 1, addresses, "cluster-a");
  Member two(io, 2, addresses, "cluster-b");
  // Give both sides time to dial and be refused at least once.
  io.restart();
  io.run_for(std::chrono::milliseconds(300));
  CHECK_FALSE(one.transport->connected(2));
  CHECK_FALSE(two.transport->connected(1));
  CHECK_FALSE(one.transport->send(heartbeat(1, 2, 1)));
  CHECK(two.received.empty());
}

TEST_CASE("a message to an unknown peer is dropped", "[net]") {
  boost::asio::io_context io;
  std::map<uint64_t, std::string> addresses = {{1, "127.0.0.1:" + std::to_string(free_port(io))}};
  Member one(io, 1, addresses);
  CHECK_FALSE(one.transport->send(heartbeat(1, 9, 1)));
}

namespace {

// A raw socket to `address` that sends a Hello claiming node `from`.
std::unique_ptr<Tcp::socket> hello_from(boost::asio::io_context& io, const std::string& address,
                                        uint64_t from, uint64_t to,
                                        const std::string& client_address = "") {
  auto socket = std::make_unique<Tcp::socket>(io);
  auto port = static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
  socket->connect(Tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
  peerpb::PeerEnvelope envelope;
  envelope.mutable_hello()->set_cluster_id("test-cluster");
  envelope.mutable_hello()->set_from(from);
  envelope.mutable_hello()->set_to(to);
  envelope.mutable_hello()->set_client_address(client_address);
  std::string frame;
  REQUIRE(append_frame(envelope, frame));
  boost::asio::write(*socket, boost::asio::buffer(frame));
  return socket;
}

}  // namespace

TEST_CASE("an idle link stays up past the acceptor's idle timeout: the dialer sends keepalives",
          "[net][peer_port]") {
  boost::asio::io_context io;
  std::map<uint64_t, std::string> addresses = {
      {1, "127.0.0.1:" + std::to_string(free_port(io))},
      {2, "127.0.0.1:" + std::to_string(free_port(io))}};
  auto short_idle = [](PeerTransportOptions& o) { o.idle_timeout = std::chrono::milliseconds(600); };
  Member one(io, 1, addresses, "test-cluster", short_idle);
  Member two(io, 2, addresses, "test-cluster", short_idle);
  REQUIRE(run_until(io, [&] { return one.transport->connected(2) && two.transport->connected(1); }));
  // Nothing but keepalives for four idle timeouts.
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(2400);
  bool stayed = true;
  run_until(io, [&] {
    stayed = stayed && one.transport->connected(2) && two.transport->connected(1) &&
             one.transport->inbound_connections() == 1;
    return std::chrono::steady_clock::now() >= until;
  });
  CHECK(stayed);
  CHECK(one.transport->connection_stats().replaced == 0);
  // Each learned the other's client address from its own connection's HelloAck.
  CHECK(one.transport->client_address(2) == "127.0.0.1:7002");
  CHECK(two.transport->client_address(1) == "127.0.0.1:7001");
}

TEST_CASE(
    "an inbound Hello never sets a client address; a member's third connection closes its oldest",
    "[net][peer_port]") {
  boost::asio::io_context io;
  std::map<uint64_t, std::string> addresses = {
      {1, "127.0.0.1:" + std::to_string(free_port(io))},
      {2, "127.0.0.1:" + std::to_string(free_port(io))},
      {3, "127.0.0.1:" + std::to_string(free_port(io))}};
  Member one(io, 1, addresses);
  // Nodes 2 and 3 never run: their connections are impostors'.
  auto first = hello_from(io, addresses.at(1), 2, 1, "10.9.9.9:1");
  REQUIRE(run_until(io, [&] { return one.transport->inbound_connections() == 1; }));
  auto second = hello_from(io, addresses.at(1), 2, 1, "10.9.9.9:2");
  REQUIRE(run_until(io, [&] { return one.transport->inbound_connections() == 2; }));
  CHECK(one.transport->connection_stats().replaced == 0);
  auto third = hello_from(io, addresses.at(1), 2, 1, "10.9.9.9:3");
  REQUIRE(run_until(io, [&] { return one.transport->connection_stats().replaced == 1; }));
  REQUIRE(run_until(io, [&] { return one.transport->inbound_connections() == 2; }));
  CHECK(one.transport->client_address(2).empty());
  CHECK(one.transport->client_address(3).empty());
}

TEST_CASE("inbound limits: the handshake cap, the frame limit before Hello, the Hello deadline",
          "[net][peer_port]") {
  boost::asio::io_context io;
  std::map<uint64_t, std::string> addresses = {
      {1, "127.0.0.1:" + std::to_string(free_port(io))},
      {2, "127.0.0.1:" + std::to_string(free_port(io))}};
  Member one(io, 1, addresses, "test-cluster", [](PeerTransportOptions& o) {
    o.max_handshaking = 3;
    o.handshake_timeout = std::chrono::milliseconds(300);
  });
  auto port = static_cast<uint16_t>(std::stoi(addresses.at(1).substr(addresses.at(1).rfind(':') + 1)));
  Tcp::endpoint endpoint(boost::asio::ip::make_address("127.0.0.1"), port);
  std::vector<std::unique_ptr<Tcp::socket>> silent;
  for (int i = 0; i < 5; ++i) {
    silent.push_back(std::make_unique<Tcp::socket>(io));
    silent.back()->connect(endpoint);
  }
  REQUIRE(run_until(io, [&] { return one.transport->connection_stats().over_cap == 2; }));
  CHECK(one.transport->inbound_connections() == 3);
  // The three left give up at the deadline.
  REQUIRE(run_until(io, [&] { return one.transport->connection_stats().handshake_timeouts == 3; }));
  REQUIRE(run_until(io, [&] { return one.transport->inbound_connections() == 0; }));

  // A frame over 4 KiB before the Hello closes the connection.
  Tcp::socket large(io);
  large.connect(endpoint);
  const uint32_t length = 5000;
  std::string frame = {static_cast<char>(length >> 24), static_cast<char>(length >> 16),
                       static_cast<char>(length >> 8), static_cast<char>(length)};
  boost::asio::write(large, boost::asio::buffer(frame));
  REQUIRE(run_until(io, [&] { return one.transport->connection_stats().oversized_before_hello == 1; }));
  CHECK(one.transport->connection_stats().handshake_timeouts == 3);
}

}  // namespace fencelock::net
