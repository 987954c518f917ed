// The etcd driver: the lock as etcd's own clients take it. Each session is
// a lease (LeaseGrant, TTL = --ttl) kept alive over a LeaseKeepAlive stream
// every TTL/3, as clientv3's concurrency.Session does; acquire is the v3lock
// service's Lock(name, lease), which runs concurrency.Mutex inside the
// server (put <name>/<lease> with the lease, wait for the keys of lower
// create revision to be deleted); release is Unlock(key).
//
// gRPC C++ callback API, code generated at build time from the .proto files
// Debian ships in golang-etcd-server-dev (cli/bench/CMakeLists.txt). Each
// channel is its own TCP connection (a local subchannel pool) carrying
// `sessions_per_connection` sessions; channel k lists the endpoints starting
// at k mod n, so connections spread over the members like clientv3's
// round-robin balancer, and pick_first moves to the next member when one dies.
//
// Thread-safety: as Driver. Per-session state is touched by the one
// operation a session has in flight, lease state under `mutex_`.

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <map>
#include <set>
#include <thread>

#include "cli/bench/driver.h"
#include "etcd/etcdserver/api/v3lock/v3lockpb/v3lock.grpc.pb.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

namespace fencelock::bench {
namespace {

using namespace std::chrono_literals;

std::string grpc_error(const grpc::Status& status) {
  return "grpc " + std::to_string(static_cast<int>(status.error_code())) + ": " + status.error_message();
}

std::shared_ptr<grpc::Channel> make_channel(const std::vector<std::string>& endpoints, size_t first) {
  std::string target = "ipv4:";
  for (size_t i = 0; i < endpoints.size(); ++i) {
    if (i) target += ",";
    target += endpoints[(first + i) % endpoints.size()];
  }
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own
  args.SetLoadBalancingPolicyName("pick_first");
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

// One LeaseKeepAlive stream: writes queued keepalive requests one at a time,
// reads answers until the stream ends.
class KeepAliveStream : public grpc::ClientBidiReactor<etcdserverpb::LeaseKeepAliveRequest,
                                                        etcdserverpb::LeaseKeepAliveResponse> {
 public:
  using OnAnswer = std::function<void(int64_t lease, int64_t ttl)>;

  KeepAliveStream(etcdserverpb::Lease::Stub* stub, OnAnswer on_answer) : on_answer_(std::move(on_answer)) {
    stub->async()->LeaseKeepAlive(&context_, this);
    StartRead(&answer_);
    StartCall();
  }

  void send(const std::vector<int64_t>& leases) {
    std::lock_guard lock(mutex_);
    if (done_) return;
    for (int64_t lease : leases) {
      etcdserverpb::LeaseKeepAliveRequest request;
      request.set_id(lease);
      queue_.push_back(std::move(request));
    }
    write_next_locked();
  }

  void cancel() { context_.TryCancel(); }
  bool done() {
    std::lock_guard lock(mutex_);
    return done_;
  }
  bool wait_done(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return done_; });
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;
    on_answer_(answer_.id(), answer_.ttl());
    StartRead(&answer_);
  }
  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mutex_);
    writing_ = false;
    if (!ok) {
      queue_.clear();
      return;
    }
    queue_.pop_front();
    write_next_locked();
  }
  void OnDone(const grpc::Status&) override {
    std::lock_guard lock(mutex_);
    done_ = true;
    cv_.notify_all();
  }

 private:
  void write_next_locked() {
    if (writing_ || queue_.empty() || done_) return;
    writing_ = true;
    StartWrite(&queue_.front());
  }

  grpc::ClientContext context_;
  OnAnswer on_answer_;
  etcdserverpb::LeaseKeepAliveResponse answer_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<etcdserverpb::LeaseKeepAliveRequest> queue_;
  bool writing_ = false;
  bool done_ = false;
};

class EtcdDriver : public Driver {
 public:
  explicit EtcdDriver(DriverOptions options) : options_(std::move(options)) {}
  ~EtcdDriver() override { close_sessions(); }

  std::string name() const override { return "etcd"; }

