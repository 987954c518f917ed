#include "net/http_server.h"

#include <spdlog/spdlog.h>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "net/address.h"

namespace fencelock::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::awaitable;
using asio::use_awaitable;

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Splits a request target into its decoded path and query parameters.
bool parse_target(std::string_view target, std::string& path,
                  std::map<std::string, std::string>& query) {
  const size_t question = target.find('?');
  if (!url_decode(target.substr(0, question), path) || path.empty() || path[0] != '/') {
    return false;
  }
  if (question == std::string_view::npos) return true;
  std::string_view rest = target.substr(question + 1);
  while (!rest.empty()) {
    const size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (pair.empty()) continue;
    const size_t equals = pair.find('=');
    std::string key;
    std::string value;
    if (!url_decode(pair.substr(0, equals), key)) return false;
    if (equals != std::string_view::npos && !url_decode(pair.substr(equals + 1), value)) {
      return false;
    }
    query[key] = value;
  }
  return true;
}

HttpResponse error_response(unsigned status, std::string message) {
  HttpResponse response;
  response.status = status;
  response.body = std::move(message) + "\n";
  return response;
}

}  // namespace

bool url_decode(std::string_view in, std::string& out) {
  out.clear();
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    const int high = hex_value(in[i + 1]);
    const int low = hex_value(in[i + 2]);
    if (high < 0 || low < 0) return false;
    out.push_back(static_cast<char>(high * 16 + low));
    i += 2;
  }
  return true;
}

struct HttpServer::Connection {
  explicit Connection(asio::io_context& io) : idle(io) {}
  Tcp::socket* socket = nullptr;  // the TCP socket underneath, to close it
  asio::steady_timer idle;
};

HttpServer::HttpServer(asio::io_context& io, HttpServerOptions options,
                       std::shared_ptr<spdlog::logger> logger)
    : io_(io), options_(std::move(options)), logger_(std::move(logger)), acceptor_(io) {}

HttpServer::~HttpServer() {
  stop();
  *alive_ = false;
}

Status HttpServer::listen(const std::string& address) {
  return listen_on(acceptor_, address, "HTTP");
}

Tcp::endpoint HttpServer::local_endpoint() const {
  boost::system::error_code ec;
  return acceptor_.local_endpoint(ec);
}

void HttpServer::start(Handler handler) {
  handler_ = std::move(handler);
  asio::co_spawn(io_, accept_loop(alive_), asio::detached);
}

void HttpServer::stop() {
  if (stopped_) return;
  stopped_ = true;
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  for (auto& [id, connection] : open_) {
    if (connection->socket != nullptr) connection->socket->close(ignored);
    connection->idle.cancel();
  }
}

awaitable<void> HttpServer::accept_loop(std::shared_ptr<bool> alive) {
  while (!stopped_) {
    boost::system::error_code ec;
    Tcp::socket socket = co_await acceptor_.async_accept(asio::redirect_error(use_awaitable, ec));
    if (!*alive) co_return;
    if (ec) {
      if (stopped_ || ec == asio::error::operation_aborted) co_return;
      logger_->warn("HTTP accept failed: {}", ec.message());
      asio::steady_timer pause(io_);
      pause.expires_after(std::chrono::milliseconds(50));
      co_await pause.async_wait(asio::redirect_error(use_awaitable, ec));
      if (!*alive) co_return;
      continue;
    }
    if (connections_ >= options_.max_connections) {
      logger_->warn("refused an HTTP connection from {}: {} open (the maximum)",
                    remote_text(socket), options_.max_connections);
      socket.close(ec);
      continue;
    }
    asio::co_spawn(io_, serve(std::move(socket), alive), asio::detached);
  }
}

