// net::HttpServer on loopback, spoken to with raw bytes: routing of path
// and query, HEAD, keep-alive, and the refusals of what it does not serve
// (other methods, bodies, oversized headers, garbage).

#include "net/http_server.h"

#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <thread>

#include "common/logging.h"

namespace fencelock::net {
namespace {

// A server answering every GET with the path and query it saw, on a loop
// of its own thread.
struct EchoHttp {
  EchoHttp() : server(io, HttpServerOptions{}, get_logger("test")) {
    REQUIRE(server.listen("127.0.0.1:0").ok());
    server.start([](const HttpRequest& request) {
      HttpResponse response;
      response.body = request.method + " " + request.path;
      for (const auto& [key, value] : request.query) response.body += " " + key + "=" + value;
      response.headers["X-Test"] = "yes";
      return response;
    });
    thread = std::thread([this] { io.run(); });
  }
  ~EchoHttp() {
    boost::asio::post(io, [this] { server.stop(); });
    io.stop();
    thread.join();
  }
  // Sends `bytes` and reads until the server closes (at most 5 s).
  std::string exchange(const std::string& bytes) {
    boost::asio::io_context client_io;
    Tcp::socket socket(client_io);
    socket.connect(Tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"),
                                 server.local_endpoint().port()));
    timeval timeout{5, 0};
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    boost::asio::write(socket, boost::asio::buffer(bytes));
    std::string out;
    char buffer[4096];
    // recv itself, so that SO_RCVTIMEO bounds the wait (Asio's blocking
    // read would poll again).
    while (true) {
      ssize_t n = ::recv(socket.native_handle(), buffer, sizeof buffer, 0);
      if (n <= 0) break;
      out.append(buffer, static_cast<size_t>(n));
    }
    return out;
  }
  boost::asio::io_context io;
  HttpServer server;
  std::thread thread;
};

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("http: a GET is routed with its decoded path and query", "[http]") {
  EchoHttp http;
  std::string answer = http.exchange(
      "GET /v1/locks?prefix=jobs%2Fa&limit=5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  INFO(answer);
  CHECK(answer.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(contains(answer, "X-Test: yes\r\n"));
  CHECK(contains(answer, "Server: fencelockd\r\n"));
  CHECK(contains(answer, "\r\n\r\nGET /v1/locks limit=5 prefix=jobs/a"));
}

TEST_CASE("http: HEAD gets the headers and length of a GET, without the body", "[http]") {
  EchoHttp http;
  std::string answer = http.exchange("HEAD /abc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  INFO(answer);
  CHECK(answer.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(contains(answer, "Content-Length: 9\r\n"));  // "HEAD /abc"
  CHECK(answer.ends_with("\r\n\r\n"));
}

TEST_CASE("http: two requests on one connection are both answered (keep-alive)", "[http]") {
  EchoHttp http;
  std::string answer = http.exchange(
      "GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  INFO(answer);
  CHECK(contains(answer, "GET /one"));
  CHECK(contains(answer, "GET /two"));
}

TEST_CASE("http: what is not served is refused with the status that says why", "[http]") {
  EchoHttp http;
  SECTION("another method: 405 naming the allowed ones") {
    std::string answer = http.exchange("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    INFO(answer);
    CHECK(answer.starts_with("HTTP/1.1 405 "));
    CHECK(contains(answer, "Allow: GET, HEAD\r\n"));
  }
  SECTION("a body: 413") {
    std::string answer = http.exchange("GET /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    INFO(answer);
    CHECK(answer.starts_with("HTTP/1.1 413 "));
  }
  SECTION("headers over 16 KiB: 431") {
    std::string answer = http.exchange("GET /x HTTP/1.1\r\nHost: x\r\nX-Big: " +
                                       std::string(20000, 'a') + "\r\n\r\n");
    INFO(answer.substr(0, 200));
    CHECK(answer.starts_with("HTTP/1.1 431 "));
  }
  SECTION("garbage: 400") {
    std::string answer = http.exchange("HELLO THERE\r\n\r\n");
    INFO(answer);
    CHECK(answer.starts_with("HTTP/1.1 400 "));
  }
  SECTION("a malformed escape in the target: 400") {
    std::string answer = http.exchange("GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n");
    INFO(answer);
    CHECK(answer.starts_with("HTTP/1.1 400 "));
    CHECK(contains(answer, "malformed request target"));
  }
  // The server still serves afterwards.
  CHECK(http.exchange("GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .starts_with("HTTP/1.1 200 OK"));
}

TEST_CASE("http: url_decode", "[http]") {
  std::string out;
  CHECK(url_decode("a%2Fb%20c+d", out));
  CHECK(out == "a/b c+d");
  CHECK_FALSE(url_decode("%2", out));
  CHECK_FALSE(url_decode("%g0", out));
  CHECK(url_decode("", out));
  CHECK(out.empty());
}

}  // namespace fencelock::net