  Outcome open_sessions(int count, std::chrono::milliseconds timeout) override {
    // Idle leases need no parallelism: fewer connections and streams.
    per_ = std::max(1, options_.sessions_per_connection);
    if (options_.keepalive_only) per_ = std::max(per_, kIdleSessionsPerConnection);
    int connections = (count + per_ - 1) / per_;
    for (int c = 0; c < connections; ++c) {
      auto connection = std::make_unique<Connection>();
      connection->channel = make_channel(options_.endpoints, static_cast<size_t>(c));
      connection->kv = etcdserverpb::KV::NewStub(connection->channel);
      connection->lease = etcdserverpb::Lease::NewStub(connection->channel);
      connection->lock = v3lockpb::Lock::NewStub(connection->channel);
      connections_.push_back(std::move(connection));
    }
    slots_ = std::vector<Slot>(static_cast<size_t>(count));

    // LeaseGrant for every session, a window of them in flight.
    int64_t ttl_s = std::max<int64_t>(1, options_.session_ttl.count() / 1000);
    auto grant = [this, ttl_s](int i, Completion done) {
      struct Call {
        grpc::ClientContext context;
        etcdserverpb::LeaseGrantRequest request;
        etcdserverpb::LeaseGrantResponse response;
      };
      auto* call = new Call;
      call->context.set_deadline(std::chrono::system_clock::now() + 30s);
      call->request.set_ttl(ttl_s);
      connection_of(i).lease->async()->LeaseGrant(
          &call->context, &call->request, &call->response,
          [this, i, call, done = std::move(done)](grpc::Status status) {
            Outcome outcome;
            if (status.ok()) {
              slots_[static_cast<size_t>(i)].lease = call->response.id();
            } else {
              outcome.error = "LeaseGrant: " + grpc_error(status);
            }
            delete call;
            done(std::move(outcome));
          });
    };
    constexpr int kWindow = 256;
    Outcome granted = run_windowed(count, kWindow, timeout, grant, "granted", "leases");
    if (!granted.ok()) return granted;
    {
      std::lock_guard lock(mutex_);
      auto now = std::chrono::steady_clock::now();
      for (auto& slot : slots_) last_ack_[slot.lease] = now;
    }
    ticker_->running = true;
    keepalive_tick(ticker_);
    return {};
  }

  void acquire(int session, const std::string& lock, Completion done) override {
    struct Call {
      grpc::ClientContext context;
      v3lockpb::LockRequest request;
      v3lockpb::LockResponse response;
    };
    auto* call = new Call;
    Slot& slot = slots_[static_cast<size_t>(session)];
    // Waits in the queue server-side: as long as fencelock's acquire wait.
    call->context.set_deadline(std::chrono::system_clock::now() + 60s);
    call->request.set_name(lock);
    call->request.set_lease(slot.lease);
    connection_of(session).lock->async()->Lock(
        &call->context, &call->request, &call->response, [call, &slot, done = std::move(done)](grpc::Status status) {
          if (status.ok()) slot.key = call->response.key();
          delete call;
          done(status.ok() ? Outcome{} : Outcome{"Lock: " + grpc_error(status)});
        });
  }

  void release(int session, Completion done) override {
    struct Call {
      grpc::ClientContext context;
      v3lockpb::UnlockRequest request;
      v3lockpb::UnlockResponse response;
    };
    auto* call = new Call;
    Slot& slot = slots_[static_cast<size_t>(session)];
    call->context.set_deadline(std::chrono::system_clock::now() + 10s);
    call->request.set_key(slot.key);
    connection_of(session).lock->async()->Unlock(
        &call->context, &call->request, &call->response, [call, done = std::move(done)](grpc::Status status) {
          delete call;
          done(status.ok() ? Outcome{} : Outcome{"Unlock: " + grpc_error(status)});
        });
  }

  void close_sessions() override {
    {
      // After this no keepalive tick touches the driver: ticks check the
      // flag under the ticker's own mutex, which outlives the driver.
      std::lock_guard tick(ticker_->mutex);
      ticker_->running = false;
    }
    if (connections_.empty()) return;  // closed already
    // Revoke every lease (its keys go with it), a window at a time, bounded.
    if (!slots_.empty()) {
      auto pending = std::make_shared<std::atomic<int>>(0);
      auto deadline = std::chrono::steady_clock::now() + 10s;
      for (size_t i = 0; i < slots_.size(); ++i) {
        while (pending->load() > 256 && std::chrono::steady_clock::now() < deadline) {
          std::this_thread::sleep_for(1ms);
        }
        if (std::chrono::steady_clock::now() >= deadline) break;
        struct Call {
          grpc::ClientContext context;
          etcdserverpb::LeaseRevokeRequest request;
          etcdserverpb::LeaseRevokeResponse response;
        };
        auto* call = new Call;
        call->context.set_deadline(std::chrono::system_clock::now() + 5s);
        call->request.set_id(slots_[i].lease);
        pending->fetch_add(1);
        connection_of(static_cast<int>(i)).lease->async()->LeaseRevoke(
            &call->context, &call->request, &call->response, [call, pending](grpc::Status) {
              delete call;
              pending->fetch_sub(1);
            });
      }
      while (pending->load() > 0 && std::chrono::steady_clock::now() < deadline + 5s) {
        std::this_thread::sleep_for(1ms);
      }
    }
    for (auto& connection : connections_) {
      std::shared_ptr<KeepAliveStream> stream;
      {
        std::lock_guard lock(mutex_);
        stream = connection->stream;
      }
      if (stream) {
        stream->cancel();
        stream->wait_done(5s);
      }
    }
    {
      std::lock_guard lock(mutex_);
      for (auto& connection : connections_) {
        if (connection->stream) retired_.push_back(std::move(connection->stream));
      }
    }
    // Slots stay until the driver goes: a late Lock answer may still write
    // one. The runner destroys the driver only once every loop has ended.
    connections_.clear();
  }

