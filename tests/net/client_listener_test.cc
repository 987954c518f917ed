#include "net/client_listener.h"

#include <catch2/catch.hpp>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <map>
#include <vector>

#include "common/logging.h"
#include "net/connection.h"
#include "tests/net/loop.h"

namespace fencelock::net {
namespace {

using testing::run_until;

// A listener whose node echoes each request back, answering in reverse order
// of arrival once `batch` requests are pending (to prove responses may go
// out of order and are matched by id).
struct EchoServer {
  explicit EchoServer(boost::asio::io_context& io, ClientListenerOptions options = {}, size_t batch = 1)
      : listener(io, options, get_logger("test")), batch(batch) {
    REQUIRE(listener.listen("127.0.0.1:0").ok());
    listener.start(
        [this](ConnectionId from, const std::string&, clientpb::Request request) {
          pending.emplace_back(from, std::move(request));
          if (pending.size() < this->batch) return;
          for (auto it = pending.rbegin(); it != pending.rend(); ++it) {
            clientpb::Response response;
            response.set_id(it->second.id());
            response.set_message(it->second.acquire().lock());
            listener.respond(it->first, response);
          }
          pending.clear();
        },
        [this](ConnectionId) { ++closed; });
  }
  std::string address() const {
    return "127.0.0.1:" + std::to_string(listener.local_endpoint().port());
  }
  ClientListener listener;
  size_t batch;
  std::vector<std::pair<ConnectionId, clientpb::Request>> pending;
  int closed = 0;
};

// A well-behaved client: framed connection collecting responses.
struct TestClient {
  TestClient(boost::asio::io_context& io, Tcp::endpoint endpoint) {
    Tcp::socket socket(io);
    socket.connect(endpoint);
    connection = std::make_shared<FramedConnection>(std::move(socket), ConnectionOptions{});
    connection->start(
        [this](std::string_view body) {
          clientpb::Response response;
          REQUIRE(response.ParseFromArray(body.data(), static_cast<int>(body.size())));
          responses.push_back(response);
        },
        [](uint64_t) {}, [this](const std::string&) { closed = true; });
  }
  void acquire(uint64_t id, const std::string& lock) {
    clientpb::Request request;
    request.set_id(id);
    request.mutable_acquire()->set_lock(lock);
    REQUIRE(connection->send(request));
  }
  std::shared_ptr<FramedConnection> connection;
  std::vector<clientpb::Response> responses;
  bool closed = false;
};

// A raw socket for misbehaving: writes arbitrary bytes, reads what comes back.
struct RawClient {
  RawClient(boost::asio::io_context& io, Tcp::endpoint endpoint) : socket(io) {
    socket.connect(endpoint);
  }
  void write(std::string_view bytes) { boost::asio::write(socket, boost::asio::buffer(bytes)); }
  // Reads until EOF (the server closed) and decodes every response frame.
  void start_reading() {
    socket.async_read_some(boost::asio::buffer(chunk), [this](auto ec, size_t n) {
      if (ec) {
        eof = true;
        return;
      }
      decoder.feed(std::string_view(chunk, n));
      clientpb::Response response;
      while (decoder.next_message(response) == DecodeStatus::kFrame) responses.push_back(response);
      start_reading();
    });
  }
  Tcp::socket socket;
  char chunk[4096];
  FrameDecoder decoder;
  std::vector<clientpb::Response> responses;
  bool eof = false;
};

}  // namespace

TEST_CASE("pipelined requests are answered by id, possibly out of order", "[net]") {
  boost::asio::io_context io;
  EchoServer server(io, {}, 50);
  TestClient client(io, server.listener.local_endpoint());
  for (uint64_t id = 1; id <= 100; ++id) client.acquire(id, "lock-" + std::to_string(id));
  REQUIRE(run_until(io, [&] { return client.responses.size() == 100; }));
  CHECK(client.responses.front().id() == 50);  // reversed within each batch of 50
  std::map<uint64_t, std::string> by_id;
  for (const auto& response : client.responses) by_id[response.id()] = response.message();
  REQUIRE(by_id.size() == 100);
  for (const auto& [id, lock] : by_id) CHECK(lock == "lock-" + std::to_string(id));
}

TEST_CASE("garbage bytes get MALFORMED_REQUEST and close only that connection", "[net]") {
  boost::asio::io_context io;
  EchoServer server(io);
  TestClient good(io, server.listener.local_endpoint());
  RawClient bad(io, server.listener.local_endpoint());
  bad.start_reading();
  std::string frame;
  REQUIRE(append_frame_body(std::string("\xff\xff\xff\xff\xff\xff", 6), frame));
  bad.write(frame);
  REQUIRE(run_until(io, [&] { return bad.eof; }));
  REQUIRE(bad.responses.size() == 1);
  CHECK(bad.responses[0].code() == lockpb::MALFORMED_REQUEST);

  good.acquire(7, "still-served");
  REQUIRE(run_until(io, [&] { return good.responses.size() == 1; }));
  CHECK(good.responses[0].message() == "still-served");
  CHECK(server.listener.connection_count() == 1);
}

TEST_CASE("an oversized length prefix gets FRAME_TOO_LARGE and a close", "[net]") {
  boost::asio::io_context io;
  ClientListenerOptions options;
  options.max_frame_bytes = 1024;
  EchoServer server(io, options);
  TestClient good(io, server.listener.local_endpoint());
  RawClient bad(io, server.listener.local_endpoint());
  bad.start_reading();
  bad.write(std::string("\x7f\xff\xff\xff", 4));  // ~2 GiB announced, nothing sent
  REQUIRE(run_until(io, [&] { return bad.eof; }));
  REQUIRE(bad.responses.size() == 1);
  CHECK(bad.responses[0].code() == lockpb::FRAME_TOO_LARGE);

  good.acquire(1, "ok");
  REQUIRE(run_until(io, [&] { return good.responses.size() == 1; }));
}

TEST_CASE("a request of unknown kind gets UNKNOWN_REQUEST and a close", "[net]") {
  boost::asio::io_context io;
  EchoServer server(io);
  RawClient bad(io, server.listener.local_endpoint());
  bad.start_reading();
  clientpb::Request request;
  request.set_id(42);
  std::string frame;
  REQUIRE(append_frame(request, frame));
  bad.write(frame);
  REQUIRE(run_until(io, [&] { return bad.eof; }));
  REQUIRE(bad.responses.size() == 1);
  CHECK(bad.responses[0].id() == 42);
  CHECK(bad.responses[0].code() == lockpb::UNKNOWN_REQUEST);
}

TEST_CASE("a half-sent frame does not block other clients", "[net]") {
  boost::asio::io_context io;
  EchoServer server(io);
  RawClient half(io, server.listener.local_endpoint());
  clientpb::Request request;
  request.set_id(1);
  request.mutable_acquire()->set_lock("never finished");
  std::string frame;
  REQUIRE(append_frame(request, frame));
  half.write(std::string_view(frame).substr(0, frame.size() / 2));
  TestClient good(io, server.listener.local_endpoint());
  good.acquire(2, "served");
  REQUIRE(run_until(io, [&] { return good.responses.size() == 1; }));
  CHECK(server.pending.empty());
}

TEST_CASE("requests over the in-flight limit get RESOURCE_EXHAUSTED", "[net]") {
  boost::asio::io_context io;
  ClientListenerOptions options;
  options.max_in_flight = 3;
  EchoServer server(io, options, 1000);  // never answers on its own
  TestClient client(io, server.listener.local_endpoint());
  for (uint64_t id = 1; id <= 5; ++id) client.acquire(id, "x");
  REQUIRE(run_until(io, [&] { return client.responses.size() == 2; }));
  CHECK(client.responses[0].code() == lockpb::RESOURCE_EXHAUSTED);
  CHECK(client.responses[1].id() == 5);
  CHECK(server.pending.size() == 3);
  CHECK_FALSE(client.closed);
}

TEST_CASE("connections past the maximum are refused with RESOURCE_EXHAUSTED", "[net]") {
  boost::asio::io_context io;
  ClientListenerOptions options;
  options.max_connections = 2;
  EchoServer server(io, options);
  TestClient a(io, server.listener.local_endpoint());
  TestClient b(io, server.listener.local_endpoint());
  REQUIRE(run_until(io, [&] { return server.listener.connection_count() == 2; }));
  RawClient c(io, server.listener.local_endpoint());
  c.start_reading();
  REQUIRE(run_until(io, [&] { return c.eof; }));
  REQUIRE(c.responses.size() == 1);
  CHECK(c.responses[0].code() == lockpb::RESOURCE_EXHAUSTED);
  a.acquire(1, "fine");
  REQUIRE(run_until(io, [&] { return a.responses.size() == 1; }));
}

TEST_CASE("an idle connection is closed after the idle timeout", "[net]") {
  boost::asio::io_context io;
  ClientListenerOptions options;
  options.idle_timeout = std::chrono::milliseconds(100);
  EchoServer server(io, options);
  TestClient client(io, server.listener.local_endpoint());
  REQUIRE(run_until(io, [&] { return client.closed; }, std::chrono::seconds(5)));
  CHECK(server.closed == 1);
}

TEST_CASE("a client that stops reading loses its own connection", "[net]") {
  boost::asio::io_context io;
  ClientListenerOptions options;
  options.max_queued_bytes = 256 * 1024;
  EchoServer server(io, options);
  RawClient reader_that_never_reads(io, server.listener.local_endpoint());
  // Pipeline many requests whose echoed responses are large; never read.
  std::string frames;
  for (uint64_t id = 1; id <= 400; ++id) {
    clientpb::Request request;
    request.set_id(id);
    request.mutable_acquire()->set_lock(std::string(60000, 'r'));
    REQUIRE(append_frame(request, frames));
  }
  boost::asio::async_write(reader_that_never_reads.socket, boost::asio::buffer(frames),
                           [](auto, size_t) {});
  REQUIRE(run_until(io, [&] { return server.closed == 1; }, std::chrono::seconds(20)));
  TestClient good(io, server.listener.local_endpoint());
  good.acquire(1, "alive");
  REQUIRE(run_until(io, [&] { return good.responses.size() == 1; }));
}

TEST_CASE("a port in use is a clear UNAVAILABLE error", "[net]") {
  boost::asio::io_context io;
  EchoServer server(io);
  ClientListener second(io, {}, get_logger("test"));
  Status status = second.listen(server.address());
  CHECK(status.code() == lockpb::UNAVAILABLE);
  CHECK_THAT(status.message(), Catch::Contains(server.address()));
  CHECK(second.listen("nonsense").code() == lockpb::INVALID_ARGUMENT);
}

}  // namespace fencelock::net

