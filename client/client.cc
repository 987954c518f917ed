#include "client/client.h"

#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "client/call_policy.h"
#include "common/logging.h"
#include "net/address.h"
#include "net/connection.h"
#include "net/tls.h"

namespace fencelock::client {

namespace asio = boost::asio;

Status response_status(const clientpb::Response& response) {
  if (response.code() == lockpb::OK) return Status();
  return Status(response.code(), response.message());
}

namespace detail {

// The id of the Authenticate request a connection starts with; calls
// count up from 1 and never reach it.
constexpr uint64_t kAuthenticateId = UINT64_MAX;

// The I/O half of a Client: one connection, the calls in flight, timers.
// What to do with each answer (retry here, go elsewhere, done), where to
// connect, how long to pause and when a call has run out of time are
// CallPolicy's and PendingCall's rules (client/call_policy.h).
//
// Thread-safety: everything runs on the I/O thread, except the public entry
// points, which post to it, current_endpoint() (under endpoint_mutex_) and
// options() (fixed at construction). Held by shared_ptr so posted work
// outlives nothing.
class Core : public std::enable_shared_from_this<Core> {
 public:
  Core(ClientOptions options, std::shared_ptr<net::TlsContext> tls)
      : policy_(std::move(options)),
        tls_(std::move(tls)),
        logger_(get_logger("fencelock-client")),
        work_(asio::make_work_guard(io_)),
        sweep_(io_) {}

  void start() {
    // The thread holds the core: if the last Client reference is dropped on
    // this thread, the core is destroyed after run() returns, not inside it.
    thread_ = std::thread([self = shared_from_this()] { self->io_.run(); });
    asio::post(io_, [weak = weak_from_this()] {
      if (auto self = weak.lock()) self->arm_sweep();
    });
  }

  void stop() {
    asio::post(io_, [self = shared_from_this()] {
      self->stopped_ = true;
      self->sweep_.cancel();
      if (self->connection_) self->connection_->stop("client closed");
      auto calls = std::move(self->calls_);
      self->calls_.clear();
      for (auto& [id, call] : calls) {
        clientpb::Response response;
        response.set_id(id);
        response.set_code(lockpb::UNAVAILABLE);
        response.set_message("client closed");
        call.done(std::move(response));
      }
      // Pending timers (keepalives, jeopardy checks) are abandoned, not
      // waited for; they hold the core weakly and die with the io_context.
      self->work_.reset();
      self->io_.stop();
    });
    if (thread_.joinable()) {
      if (thread_.get_id() == std::this_thread::get_id()) {
        thread_.detach();
      } else {
        thread_.join();
      }
    }
  }

  void call(clientpb::Request request, Client::Callback done, std::chrono::milliseconds extra) {
    asio::post(io_, [weak = weak_from_this(), request = std::move(request), done = std::move(done),
                     extra]() mutable {
      auto self = weak.lock();
      if (!self) return;
      if (self->stopped_) {
        clientpb::Response response;
        response.set_code(lockpb::UNAVAILABLE);
        response.set_message("client closed");
        done(std::move(response));
        return;
      }
      uint64_t id = self->next_id_++;
      request.set_id(id);
      Call call{PendingCall(std::move(request), self->policy_.deadline(Clock::now(), extra)),
                std::move(done)};
      self->calls_.emplace(id, std::move(call));
      self->send_or_queue(id);
    });
  }

  void schedule(std::chrono::milliseconds delay, std::function<void()> fn) {
    auto timer = std::make_shared<asio::steady_timer>(io_, delay);
    timer->async_wait([timer, fn = std::move(fn), weak = weak_from_this()](
                          const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (!ec && self && !self->stopped_) fn();
    });
  }

  std::string current_endpoint() {
    std::lock_guard lock(endpoint_mutex_);
    return endpoint_;
  }

  const ClientOptions& options() const { return policy_.options(); }
  std::shared_ptr<net::TlsContext> tls() const { return tls_; }

 private:
  struct Call {
    PendingCall pending;  // the request as first issued, its deadline, its last error
    Client::Callback done;
    bool sent = false;    // on the current connection, awaiting an answer
  };