  int lost_sessions() override {
    std::lock_guard lock(mutex_);
    int lost = static_cast<int>(expired_.size());
    auto now = std::chrono::steady_clock::now();
    for (const auto& [lease, at] : last_ack_) {
      if (!expired_.count(lease) && now - at > options_.session_ttl) ++lost;
    }
    return lost;
  }

  int leader_index() override {
    for (size_t i = 0; i < options_.endpoints.size(); ++i) {
      auto channel = grpc::CreateChannel("ipv4:" + options_.endpoints[i], grpc::InsecureChannelCredentials());
      auto stub = etcdserverpb::Maintenance::NewStub(channel);
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + 1s);
      etcdserverpb::StatusRequest request;
      etcdserverpb::StatusResponse response;
      if (!stub->Status(&context, request, &response).ok()) continue;
      if (response.leader() != 0 && response.leader() == response.header().member_id()) {
        return static_cast<int>(i);
      }
    }
    return -1;
  }

 private:
  // Shared with pending keepalive ticks on the scheduler's thread.
  struct Ticker {
    std::mutex mutex;
    bool running = false;
  };
  struct Connection {
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<etcdserverpb::KV::Stub> kv;
    std::unique_ptr<etcdserverpb::Lease::Stub> lease;
    std::unique_ptr<v3lockpb::Lock::Stub> lock;
    std::shared_ptr<KeepAliveStream> stream;  // under mutex_
  };
  struct Slot {
    int64_t lease = 0;
    std::string key;
  };

  Connection& connection_of(int session) { return *connections_[static_cast<size_t>(session / per_)]; }

  // Every TTL/3 (clientv3's rhythm): a keepalive for every lease, on its
  // connection's stream; a stream that ended (its member died) is replaced.
  void keepalive_tick(const std::shared_ptr<Ticker>& ticker) {
    std::lock_guard tick(ticker->mutex);
    if (!ticker->running) return;
    for (size_t c = 0; c < connections_.size(); ++c) {
      Connection& connection = *connections_[c];
      std::shared_ptr<KeepAliveStream> stream;
      {
        std::lock_guard lock(mutex_);
        if (!connection.stream || connection.stream->done()) {
          if (connection.stream) retired_.push_back(std::move(connection.stream));
          connection.stream = std::make_shared<KeepAliveStream>(
              connection.lease.get(), [this](int64_t lease, int64_t ttl) { on_keepalive(lease, ttl); });
        }
        stream = connection.stream;
      }
      std::vector<int64_t> leases;
      for (size_t i = c * static_cast<size_t>(per_); i < std::min(slots_.size(), (c + 1) * static_cast<size_t>(per_));
           ++i) {
        leases.push_back(slots_[i].lease);
      }
      stream->send(leases);
    }
    auto interval = std::max(std::chrono::milliseconds(100), options_.session_ttl / 3);
    options_.scheduler->after(interval, [this, ticker] { keepalive_tick(ticker); });
  }

  void on_keepalive(int64_t lease, int64_t ttl) {
    std::lock_guard lock(mutex_);
    if (ttl <= 0) {
      expired_.insert(lease);
    } else {
      last_ack_[lease] = std::chrono::steady_clock::now();
    }
  }

  DriverOptions options_;
  int per_ = 16;
  std::vector<std::unique_ptr<Connection>> connections_;
  std::vector<Slot> slots_;
  std::shared_ptr<Ticker> ticker_ = std::make_shared<Ticker>();
  std::mutex mutex_;
  std::map<int64_t, std::chrono::steady_clock::time_point> last_ack_;
  std::set<int64_t> expired_;
  std::vector<std::shared_ptr<KeepAliveStream>> retired_;
};

}  // namespace

std::unique_ptr<Driver> make_etcd_driver(const DriverOptions& options) {
  return std::make_unique<EtcdDriver>(options);
}

}  // namespace fencelock::bench
