// The fencelock driver: the client library's asynchronous API. Sessions are
// spread over several Clients (one TCP connection and one I/O thread each),
// `sessions_per_connection` per Client; an acquire waits in the lock's FIFO
// queue inside the cluster (a release grants the next waiter in the same
// commit), so the contended workload needs no watch round trip.
//
// Thread-safety: as Driver. Per-session state is touched only by the one
// operation a session has in flight.

#include <algorithm>

#include "cli/bench/driver.h"
#include "client/session.h"

namespace fencelock::bench {
namespace {

using client::Client;
using client::Session;

class FencelockDriver : public Driver {
 public:
  explicit FencelockDriver(DriverOptions options) : options_(std::move(options)) {}
  ~FencelockDriver() override { close_sessions(); }

  std::string name() const override { return "fencelock"; }

  client::ClientOptions base_options() const {
    client::ClientOptions client_options;
    client_options.endpoints = options_.endpoints;
    client_options.tls_ca_file = options_.tls_ca;
    client_options.tls_cert_file = options_.tls_cert;
    client_options.tls_key_file = options_.tls_key;
    return client_options;
  }

  Outcome open_sessions(int count, std::chrono::milliseconds timeout) override {
    // Idle sessions need no parallelism: fewer connections, fewer I/O threads.
    int per = std::max(1, options_.sessions_per_connection);
    if (options_.keepalive_only) per = std::max(per, kIdleSessionsPerConnection);
    int connections = (count + per - 1) / per;
    for (int c = 0; c < connections; ++c) {
      client::ClientOptions client_options = base_options();
      // Generous: an acquire that waits in a long queue (contended, 256
      // clients) must not time out on the client side.
      client_options.request_timeout = std::chrono::seconds(30);
      auto client = Client::connect(client_options);
      if (!client.ok()) return {client.status().to_string()};
      clients_.push_back(client.value());
    }
    slots_ = std::vector<Slot>(static_cast<size_t>(count));

    // Keep a window of opens in flight: thousands at once would only queue.
    constexpr int kWindow = 512;
    auto open = [this, per](int i, Completion done) {
      client::SessionOptions session_options;
      session_options.ttl = options_.session_ttl;
      session_options.client_name = "fencelock-bench";
      Session::open_async(clients_[static_cast<size_t>(i / per)], session_options,
                          [this, i, done = std::move(done)](Result<std::shared_ptr<Session>> result) {
                            if (!result.ok()) {
                              done({"open session: " + result.status().to_string()});
                              return;
                            }
                            slots_[static_cast<size_t>(i)].session = result.value();
                            done({});
                          });
    };
    return run_windowed(count, kWindow, timeout, open, "opened", "sessions");
  }

  void acquire(int session, const std::string& lock, Completion done) override {
    Slot& slot = slots_[static_cast<size_t>(session)];
    client::AcquireOptions options;
    options.wait = std::chrono::seconds(60);
    slot.session->acquire_async(lock, options, [&slot, done = std::move(done)](Result<lockpb::Sequencer> result) {
      if (!result.ok()) {
        done({result.status().to_string()});
        return;
      }
      slot.held = std::move(result).value();
      done({});
    });
  }

  void release(int session, Completion done) override {
    Slot& slot = slots_[static_cast<size_t>(session)];
    slot.session->release_async(slot.held, [done = std::move(done)](Status status) {
      done(status.ok() ? Outcome{} : Outcome{status.to_string()});
    });
  }

  void close_sessions() override {
    // Dropping a Session sends its close without waiting; dropping the
    // Clients then stops their threads. Servers expire what did not arrive.
    // Slots stay until the driver goes: a late grant may still write one.
    for (auto& slot : slots_) slot.session.reset();
    clients_.clear();
  }

  int lost_sessions() override {
    int lost = 0;
    for (const auto& slot : slots_) lost += (!slot.session || slot.session->lost()) ? 1 : 0;
    return lost;
  }

  int leader_index() override {
    if (clients_.empty()) {
      client::ClientOptions client_options = base_options();
      auto client = Client::connect(client_options);
      if (!client.ok()) return -1;
      clients_.push_back(client.value());
    }
    for (size_t i = 0; i < options_.endpoints.size(); ++i) {
      auto status = clients_.front()->member_status(options_.endpoints[i]);
      if (!status.ok()) continue;
      for (const auto& member : status.value().members()) {
        if (member.id() == status.value().self_id() && member.role() == "leader") {
          return static_cast<int>(i);
        }
      }
    }
    return -1;
  }

 private:
  struct Slot {
    std::shared_ptr<Session> session;
    lockpb::Sequencer held;
  };

  DriverOptions options_;
  std::vector<std::shared_ptr<Client>> clients_;
  std::vector<Slot> slots_;
};

}  // namespace

std::unique_ptr<Driver> make_fencelock_driver(const DriverOptions& options) {
  return std::make_unique<FencelockDriver>(options);
}

}  // namespace fencelock::bench