  void set_endpoint(std::string endpoint) {
    std::lock_guard lock(endpoint_mutex_);
    endpoint_ = std::move(endpoint);
  }

  void send_or_queue(uint64_t id) {
    auto it = calls_.find(id);
    if (it == calls_.end()) return;
    if (connection_ && connection_->open() && connected_) {
      it->second.sent = true;
      connection_->send(it->second.pending.request());
      return;
    }
    it->second.sent = false;
    ensure_connecting();
  }

  void ensure_connecting() {
    if (connecting_ || stopped_) return;
    if (connection_ && connection_->open()) return;
    connecting_ = true;
    asio::co_spawn(io_, connect_loop(weak_from_this()), asio::detached);
  }

  // A kResend decision's timer: the call goes out again unless it already
  // has on a newer connection (or has been answered).
  void resend_if_unsent(uint64_t id) {
    auto it = calls_.find(id);
    if (it != calls_.end() && !it->second.sent) send_or_queue(id);
  }

  // Holds the core weakly: a suspended loop must not keep a closed client
  // alive. If the core is destroyed, the frame is destroyed with its
  // io_context without resuming.
  asio::awaitable<void> connect_loop(std::weak_ptr<Core> self) {
    const ClientOptions& options = policy_.options();
    while (!stopped_) {
      std::string endpoint = policy_.next_endpoint();
      std::string host;
      uint16_t port = 0;
      net::split_host_port(endpoint, host, port);
      boost::system::error_code ec;
      asio::ip::tcp::resolver resolver(io_);
      auto results = co_await resolver.async_resolve(host, std::to_string(port),
                                                     asio::redirect_error(asio::use_awaitable, ec));
      asio::ip::tcp::socket socket(io_);
      if (!ec) {
        asio::steady_timer deadline(io_, options.connect_timeout);
        deadline.async_wait([&socket](const boost::system::error_code& wait_ec) {
          if (!wait_ec) socket.close();
        });
        co_await asio::async_connect(socket, results, asio::redirect_error(asio::use_awaitable, ec));
        deadline.cancel();
        if (!ec && !socket.is_open()) ec = asio::error::timed_out;
      }
      if (stopped_) break;
      std::string failure = ec ? ec.message() : "";
      std::optional<net::Stream> stream;
      if (!ec && tls_) {
        auto tls = co_await net::handshake(std::move(socket), *tls_, options.connect_timeout, host,
                                           failure);
        if (stopped_ || !self.lock()) break;
        if (tls) stream.emplace(std::move(tls));
      } else if (!ec) {
        stream.emplace(std::move(socket));
      }
      logger_->debug("connect to {}: {}", endpoint, stream ? "ok" : failure);
      if (stream) {
        net::ConnectionOptions connection_options;
        connection_options.max_frame_bytes = options.max_frame_bytes;
        connection_ =
            std::make_shared<net::FramedConnection>(std::move(*stream), connection_options);
        connected_ = true;
        policy_.connected();
        set_endpoint(endpoint);
        std::weak_ptr<Core> weak = self;
        auto* raw = connection_.get();
        connection_->start(
            [weak](std::string_view body) {
              if (auto core = weak.lock()) core->on_frame(body);
            },
            [](uint64_t) {},
            [weak, raw](const std::string& reason) {
              if (auto core = weak.lock()) core->on_closed(raw, reason);
            });
        connecting_ = false;
        if (!options.token.empty()) {
          // First on the connection: the server takes requests in order.
          clientpb::Request authenticate;
          authenticate.set_id(kAuthenticateId);
          authenticate.mutable_authenticate()->set_token(options.token);
          connection_->send(authenticate);
        }
        for (auto& [id, call] : calls_) {
          if (!call.sent) {
            call.sent = true;
            connection_->send(call.pending.request());
          }
        }
        co_return;
      }
      for (auto& [id, call] : calls_) {
        call.pending.note_retry("cannot connect to " + endpoint + ": " + failure);
      }
      if (auto pause = policy_.connect_failed(); pause.count() > 0) {
        asio::steady_timer timer(io_, pause);
        co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
    }
    connecting_ = false;
  }

  void on_closed(net::FramedConnection* which, const std::string& reason) {
    logger_->debug("connection closed: {} (current: {})", reason, connection_.get() == which);
    if (connection_.get() != which) return;
    connected_ = false;
    connection_.reset();
    std::optional<CallDecision> decision;
    for (auto& [id, call] : calls_) decision = policy_.on_connection_lost(call.pending, reason);
    if (decision) reconnect(*decision);
  }

  void on_frame(std::string_view body) {
    clientpb::Response response;
    if (!response.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
      if (connection_) connection_->stop("malformed response from server");
      return;
    }
    if (response.id() == kAuthenticateId) {
      if (response.code() != lockpb::OK) fail_all(response);
      return;
    }
    auto it = calls_.find(response.id());
    if (it == calls_.end()) return;  // answered before, or a connection-level error
    Call& call = it->second;
    bool open = connection_ && connection_->open();
    CallDecision decision = policy_.on_response(call.pending, response, open ? current_endpoint() : "");
    if (response.code() == lockpb::NOT_LEADER) {
      logger_->debug("not the leader: {}; hint '{}' -> '{}'", current_endpoint(), response.leader_hint(),
                     policy_.endpoint_for_hint(response.leader_hint()));
    }
    switch (decision.step) {
      case CallStep::kDone: {
        Client::Callback done = std::move(call.done);
        calls_.erase(it);
        done(std::move(response));
        return;
      }
      case CallStep::kResend: {
        call.sent = false;
        uint64_t id = response.id();
        schedule(decision.delay, [this, id] { resend_if_unsent(id); });
        return;
      }
      case CallStep::kReconnect:
        reconnect(decision);
        return;
    }
  }

  // Answers every call with `error` (its code and message): the server
  // refused this client's identity, which no retry changes.
  void fail_all(const clientpb::Response& error) {
    logger_->warn("server refused this client: {}: {}", lockpb::ErrorCode_Name(error.code()),
                  error.message());
    auto calls = std::move(calls_);
    calls_.clear();
    for (auto& [id, call] : calls) {
      clientpb::Response response = error;
      response.set_id(id);
      call.done(std::move(response));
    }
  }

  // Leaves the current node (if still connected) and, after the decision's
  // delay, connects to policy_.next_endpoint(); every unanswered call goes
  // out on the new connection.
  void reconnect(const CallDecision& decision) {
    if (connection_) {
      auto old = std::move(connection_);
      connected_ = false;
      old->stop("redirected to the leader");
    }
    for (auto& [id, call] : calls_) call.sent = false;
    if (decision.delay.count() > 0) {
      schedule(decision.delay, [this] { ensure_connecting(); });
    } else {
      ensure_connecting();
    }
  }

  void arm_sweep() {
    sweep_.expires_after(std::chrono::milliseconds(50));
    sweep_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self || self->stopped_) return;
      auto now = Clock::now();
      std::vector<std::pair<uint64_t, Call>> expired;
      for (auto it = self->calls_.begin(); it != self->calls_.end();) {
        if (it->second.pending.expired(now)) {
          expired.emplace_back(it->first, std::move(it->second));
          it = self->calls_.erase(it);
        } else {
          ++it;
        }
      }
      for (auto& [id, call] : expired) call.done(call.pending.timeout_response());
      self->arm_sweep();
    });
  }

