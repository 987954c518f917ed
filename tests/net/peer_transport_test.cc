#include "net/peer_transport.h"

#include <catch2/catch.hpp>

#include <vector>

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
         std::string cluster = "test-cluster") {
    PeerTransportOptions options;
    options.self_id = id;
    options.cluster_id = std::move(cluster);
    options.peer_addresses = addresses;
    options.min_backoff = std::chrono::milliseconds(10);
    options.max_backoff = std::chrono::milliseconds(100);
    options.seed = id;
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

}  // namespace fencelock::net
