#pragma once
// ClientListener: accepts client connections and turns their frames into
// requests for the node, and the node's responses back into frames.
//
// Requests are pipelined: a client may have many in flight on one
// connection, and responses go back by request id in whatever order the node
// produces them. Per-connection limits (maximum frame, requests in flight,
// idle timeout, unread responses) and a maximum number of connections keep
// one client from hurting the others: a client that sends garbage, a huge
// length or an unknown request gets an error response where one can be sent
// and loses its own connection, and nothing else.
//
// With TLS (options.tls) a connection is served once its handshake is
// done, within handshake_timeout. Each connection has a principal, the
// client's identity (docs/security.md): "" when authentication is off;
// from its certificate with ClientAuth::kCert (the context then requires
// one); from a bearer token with ClientAuth::kToken, whose Authenticate
// request the listener answers itself. With authentication on, a
// connection without a principal gets UNAUTHENTICATED for any other
// request.
//
// Thread-safety: not thread-safe; every method and callback runs on the
// thread running the io_context.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "net/connection.h"
#include "net/tls.h"
#include "proto/client.pb.h"

namespace spdlog {
class logger;
}

namespace fencelock::net {

using ConnectionId = uint64_t;

enum class ClientAuth { kNone, kCert, kToken };

struct ClientListenerOptions {
  uint32_t max_frame_bytes = kDefaultMaxFrameBytes;
  size_t max_connections = 10000;
  size_t max_in_flight = 10000;            // per connection
  size_t max_queued_bytes = 64u << 20;     // unread responses per connection
  std::chrono::milliseconds idle_timeout{5 * 60 * 1000};
  std::shared_ptr<TlsContext> tls;  // null: plaintext
  std::chrono::milliseconds handshake_timeout{5000};
  ClientAuth auth = ClientAuth::kNone;
  // kToken: the principal a bearer token names, or nullopt.
  std::function<std::optional<std::string>(const std::string& token)> principal_of_token;
};

class ClientListener {
 public:
  // A request with a known kind, from connection `from` whose client is
  // `principal`. The node answers it exactly once through respond() (or
  // not at all if the connection closed).
  using RequestHandler = std::function<void(ConnectionId from, const std::string& principal,
                                            clientpb::Request request)>;
  // A connection closed; requests of it still pending may be dropped.
  using CloseHandler = std::function<void(ConnectionId id)>;

  ClientListener(boost::asio::io_context& io, ClientListenerOptions options,
                 std::shared_ptr<spdlog::logger> logger);
  ~ClientListener();

  // Binds `address` ("host:port"). UNAVAILABLE naming the address when the
  // port is in use; INVALID_ARGUMENT when it does not parse.
  Status listen(const std::string& address);

  void start(RequestHandler on_request, CloseHandler on_close);

  // Sends `response` on connection `to`; ignored when it has closed. An
  // answer whose encoding exceeds max_frame_bytes is not sent: the request
  // gets RESOURCE_EXHAUSTED instead (same id, a message giving both sizes),
  // logged at warn, and the connection keeps being served.
  void respond(ConnectionId to, const clientpb::Response& response);

  // Closes every connection and the acceptor. Idempotent.
  void stop();

  size_t connection_count() const { return connections_.size(); }
  // Connections served since start (refused ones not counted).
  uint64_t accepted_count() const { return accepted_; }
  Tcp::endpoint local_endpoint() const;

 private:
  struct Client {
    std::shared_ptr<FramedConnection> connection;
    size_t in_flight = 0;
    std::string principal;
    bool authenticated = false;  // principal is known (always, without auth)
  };
  // Holds `alive` and checks it after every suspension: the listener may be
  // destroyed while the io_context keeps running.
  boost::asio::awaitable<void> accept_loop(std::shared_ptr<bool> alive);
  // Runs the TLS handshake (if any), then serves the connection.
  boost::asio::awaitable<void> admit(Tcp::socket socket, std::shared_ptr<bool> alive);
  void serve(Stream stream);
  // Answers an Authenticate request (ClientAuth::kToken).
  void authenticate(ConnectionId id, Client& client, const clientpb::Request& request);
  void on_frame(ConnectionId id, std::string_view body);
  void reject(ConnectionId id, uint64_t request_id, lockpb::ErrorCode code, std::string message,
              bool close);
  // Answers request `request_id` with RESOURCE_EXHAUSTED in place of an
  // answer of `bytes` bytes that no frame can carry.
  void answer_too_large(ConnectionId id, FramedConnection& connection, uint64_t request_id,
                        size_t bytes);

  boost::asio::io_context& io_;
  ClientListenerOptions options_;
  std::shared_ptr<spdlog::logger> logger_;
  Tcp::acceptor acceptor_;
  std::map<ConnectionId, Client> connections_;
  ConnectionId next_id_ = 1;
  size_t handshaking_ = 0;  // connections in their TLS handshake
  uint64_t accepted_ = 0;
  RequestHandler on_request_;
  CloseHandler on_close_;
  bool stopped_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace fencelock::net