  CallPolicy policy_;
  std::shared_ptr<net::TlsContext> tls_;  // null: plaintext
  std::shared_ptr<spdlog::logger> logger_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
  asio::steady_timer sweep_;
  std::map<uint64_t, Call> calls_;
  uint64_t next_id_ = 1;
  std::shared_ptr<net::FramedConnection> connection_;
  bool connected_ = false;
  bool connecting_ = false;
  bool stopped_ = false;
  std::mutex endpoint_mutex_;
  std::string endpoint_;
};

}  // namespace detail

Result<std::shared_ptr<Client>> Client::connect(ClientOptions options) {
  if (options.endpoints.empty()) {
    return Status(lockpb::INVALID_ARGUMENT, "no endpoints given");
  }
  for (const auto& endpoint : options.endpoints) {
    std::string host;
    uint16_t port = 0;
    if (!net::split_host_port(endpoint, host, port)) {
      return Status(lockpb::INVALID_ARGUMENT, "endpoint '" + endpoint + "' is not host:port");
    }
  }
  std::shared_ptr<net::TlsContext> tls;
  if (!options.tls_ca_file.empty() || !options.tls_cert_file.empty() ||
      !options.tls_key_file.empty()) {
    net::TlsFiles files{options.tls_cert_file, options.tls_key_file, options.tls_ca_file};
    auto loaded = net::TlsContext::load(files, false, net::PeerCertificate::kRequired,
                                        get_logger("fencelock-client"));
    if (!loaded.ok()) return loaded.status();
    tls = std::move(loaded).value();
  }
  std::shared_ptr<Client> client(new Client(std::move(options), std::move(tls)));
  return client;
}

