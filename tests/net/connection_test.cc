#include "net/connection.h"

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <utility>

#include "proto/raft.pb.h"
#include "tests/net/loop.h"

namespace fencelock::net {
namespace {

using testing::run_until;

// A connected pair on loopback: `ours` for a FramedConnection, `theirs`
// read directly.
std::pair<Tcp::socket, Tcp::socket> connected_pair(boost::asio::io_context& io) {
  Tcp::acceptor acceptor(io, Tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  Tcp::socket ours(io);
  ours.connect(acceptor.local_endpoint());
  Tcp::socket theirs = acceptor.accept();
  theirs.non_blocking(true);
  return {std::move(ours), std::move(theirs)};
}

// Bytes `socket` can read now, without running the io_context.
size_t readable_now(Tcp::socket& socket) {
  std::string buffer(1 << 16, '\0');
  size_t total = 0;
  for (int attempt = 0; attempt < 50; ++attempt) {  // loopback delivery is immediate; retry briefly
    boost::system::error_code ec;
    size_t n = socket.read_some(boost::asio::buffer(buffer), ec);
    if (!ec) {
      total += n;
      continue;
    }
    if (total > 0) break;
  }
  return total;
}

raftpb::Message message_of(uint64_t term) {
  raftpb::Message m;
  m.set_type(raftpb::MSG_HEARTBEAT);
  m.set_term(term);
  return m;
}

size_t frame_size(const raftpb::Message& m) {
  return 4 + m.ByteSizeLong();
}

TEST_CASE("with write_at_once, the first frame of a handler is written before the loop runs again",
          "[net][connection]") {
  boost::asio::io_context io;
  auto [ours, theirs] = connected_pair(io);
  ConnectionOptions options;
  options.write_at_once = true;
  auto connection = std::make_shared<FramedConnection>(std::move(ours), options);
  connection->start([](std::string_view) {}, [](uint64_t) {}, [](const std::string&) {});
  auto first = message_of(1);
  auto second = message_of(2);
  REQUIRE(connection->send(first));
  REQUIRE(connection->send(second));
  // The first went to the socket inside send(); the second waits for the
  // writer, which has not run.
  CHECK(readable_now(theirs) == frame_size(first));
  CHECK(connection->queued_bytes() == frame_size(second));
  REQUIRE(run_until(io, [&] { return connection->queued_bytes() == 0; }));
  CHECK(readable_now(theirs) == frame_size(second));
  connection->stop("test over");
}

TEST_CASE("without write_at_once, frames wait for the writer coroutine", "[net][connection]") {
  boost::asio::io_context io;
  auto [ours, theirs] = connected_pair(io);
  auto connection = std::make_shared<FramedConnection>(std::move(ours), ConnectionOptions{});
  connection->start([](std::string_view) {}, [](uint64_t) {}, [](const std::string&) {});
  auto first = message_of(1);
  REQUIRE(connection->send(first));
  CHECK(readable_now(theirs) == 0);
  REQUIRE(run_until(io, [&] { return connection->queued_bytes() == 0; }));
  CHECK(readable_now(theirs) == frame_size(first));
  connection->stop("test over");
}

}  // namespace
}  // namespace fencelock::net
