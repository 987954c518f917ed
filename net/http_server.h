#pragma once
// HttpServer: a small HTTP/1.1 server on Boost.Beast for a node's
// operations port (/metrics, /healthz, /readyz, /v1/..., the operator
// page; server/http_api.h decides what each path answers).
//
// It serves GET and HEAD only, one request at a time per connection with
// keep-alive; headers are bounded (max_header_bytes) and a body is refused
// (413), a connection idle for idle_timeout is closed, and at most
// max_connections are open at once. With TLS (options.tls) a connection is
// served once its handshake is done; a client certificate, when the
// context asks for one, gives the request its principal.
//
// Thread-safety: not thread-safe; every method and the handler run on the
// thread running the io_context.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/status.h"
#include "net/asio.h"
#include "net/tls.h"

namespace spdlog {
class logger;
}

namespace fencelock::net {

struct HttpRequest {
  std::string method;  // "GET" or "HEAD"
  std::string path;    // decoded, without the query
  std::map<std::string, std::string> query;  // decoded parameters
  std::string authorization;                 // the Authorization header, if any
  std::string principal;  // the client certificate's (principal_of), or ""
};

struct HttpResponse {
  unsigned status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::map<std::string, std::string> headers;  // extra ones
};

struct HttpServerOptions {
  std::shared_ptr<TlsContext> tls;  // null: plain HTTP
  size_t max_connections = 64;
  size_t max_header_bytes = 16 * 1024;
  std::chrono::milliseconds idle_timeout{60'000};
  std::chrono::milliseconds handshake_timeout{5000};
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  HttpServer(boost::asio::io_context& io, HttpServerOptions options,
             std::shared_ptr<spdlog::logger> logger);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds `address` ("ip:port"); errors as net::listen_on.
  Status listen(const std::string& address);
  Tcp::endpoint local_endpoint() const;
  void start(Handler handler);
  // Closes the listener and every connection. Idempotent.
  void stop();

 private:
  struct Connection;
  boost::asio::awaitable<void> accept_loop(std::shared_ptr<bool> alive);
  boost::asio::awaitable<void> serve(Tcp::socket socket, std::shared_ptr<bool> alive);
  template <class AsyncStream>
  boost::asio::awaitable<void> serve_requests(AsyncStream& stream, Connection& connection,
                                              const std::string& principal,
                                              std::shared_ptr<bool> alive);

  boost::asio::io_context& io_;
  HttpServerOptions options_;
  std::shared_ptr<spdlog::logger> logger_;
  Tcp::acceptor acceptor_;
  Handler handler_;
  size_t connections_ = 0;
  uint64_t next_id_ = 1;
  std::map<uint64_t, Connection*> open_;  // to close them on stop()
  bool stopped_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// "a%2Fb" -> "a/b"; '+' stays '+'. False on a malformed escape.
bool url_decode(std::string_view in, std::string& out);

}  // namespace fencelock::net