Client::Client(ClientOptions options, std::shared_ptr<net::TlsContext> tls)
    : core_(std::make_shared<detail::Core>(std::move(options), std::move(tls))) {
  core_->start();
}

Client::~Client() { core_->stop(); }

void Client::call_async(clientpb::Request request, Callback done,
                        std::chrono::milliseconds extra_timeout) {
  core_->call(std::move(request), std::move(done), extra_timeout);
}

clientpb::Response Client::call(clientpb::Request request, std::chrono::milliseconds extra_timeout) {
  auto promise = std::make_shared<std::promise<clientpb::Response>>();
  auto future = promise->get_future();
  call_async(std::move(request),
             [promise](clientpb::Response response) { promise->set_value(std::move(response)); },
             extra_timeout);
  return future.get();
}

void Client::schedule(std::chrono::milliseconds delay, std::function<void()> fn) {
  core_->schedule(delay, std::move(fn));
}

std::string Client::current_endpoint() const { return core_->current_endpoint(); }

const ClientOptions& Client::options() const { return core_->options(); }

Result<clientpb::LockInfo> Client::describe(const std::string& lock) {
  clientpb::Request request;
  request.mutable_describe()->set_lock(lock);
  auto response = call(std::move(request));
  if (response.code() != lockpb::OK) return response_status(response);
  return response.lock_info();
}

Result<clientpb::LockList> Client::list(const std::string& prefix, const std::string& start_after,
                                        uint32_t limit) {
  clientpb::Request request;
  request.mutable_list_locks()->set_prefix(prefix);
  request.mutable_list_locks()->set_start_after(start_after);
  request.mutable_list_locks()->set_limit(limit);
  auto response = call(std::move(request));
  if (response.code() != lockpb::OK) return response_status(response);
  return response.lock_list();
}

Result<bool> Client::check_sequencer(const lockpb::Sequencer& sequencer) {
  clientpb::Request request;
  *request.mutable_check_sequencer()->mutable_sequencer() = sequencer;
  auto response = call(std::move(request));
  if (response.code() != lockpb::OK) return response_status(response);
  return response.sequencer_status().current();
}

Result<clientpb::SessionList> Client::list_sessions(uint64_t start_after, uint32_t limit) {
  clientpb::Request request;
  request.mutable_list_sessions()->set_start_after(start_after);
  request.mutable_list_sessions()->set_limit(limit);
  auto response = call(std::move(request));
  if (response.code() != lockpb::OK) return response_status(response);
  return response.session_list();
}

Result<clientpb::LockStatsResult> Client::lock_stats(const std::string& prefix) {
  clientpb::Request request;
  request.mutable_lock_stats()->set_prefix(prefix);
  auto response = call(std::move(request));
  if (response.code() != lockpb::OK) return response_status(response);
  return response.lock_stats();
}

Status Client::force_release(const std::string& lock) {
  clientpb::Request request;
  request.mutable_force_release()->set_lock(lock);
  return response_status(call(std::move(request)));
}

namespace {

Result<clientpb::MemberListResult> member_result(const clientpb::Response& response) {
  if (response.code() != lockpb::OK) return response_status(response);
  return response.member_list();
}

}  // namespace

Result<clientpb::MemberListResult> Client::member_list() {
  clientpb::Request request;
  request.mutable_member_list();
  return member_result(call(std::move(request)));
}

