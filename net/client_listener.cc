#include "net/client_listener.h"

#include <spdlog/spdlog.h>

#include "net/address.h"
#include "net/client_request.h"

namespace fencelock::net {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;

ClientListener::ClientListener(asio::io_context& io, ClientListenerOptions options,
                               std::shared_ptr<spdlog::logger> logger)
    : io_(io), options_(options), logger_(std::move(logger)), acceptor_(io) {}

ClientListener::~ClientListener() {
  stop();
  *alive_ = false;
}

Status ClientListener::listen(const std::string& address) {
  return listen_on(acceptor_, address, "client");
}

Tcp::endpoint ClientListener::local_endpoint() const {
  boost::system::error_code ec;
  return acceptor_.local_endpoint(ec);
}

void ClientListener::start(RequestHandler on_request, CloseHandler on_close) {
  on_request_ = std::move(on_request);
  on_close_ = std::move(on_close);
  asio::co_spawn(io_, accept_loop(alive_), asio::detached);
}

void ClientListener::stop() {
  if (stopped_) return;
  stopped_ = true;
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  auto connections = std::move(connections_);
  connections_.clear();
  for (auto& [id, client] : connections) client.connection->stop("server stopping");
}

awaitable<void> ClientListener::accept_loop(std::shared_ptr<bool> alive) {
  while (!stopped_) {
    boost::system::error_code ec;
    Tcp::socket socket = co_await acceptor_.async_accept(asio::redirect_error(use_awaitable, ec));
    if (!*alive) co_return;
    if (ec) {
      if (stopped_ || ec == asio::error::operation_aborted) co_return;
      // EMFILE and friends: log, pause briefly so a full fd table does not
      // turn the loop into a busy spin, and keep serving existing clients.
      logger_->warn("client accept failed: {}", ec.message());
      asio::steady_timer pause(io_);
      pause.expires_after(std::chrono::milliseconds(50));
      co_await pause.async_wait(asio::redirect_error(use_awaitable, ec));
      if (!*alive) co_return;
      continue;
    }
    if (options_.tls) {
      asio::co_spawn(io_, admit(std::move(socket), alive), asio::detached);
    } else {
      serve(Stream(std::move(socket)));
    }
  }
}

awaitable<void> ClientListener::admit(Tcp::socket socket, std::shared_ptr<bool> alive) {
  // Handshakes count toward the connection limit: a flood of them is
  // refused like a flood of connections.
  if (connections_.size() + handshaking_ >= options_.max_connections) {
    boost::system::error_code ignored;
    socket.close(ignored);
    logger_->warn("refused a client connection: {} connections and handshakes (the maximum)",
                  options_.max_connections);
    co_return;
  }
  std::string remote = remote_text(socket);
  ++handshaking_;
  std::string error;
  auto tls = co_await handshake(std::move(socket), *options_.tls, options_.handshake_timeout, "",
                                error);
  if (!*alive) co_return;
  --handshaking_;
  if (stopped_) co_return;
  if (!tls) {
    logger_->warn("client connection from {} refused: {}", remote, error);
    co_return;
  }
  serve(Stream(std::move(tls)));
}

void ClientListener::serve(Stream stream) {
  std::string principal;
  bool authenticated = options_.auth == ClientAuth::kNone;
  if (options_.auth == ClientAuth::kCert && stream.tls() != nullptr) {
    principal = principal_of(peer_names(*stream.tls()));
    authenticated = !principal.empty();
  }
  ConnectionOptions connection_options;
  connection_options.max_frame_bytes = options_.max_frame_bytes;
  connection_options.max_queued_bytes = options_.max_queued_bytes;
  connection_options.idle_timeout = options_.idle_timeout;
  auto connection = std::make_shared<FramedConnection>(std::move(stream), connection_options);
  ConnectionId id = next_id_++;
  if (connections_.size() >= options_.max_connections) {
    connection->start([](std::string_view) {}, [](uint64_t) {}, [](const std::string&) {});
    clientpb::Response response;
    response.set_code(lockpb::RESOURCE_EXHAUSTED);
    response.set_message("too many client connections (maximum " +
                         std::to_string(options_.max_connections) + ")");
    connection->send(response);
    connection->close_after_flush("connection limit");
    return;
  }
  connections_.emplace(id, Client{connection, 0, std::move(principal), authenticated});
  ++accepted_;
  connection->start([this, id](std::string_view body) { on_frame(id, body); },
                    [this, id](uint64_t length) {
                      reject(id, 0, lockpb::FRAME_TOO_LARGE,
                             "frame of " + std::to_string(length) + " bytes exceeds the maximum of " +
                                 std::to_string(options_.max_frame_bytes),
                             true);
                    },
                    [this, id, alive = alive_](const std::string& reason) {
                      logger_->debug("client connection {} closed: {}", id, reason);
                      // Deferred: a close can happen inside respond(), and the
                      // node's handler must not run in the middle of its caller.
                      asio::post(io_, [this, id, alive] {
                        if (*alive && connections_.erase(id) && on_close_) on_close_(id);
                      });
                    });
}

void ClientListener::authenticate(ConnectionId id, Client& client,
                                  const clientpb::Request& request) {
  clientpb::Response response;
  response.set_id(request.id());
  if (options_.auth == ClientAuth::kToken) {
    std::optional<std::string> principal;
    if (options_.principal_of_token) {
      principal = options_.principal_of_token(request.authenticate().token());
    }
    if (!principal) {
      logger_->warn("client connection {} from {}: unknown token", id,
                    client.connection->remote());
      reject(id, request.id(), lockpb::UNAUTHENTICATED, "unknown token", true);
      return;
    }
    client.principal = *principal;
    client.authenticated = true;
  }
  // Otherwise there is nothing to prove: the answer names the identity
  // the connection already has.
  response.mutable_authenticated()->set_principal(client.principal);
  client.connection->send(response);
}

void ClientListener::on_frame(ConnectionId id, std::string_view body) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  DecodedRequest decoded = decode_client_request(body);
  if (!decoded.status.ok()) {
    reject(id, decoded.request.id(), decoded.status.code(), decoded.status.message(), true);
    return;
  }
  clientpb::Request& request = decoded.request;
  if (it->second.in_flight >= options_.max_in_flight) {
    reject(id, request.id(), lockpb::RESOURCE_EXHAUSTED,
           "too many requests in flight on this connection (maximum " +
               std::to_string(options_.max_in_flight) + ")",
           false);
    return;
  }
  if (request.kind_case() == clientpb::Request::kAuthenticate) {
    authenticate(id, it->second, request);
    return;
  }
  if (!it->second.authenticated) {
    reject(id, request.id(), lockpb::UNAUTHENTICATED,
           "this server requires authentication: send Authenticate with a token first", false);
    return;
  }
  ++it->second.in_flight;
  on_request_(id, it->second.principal, std::move(request));
}

