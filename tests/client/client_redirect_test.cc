// The client against a scripted in-process server (a real ClientListener on
// loopback): how it treats NOT_LEADER answers.

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <thread>

#include "client/client.h"
#include "common/logging.h"
#include "net/client_listener.h"

namespace fencelock {
namespace {

using namespace std::chrono_literals;

// Answers the first `not_leader_answers` requests NOT_LEADER naming itself
// as the leader (what a leader handing over its office says), then OK.
class ScriptedServer {
 public:
  explicit ScriptedServer(int not_leader_answers)
      : listener_(io_, net::ClientListenerOptions{}, get_logger("client")),
        not_leader_answers_(not_leader_answers) {
    REQUIRE(listener_.listen("127.0.0.1:0").ok());
    address_ = "127.0.0.1:" + std::to_string(listener_.local_endpoint().port());
    listener_.start(
        [this](net::ConnectionId from, const std::string&, clientpb::Request request) {
          clientpb::Response response;
          response.set_id(request.id());
          if (requests_++ < not_leader_answers_) {
            response.set_code(lockpb::NOT_LEADER);
            response.set_leader_hint(address_);
          }
          listener_.respond(from, response);
        },
        [](net::ConnectionId) {});
    thread_ = std::thread([this] { io_.run(); });
  }
  ~ScriptedServer() {
    boost::asio::post(io_, [this] { listener_.stop(); });
    io_.stop();
    thread_.join();
  }
  const std::string& address() const { return address_; }
  int requests() const { return requests_.load(); }

 private:
  boost::asio::io_context io_;
  net::ClientListener listener_;
  int not_leader_answers_;
  std::atomic<int> requests_{0};
  std::string address_;
  std::thread thread_;
};

TEST_CASE("a NOT_LEADER answer that names the node itself is retried, not left unsent",
          "[client]") {
  ScriptedServer server(2);
  client::ClientOptions options;
  options.endpoints = {server.address()};
  options.request_timeout = 5000ms;
  auto client = client::Client::connect(options);
  REQUIRE(client.ok());
  clientpb::Request request;
  request.mutable_keep_alive()->set_session_id(1);
  auto started = std::chrono::steady_clock::now();
  clientpb::Response response = client.value()->call(request);
  auto took = std::chrono::steady_clock::now() - started;
  CHECK(response.code() == lockpb::OK);
  CHECK(server.requests() == 3);
  CHECK(took < 2s);
}

}  // namespace
}  // namespace fencelock