awaitable<void> HttpServer::serve(Tcp::socket socket, std::shared_ptr<bool> alive) {
  ++connections_;
  const uint64_t id = next_id_++;
  Connection connection(io_);
  open_[id] = &connection;
  // Runs however the coroutine ends; the server may be gone by then.
  struct Done {
    HttpServer* server;
    uint64_t id;
    std::shared_ptr<bool> alive;
    ~Done() {
      if (!*alive) return;
      --server->connections_;
      server->open_.erase(id);
    }
  } done{this, id, alive};
  boost::system::error_code ignored;
  socket.set_option(Tcp::no_delay(true), ignored);
  if (!options_.tls) {
    connection.socket = &socket;
    co_await serve_requests(socket, connection, "", alive);
    co_return;
  }
  std::string remote = remote_text(socket);
  std::string error;
  auto tls = co_await handshake(std::move(socket), *options_.tls, options_.handshake_timeout, "",
                                error);
  if (!*alive || stopped_) co_return;
  if (!tls) {
    logger_->info("HTTPS connection from {} refused: {}", remote, error);
    co_return;
  }
  connection.socket = &tls->next_layer();
  co_await serve_requests(*tls, connection, principal_of(peer_names(*tls)), alive);
}

template <class AsyncStream>
awaitable<void> HttpServer::serve_requests(AsyncStream& stream, Connection& connection,
                                           const std::string& principal,
                                           std::shared_ptr<bool> alive) {
  beast::flat_buffer buffer;
  while (true) {
    connection.idle.expires_after(options_.idle_timeout);
    connection.idle.async_wait([socket = connection.socket](const boost::system::error_code& ec) {
      if (ec) return;  // re-armed, cancelled, or the connection is gone
      boost::system::error_code ignored;
      socket->close(ignored);
    });
    http::request_parser<http::empty_body> parser;
    parser.header_limit(static_cast<uint32_t>(options_.max_header_bytes));
    parser.body_limit(0);
    boost::system::error_code ec;
    co_await http::async_read(stream, buffer, parser, asio::redirect_error(use_awaitable, ec));
    if (!*alive || stopped_) co_return;
    connection.idle.cancel();

    HttpResponse response;
    bool keep_alive = false;
    unsigned version = 11;
    bool head = false;
    if (ec == http::error::header_limit) {
      response = error_response(431, "request headers too large");
    } else if (ec == http::error::body_limit) {
      response = error_response(413, "a request body is not accepted");
    } else if (ec == http::error::end_of_stream || ec == asio::error::operation_aborted ||
               ec == asio::error::connection_reset || ec == asio::error::bad_descriptor ||
               ec == asio::error::eof || (ec && !parser.got_some())) {
      co_return;  // closed, idle, or nothing but a broken start
    } else if (ec) {
      response = error_response(400, "malformed HTTP request: " + ec.message());
    } else {
      const auto& request = parser.get();
      version = request.version();
      keep_alive = request.keep_alive();
      head = request.method() == http::verb::head;
      HttpRequest parsed;
      if (request.method() != http::verb::get && !head) {
        response = error_response(405, "only GET and HEAD are served");
        response.headers["Allow"] = "GET, HEAD";
        keep_alive = false;  // what follows may be its body
      } else if (!parse_target(std::string_view(request.target().data(), request.target().size()),
                                     parsed.path, parsed.query)) {
        response = error_response(400, "malformed request target");
        keep_alive = false;
      } else {
        parsed.method = head ? "HEAD" : "GET";
        parsed.authorization = std::string(request[http::field::authorization]);
        parsed.principal = principal;
        response = handler_(parsed);
        if (!*alive || stopped_) co_return;
      }
    }

    http::response<http::string_body> out{static_cast<http::status>(response.status), version};
    out.set(http::field::server, "fencelockd");
    out.set(http::field::content_type, response.content_type);
    out.set(http::field::cache_control, "no-store");
    for (const auto& [name, value] : response.headers) out.set(name, value);
    out.keep_alive(keep_alive);
    const size_t length = response.body.size();
    if (!head) out.body() = std::move(response.body);
    out.content_length(length);
    http::serializer<false, http::string_body> serializer(out);
    if (head) serializer.split(true);
    if (head) {
      co_await http::async_write_header(stream, serializer,
                                        asio::redirect_error(use_awaitable, ec));
    } else {
      co_await http::async_write(stream, serializer, asio::redirect_error(use_awaitable, ec));
    }
    if (!*alive || stopped_ || ec || !keep_alive) break;
  }
  if (!*alive) co_return;
  boost::system::error_code ignored;
  connection.socket->shutdown(Tcp::socket::shutdown_send, ignored);
  connection.socket->close(ignored);
}

}  // namespace fencelock::net