void ClientListener::respond(ConnectionId to, const clientpb::Response& response) {
  auto it = connections_.find(to);
  if (it == connections_.end()) return;
  if (it->second.in_flight > 0) --it->second.in_flight;
  auto connection = it->second.connection;  // send() may close it
  if (!connection->open()) return;
  size_t bytes = response.ByteSizeLong();
  if (bytes > options_.max_frame_bytes) {
    answer_too_large(to, *connection, response.id(), bytes);
    return;
  }
  connection->send(response);
}

void ClientListener::answer_too_large(ConnectionId id, FramedConnection& connection,
                                      uint64_t request_id, size_t bytes) {
  std::string limit = std::to_string(options_.max_frame_bytes);
  logger_->warn(
      "client connection {} from {}: the answer to request {} is {} bytes, over the maximum "
      "frame of {} bytes; answering RESOURCE_EXHAUSTED instead",
      id, connection.remote(), request_id, bytes, limit);
  clientpb::Response error;
  error.set_id(request_id);
  error.set_code(lockpb::RESOURCE_EXHAUSTED);
  error.set_message("the answer is " + std::to_string(bytes) +
                    " bytes, over the maximum frame of " + limit +
                    " bytes; ask for a smaller page (a lower limit)");
  if (connection.send(error) || !connection.open()) return;
  // Only a maximum too small for this short error gets here (the daemon
  // allows no less than 1 KiB). Closing tells the caller something is wrong;
  // leaving its request unanswered would not.
  std::string reason = "an error answer does not fit the maximum frame of " + limit + " bytes";
  logger_->warn("closing client connection {} from {}: {}", id, connection.remote(), reason);
  connection.close_after_flush(reason);
}

void ClientListener::reject(ConnectionId id, uint64_t request_id, lockpb::ErrorCode code,
                            std::string message, bool close) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  auto connection = it->second.connection;
  clientpb::Response response;
  response.set_id(request_id);
  response.set_code(code);
  response.set_message(message);
  connection->send(response);
  if (close) {
    logger_->info("closing client connection {} from {}: {}", id, connection->remote(), message);
    connection->close_after_flush(message);
  }
}

}  // namespace fencelock::net