namespace fencelock::net {

TEST_CASE("a close caused inside respond() reaches the close handler only afterwards", "[net]") {
  // Regression: the node answered waiters while iterating them, and a
  // response that overflowed a connection's queue closed it inside
  // respond(); the close handler then edited the container being iterated.
  boost::asio::io_context io;
  ClientListenerOptions options;
  options.max_queued_bytes = 1024;
  ClientListener listener(io, options, get_logger("test"));
  REQUIRE(listener.listen("127.0.0.1:0").ok());
  std::vector<std::pair<ConnectionId, uint64_t>> pending;
  bool in_respond = false;
  bool closed_inside_respond = false;
  int closed = 0;
  listener.start([&](ConnectionId from, const std::string&, clientpb::Request request) { pending.emplace_back(from, request.id()); },
                 [&](ConnectionId) {
                   closed_inside_respond = closed_inside_respond || in_respond;
                   ++closed;
                 });
  Tcp::socket socket(io);
  socket.connect(listener.local_endpoint());
  clientpb::Request request;
  request.set_id(1);
  request.mutable_describe()->set_lock("x");
  std::string frame;
  REQUIRE(append_frame(request, frame));
  boost::asio::write(socket, boost::asio::buffer(frame));
  REQUIRE(testing::run_until(io, [&] { return pending.size() == 1; }));

  clientpb::Response big;
  big.set_id(1);
  big.set_message(std::string(4096, 'm'));  // over the 1 KiB queue bound: closes the connection
  in_respond = true;
  listener.respond(pending[0].first, big);
  in_respond = false;
  REQUIRE(testing::run_until(io, [&] { return closed == 1; }));
  CHECK_FALSE(closed_inside_respond);
  CHECK(listener.connection_count() == 0);
}

}  // namespace fencelock::net