Result<clientpb::MemberListResult> Client::member_add(uint64_t id, const std::string& peer_address,
                                                      const std::string& client_address) {
  clientpb::Request request;
  auto* add = request.mutable_member_add();
  add->set_id(id);
  add->set_peer_address(peer_address);
  add->set_client_address(client_address);
  return member_result(call(std::move(request)));
}

Result<clientpb::MemberListResult> Client::member_promote(uint64_t id) {
  clientpb::Request request;
  request.mutable_member_promote()->set_id(id);
  return member_result(call(std::move(request)));
}

Result<clientpb::MemberListResult> Client::member_remove(uint64_t id) {
  clientpb::Request request;
  request.mutable_member_remove()->set_id(id);
  return member_result(call(std::move(request)));
}

Result<clientpb::ClusterStatusResult> Client::member_status(const std::string& endpoint) {
  std::string host;
  uint16_t port = 0;
  if (!net::split_host_port(endpoint, host, port)) {
    return Status(lockpb::INVALID_ARGUMENT, "endpoint '" + endpoint + "' is not host:port");
  }
  asio::io_context io;
  asio::ip::tcp::socket socket(io);
  std::optional<net::Stream> stream;
  asio::steady_timer deadline(io, core_->options().connect_timeout + std::chrono::seconds(1));
  deadline.async_wait([&](const boost::system::error_code& ec) {
    if (ec) return;
    boost::system::error_code ignored;
    (stream ? stream->socket() : socket).close(ignored);
  });
  std::optional<clientpb::Response> answer;
  std::string failure;
  uint32_t max_frame_bytes = core_->options().max_frame_bytes;
  std::shared_ptr<net::TlsContext> tls = core_->tls();
  const std::string& token = core_->options().token;
  auto ask = [&]() -> asio::awaitable<void> {
    boost::system::error_code ec;
    asio::ip::tcp::resolver resolver(io);
    auto results = co_await resolver.async_resolve(host, std::to_string(port),
                                                   asio::redirect_error(asio::use_awaitable, ec));
    if (!ec) co_await asio::async_connect(socket, results, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      failure = ec.message();
    } else if (tls) {
      auto secured = co_await net::handshake(std::move(socket), *tls,
                                             core_->options().connect_timeout, host, failure);
      if (secured) stream.emplace(std::move(secured));
    } else {
      stream.emplace(std::move(socket));
    }
    if (!stream) {
      deadline.cancel();
      co_return;
    }
    std::string frames;
    if (!token.empty()) {
      clientpb::Request authenticate;
      authenticate.set_id(detail::kAuthenticateId);
      authenticate.mutable_authenticate()->set_token(token);
      net::append_frame(authenticate, frames);
    }
    clientpb::Request request;
    request.set_id(1);
    request.mutable_cluster_status();
    net::append_frame(request, frames);
    net::FrameDecoder decoder(max_frame_bytes);
    try {
      co_await stream->write_all(asio::buffer(frames));
      while (!answer) {
        auto region = decoder.prepare(4096);
        decoder.commit(co_await stream->read_some(asio::buffer(region.data(), region.size())));
        clientpb::Response response;
        while (!answer && decoder.next_message(response) == net::DecodeStatus::kFrame) {
          // A refused token answers the Authenticate; its code is the answer.
          if (response.id() == 1 || response.code() != lockpb::OK) answer = std::move(response);
        }
      }
    } catch (const boost::system::system_error& e) {
      failure = e.code().message();
    }
    deadline.cancel();
  };
  asio::co_spawn(io, ask(), asio::detached);
  io.run();
  if (!answer) {
    return Status(lockpb::UNAVAILABLE,
                  "cannot reach " + endpoint + (failure.empty() ? ": timed out" : ": " + failure));
  }
  if (answer->code() != lockpb::OK) return response_status(*answer);
  return answer->cluster_status();
}

Result<std::string> read_token_file(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) {
    return Status(lockpb::INVALID_ARGUMENT, "cannot read a token from " + path);
  }
  size_t begin = line.find_first_not_of(" \t\r");
  size_t end = line.find_last_not_of(" \t\r");
  if (begin == std::string::npos) {
    return Status(lockpb::INVALID_ARGUMENT, path + " holds no token on its first line");
  }
  return line.substr(begin, end - begin + 1);
}

}  // namespace fencelock::client