namespace fencelock::net {

TEST_CASE("an answer too large for one frame becomes RESOURCE_EXHAUSTED for its request", "[net]") {
  // Regression: respond() handed the connection an answer over the maximum
  // frame, send() refused it, and the request was never answered: the caller
  // waited for its own deadline with no word of why.
  boost::asio::io_context io;
  ClientListenerOptions options;
  options.max_frame_bytes = 1024;
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(16);
  auto logger = std::make_shared<spdlog::logger>("oversized-answer-test", sink);
  logger->set_level(spdlog::level::debug);
  ClientListener listener(io, options, logger);
  REQUIRE(listener.listen("127.0.0.1:0").ok());
  size_t big_bytes = 0;
  listener.start(
      [&](ConnectionId from, const std::string&, clientpb::Request request) {
        clientpb::Response response;
        response.set_id(request.id());
        // Request 7 asks for more than a frame holds (a listing of many locks).
        response.set_message(request.id() == 7 ? std::string(4096, 'l') : "small");
        if (request.id() == 7) big_bytes = response.ByteSizeLong();
        listener.respond(from, response);
      },
      [](ConnectionId) {});
  TestClient client(io, listener.local_endpoint());
  client.acquire(7, "big");
  client.acquire(8, "small");
  auto answered_8 = [&] { return !client.responses.empty() && client.responses.back().id() == 8; };
  REQUIRE(run_until(io, answered_8));

  REQUIRE(client.responses.size() == 2);
  const clientpb::Response& error = client.responses[0];
  CHECK(error.id() == 7);
  CHECK(error.code() == lockpb::RESOURCE_EXHAUSTED);
  CHECK_THAT(error.message(), Catch::Contains(std::to_string(big_bytes)));
  CHECK_THAT(error.message(), Catch::Contains("1024"));
  CHECK_THAT(error.message(), Catch::Contains("smaller page"));
  CHECK(client.responses[1].code() == lockpb::OK);
  CHECK(client.responses[1].message() == "small");
  CHECK_FALSE(client.closed);
  CHECK(listener.connection_count() == 1);

  bool warned = false;
  for (const auto& line : sink->last_raw()) {
    std::string text(line.payload.data(), line.payload.size());
    if (line.level == spdlog::level::warn && text.find("connection 1") != std::string::npos &&
        text.find(std::to_string(big_bytes)) != std::string::npos) {
      warned = true;
    }
  }
  CHECK(warned);
}

}  // namespace fencelock::net
