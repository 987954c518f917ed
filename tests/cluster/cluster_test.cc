// Process-level tests of fencelockd: real processes on 127.0.0.1, real
// RocksDB with fsync, real TCP, through the client library. Each scenario
// runs with 3 and with 5 nodes.

#include <signal.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <condition_variable>
#include <future>
#include <mutex>
#include <set>

#include "client/session.h"
#include "net/asio.h"
#include "net/frame.h"
#include "tests/cluster/process_cluster.h"

namespace fencelock::testing {
namespace {

using namespace std::chrono_literals;
using client::AcquireOptions;
using client::Session;
using client::SessionOptions;

std::shared_ptr<Session> open_session(const std::shared_ptr<client::Client>& client,
                                      std::chrono::milliseconds ttl = 3000ms) {
  SessionOptions options;
  options.ttl = ttl;
  options.client_name = "cluster_test";
  auto session = Session::open(client, options);
  INFO(session.status().to_string());
  REQUIRE(session.ok());
  return session.value();
}

// A session opened with a raw request: no keepalives are ever sent.
uint64_t open_silent_session(client::Client& client, uint64_t ttl_ms) {
  clientpb::Request request;
  request.mutable_open_session()->set_ttl_ms(ttl_ms);
  auto response = client.call(request);
  REQUIRE(response.code() == lockpb::OK);
  return response.session_opened().session_id();
}

lockpb::Sequencer raw_acquire(client::Client& client, uint64_t session, uint64_t sequence,
                              const std::string& lock, uint64_t wait_ms = 0) {
  clientpb::Request request;
  request.mutable_acquire()->mutable_key()->set_session_id(session);
  request.mutable_acquire()->mutable_key()->set_sequence(sequence);
  request.mutable_acquire()->set_lock(lock);
  request.mutable_acquire()->set_wait_ms(wait_ms);
  auto response = client.call(request, std::chrono::milliseconds(wait_ms));
  INFO(response.message());
  REQUIRE(response.code() == lockpb::OK);
  return response.granted();
}

// Makes `count` asynchronous calls, start(i, done) for each i, and returns
// their values once all have answered within `timeout`; any error fails the
// test. The state is shared with the callbacks, so one that answers after a
// failed REQUIRE here has ended the test touches nothing freed.
template <typename T, typename Start>
std::vector<T> gather_async(int count, std::chrono::seconds timeout, Start start) {
  struct Gathered {
    std::mutex mutex;
    std::condition_variable cv;
    std::vector<T> values;
    std::vector<std::string> errors;
  };
  auto gathered = std::make_shared<Gathered>();
  for (int i = 0; i < count; ++i) {
    start(i, [gathered](Result<T> result) {
      std::lock_guard lock(gathered->mutex);
      if (result.ok()) {
        gathered->values.push_back(result.value());
      } else {
        gathered->errors.push_back(result.status().to_string());
      }
      gathered->cv.notify_all();
    });
  }
  std::unique_lock lock(gathered->mutex);
  REQUIRE(gathered->cv.wait_for(lock, timeout, [&] {
    return gathered->values.size() + gathered->errors.size() == static_cast<size_t>(count);
  }));
  INFO((gathered->errors.empty() ? "" : gathered->errors.front()));
  REQUIRE(gathered->errors.empty());
  return gathered->values;
}

}  // namespace

TEST_CASE("a cluster elects a leader and serves acquire, describe and release", "[cluster]") {
  int nodes = GENERATE(3, 5);
  ProcessClusterOptions options;
  options.nodes = nodes;
  ProcessCluster cluster(options);
  cluster.start_all();
  uint64_t leader = cluster.wait_for_leader();
  INFO(cluster.log_tail(1));
  REQUIRE(leader != 0);

  auto client = cluster.client();
  auto session = open_session(client);
  auto lock = session->acquire("jobs/nightly");
  REQUIRE(lock.ok());
  CHECK(lock.value()->token() >= 1);

  auto info = client->describe("jobs/nightly");
  REQUIRE(info.ok());
  REQUIRE(info.value().holders_size() == 1);
  CHECK(info.value().holders(0).session_id() == session->id());
  CHECK(info.value().holders(0).token() == lock.value()->token());

  // Another session's try-acquire fails while it is held.
  auto other = open_session(client);
  auto denied = other->try_acquire("jobs/nightly");
  REQUIRE_FALSE(denied.ok());
  CHECK(denied.status().code() == lockpb::TIMEOUT);

  REQUIRE(lock.value()->release().ok());
  CHECK(client->describe("jobs/nightly").code() == lockpb::NOT_FOUND);
  auto again = other->acquire("jobs/nightly");
  REQUIRE(again.ok());
  CHECK(again.value()->token() > lock.value()->token());
  auto current = client->check_sequencer(again.value()->sequencer());
  REQUIRE(current.ok());
  CHECK(current.value());
  CHECK_FALSE(client->check_sequencer(lock.value()->sequencer()).value());
}

TEST_CASE("after SIGKILL of the leader a new leader serves within 3 s and nothing is lost",
          "[cluster]") {
  int nodes = GENERATE(3, 5);
  ProcessClusterOptions options;
  options.nodes = nodes;
  ProcessCluster cluster(options);
  cluster.start_all();
  uint64_t leader = cluster.wait_for_leader();
  REQUIRE(leader != 0);

  auto client = cluster.client();
  auto session = open_session(client, 10000ms);
  std::vector<std::unique_ptr<client::Lock>> held;
  uint64_t highest = 0;
  for (int i = 0; i < 5; ++i) {
    auto lock = session->acquire("held/" + std::to_string(i));
    REQUIRE(lock.ok());
    highest = std::max(highest, lock.value()->token());
    held.push_back(std::move(lock).value());
  }
  // One at a time, the acquires above reach the leader's disk in writes of
  // one entry, done on its loop. These arrive together and are written in
  // larger batches, on its storage thread: both kinds must outlive it.
  constexpr int kBatched = 40;
  auto batched = gather_async<lockpb::Sequencer>(kBatched, 10s, [&](int i, auto done) {
    session->acquire_async("batched/" + std::to_string(i), AcquireOptions{}, std::move(done));
  });
  for (const auto& sequencer : batched) highest = std::max(highest, sequencer.token());

  cluster.kill(leader);
  auto killed_at = std::chrono::steady_clock::now();
  // The next successful acquire, through the client's own retries.
  auto probe = open_session(client, 10000ms);
  auto next = probe->acquire("after/failover");
  auto elapsed = std::chrono::steady_clock::now() - killed_at;
  REQUIRE(next.ok());
  CHECK(elapsed < 3s);
  CHECK(next.value()->token() > highest);

  // Held locks and the session survived the leader's death.
  for (int i = 0; i < 5; ++i) {
    auto info = client->describe("held/" + std::to_string(i));
    REQUIRE(info.ok());
    REQUIRE(info.value().holders_size() == 1);
    CHECK(info.value().holders(0).session_id() == session->id());
  }
  for (int i = 0; i < kBatched; ++i) {
    auto info = client->describe("batched/" + std::to_string(i));
    REQUIRE(info.ok());
    REQUIRE(info.value().holders_size() == 1);
    CHECK(info.value().holders(0).session_id() == session->id());
  }
  CHECK_FALSE(session->lost());
  for (auto& lock : held) CHECK(lock->release().ok());
}

TEST_CASE("a killed follower restarts and catches up, by InstallSnapshot when its log was compacted",
          "[cluster]") {
  int nodes = GENERATE(3, 5);
  ProcessClusterOptions options;
  options.nodes = nodes;
  options.snapshot_every = 50;
  options.keep_log_entries = 10;
  ProcessCluster cluster(options);
  cluster.start_all();
  uint64_t leader = cluster.wait_for_leader();
  REQUIRE(leader != 0);
  uint64_t follower = leader % nodes + 1;
  cluster.kill(follower);

  auto client = cluster.client();
  auto session = open_session(client, 10000ms);
  for (int i = 0; i < 150; ++i) {
    auto lock = session->acquire("catchup/" + std::to_string(i % 7));
    REQUIRE(lock.ok());
    REQUIRE(lock.value()->release().ok());
  }
  auto keep = session->acquire("catchup/kept");
  REQUIRE(keep.ok());

  cluster.start(follower);
  auto leader_status = cluster.status_of(leader);
  REQUIRE(leader_status);
  uint64_t target = 0;
  for (const auto& member : leader_status->members()) {
    if (member.id() == leader) target = member.applied_index();
  }
  REQUIRE(eventually([&] {
    auto status = cluster.status_of(follower);
    if (!status) return false;
    for (const auto& member : status->members()) {
      if (member.id() == follower) return member.applied_index() >= target;
    }
    return false;
  }));
  auto log = cluster.log_tail(follower, 200);
  CHECK_THAT(log, Catch::Contains("restored snapshot"));
}

// A leader's view of which followers it waits for (MemberStatus.persist).
std::map<uint64_t, std::string> persist_modes(ProcessCluster& cluster, uint64_t leader) {
  std::map<uint64_t, std::string> modes;
  auto status = cluster.status_of(leader);
  if (!status) return modes;
  for (const auto& member : status->members()) {
    if (member.id() != leader) modes[member.id()] = member.persist();
  }
  return modes;
}

TEST_CASE(
    "a leader waits for quorum-1 prompt followers; when one dies a lazy one takes its place",
    "[cluster]") {
  int nodes = GENERATE(3, 5);
  ProcessClusterOptions options;
  options.nodes = nodes;
  ProcessCluster cluster(options);
  cluster.start_all();
  uint64_t leader = cluster.wait_for_leader();
  REQUIRE(leader != 0);
  auto client = cluster.client();
  auto session = open_session(client, 10000ms);
  auto warm = session->acquire("prompt/warm");
  REQUIRE(warm.ok());

  size_t want_prompt = static_cast<size_t>(nodes / 2);  // quorum - 1
  auto count = [](const std::map<uint64_t, std::string>& modes, const std::string& mode) {
    return static_cast<size_t>(
        std::count_if(modes.begin(), modes.end(), [&](const auto& m) { return m.second == mode; }));
  };
  std::map<uint64_t, std::string> modes;
  REQUIRE(eventually([&] {
    modes = persist_modes(cluster, leader);
    return count(modes, "prompt") == want_prompt;
  }));
  CHECK(count(modes, "lazy") == static_cast<size_t>(nodes - 1) - want_prompt);

  // Kill a prompt follower: commits go on (a lazy follower acknowledges
  // within its window), and within a few heartbeat rounds a lazy one is
  // prompt in its place.
  uint64_t victim = 0;
  for (const auto& [id, mode] : modes) {
    if (mode == "prompt") victim = id;
  }
  REQUIRE(victim != 0);
  cluster.kill(victim);
  auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 200; ++i) {
    auto lock = session->acquire("prompt/" + std::to_string(i % 5));
    REQUIRE(lock.ok());
    REQUIRE(lock.value()->release().ok());
  }
  // Generous: 200 pairs take well under a second here; a lazy follower
  // that never synced would stall each commit until a heartbeat.
  CHECK(std::chrono::steady_clock::now() - started < 20s);
  REQUIRE(eventually([&] {
    modes = persist_modes(cluster, leader);
    return count(modes, "prompt") == want_prompt && modes[victim] != "prompt";
  }));
  // Nothing acknowledged was lost: the cluster restarted whole still has it.
  for (uint64_t id : cluster.ids()) {
    if (cluster.running(id)) cluster.kill(id);
  }
  cluster.start_all();
  REQUIRE(cluster.wait_for_leader() != 0);
  auto held = cluster.client()->describe("prompt/warm");
  REQUIRE(held.ok());
  REQUIRE(held.value().holders_size() == 1);
  CHECK(held.value().holders(0).token() == warm.value()->token());
}

TEST_CASE("a session without keepalives expires and its lock goes to the next waiter", "[cluster]") {
  int nodes = GENERATE(3, 5);
  ProcessClusterOptions options;
  options.nodes = nodes;
  ProcessCluster cluster(options);
  cluster.start_all();
  REQUIRE(cluster.wait_for_leader() != 0);

  auto client = cluster.client();
  uint64_t silent = open_silent_session(*client, 1000);
  auto first = raw_acquire(*client, silent, 1, "expiry/lock");

  auto waiter = open_session(client, 5000ms);
  AcquireOptions wait;
  wait.wait = 10000ms;
  auto started = std::chrono::steady_clock::now();
  auto granted = waiter->acquire("expiry/lock", wait);
  auto waited = std::chrono::steady_clock::now() - started;
  REQUIRE(granted.ok());
  CHECK(granted.value()->token() > first.token());
  CHECK(waited >= 500ms);
  CHECK(waited < 5s);
  CHECK_FALSE(client->check_sequencer(first).value());
}

TEST_CASE("a session that keeps alive survives a leader kill", "[cluster]") {
  int nodes = GENERATE(3, 5);
  ProcessClusterOptions options;
  options.nodes = nodes;
  ProcessCluster cluster(options);
  cluster.start_all();
  uint64_t leader = cluster.wait_for_leader();
  REQUIRE(leader != 0);

  auto client = cluster.client();
  auto session = open_session(client, 2000ms);
  auto lock = session->acquire("survivor");
  REQUIRE(lock.ok());
  cluster.kill(leader);
  REQUIRE(cluster.wait_for_leader() != 0);
  // Several TTLs pass under the new leader without the session being lost.
  CHECK_FALSE(eventually([&] { return session->lost(); }, 5s));
  auto current = client->check_sequencer(lock.value()->sequencer());
  REQUIRE(current.ok());
  CHECK(current.value());
}

TEST_CASE("open_async opens many sessions at once, each kept alive and able to lock", "[cluster]") {
  ProcessClusterOptions options;
  options.nodes = 3;
  ProcessCluster cluster(options);
  cluster.start_all();
  REQUIRE(cluster.wait_for_leader() != 0);
  auto client = cluster.client();

  constexpr int kSessions = 300;
  SessionOptions session_options;
  session_options.ttl = 2000ms;
  auto sessions = gather_async<std::shared_ptr<Session>>(kSessions, 20s, [&](int, auto done) {
    Session::open_async(client, session_options, std::move(done));
  });
  std::set<uint64_t> ids;
  for (const auto& session : sessions) ids.insert(session->id());
  CHECK(ids.size() == static_cast<size_t>(kSessions));

  // Longer than a TTL: keepalives started by open_async hold every session.
  CHECK_FALSE(eventually([&] {
    return std::any_of(sessions.begin(), sessions.end(), [](const auto& s) { return s->lost(); });
  }, 3s));
  auto lock = sessions.back()->acquire("opened-async");
  REQUIRE(lock.ok());
  CHECK(lock.value()->release().ok());

  // Errors come through the callback too.
  SessionOptions bad;
  bad.ttl = 10ms;
  std::promise<Status> failed;
  Session::open_async(client, bad, [&](Result<std::shared_ptr<Session>> result) { failed.set_value(result.status()); });
  auto future = failed.get_future();
  REQUIRE(future.wait_for(15s) == std::future_status::ready);
  CHECK(future.get().code() == lockpb::INVALID_ARGUMENT);
}

TEST_CASE("garbage, oversized frames, half frames and idle connections do not stop service",
          "[cluster]") {
  int nodes = GENERATE(3, 5);
  ProcessClusterOptions options;
  options.nodes = nodes;
  ProcessCluster cluster(options);
  cluster.start_all();
  uint64_t leader = cluster.wait_for_leader();
  REQUIRE(leader != 0);

  boost::asio::io_context io;
  std::string host = "127.0.0.1";
  auto endpoint_of = [&](uint64_t id) {
    std::string address = cluster.client_endpoint(id);
    auto port = static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
    return boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address(host), port);
  };
  std::vector<std::unique_ptr<boost::asio::ip::tcp::socket>> sockets;
  auto connect = [&](uint64_t id) {
    auto socket = std::make_unique<boost::asio::ip::tcp::socket>(io);
    socket->connect(endpoint_of(id));
    sockets.push_back(std::move(socket));
    return sockets.back().get();
  };
  for (uint64_t id : cluster.ids()) {
    boost::asio::write(*connect(id), boost::asio::buffer(std::string(64, '\xff')));
    boost::asio::write(*connect(id), boost::asio::buffer(std::string("\x7f\xff\xff\xff", 4)));
    clientpb::Request request;
    request.set_id(1);
    request.mutable_describe()->set_lock("half");
    std::string frame;
    net::append_frame(request, frame);
    boost::asio::write(*connect(id), boost::asio::buffer(frame.substr(0, frame.size() - 2)));
  }
  // A thousand idle connections spread over the members.
  for (int i = 0; i < 1000; ++i) connect(cluster.ids()[i % nodes]);

  auto client = cluster.client();
  auto session = open_session(client);
  auto lock = session->acquire("still/serving");
  REQUIRE(lock.ok());
  for (uint64_t id : cluster.ids()) {
    CHECK(cluster.running(id));
    CHECK(cluster.status_of(id).has_value());
  }
}

TEST_CASE("SIGTERM on the leader hands leadership over and exits 0", "[cluster]") {
  ProcessClusterOptions options;
  options.nodes = 3;
  ProcessCluster cluster(options);
  cluster.start_all();
  uint64_t leader = cluster.wait_for_leader();
  REQUIRE(leader != 0);
  auto client = cluster.client();
  auto session = open_session(client, 10000ms);
  auto lock = session->acquire("graceful");
  REQUIRE(lock.ok());
  CHECK(cluster.terminate(leader) == 0);
  INFO(cluster.log_tail(leader));
  CHECK_THAT(cluster.log_tail(leader, 100), Catch::Contains("transferring leadership"));
  uint64_t next = cluster.wait_for_leader(3s);
  CHECK(next != 0);
  CHECK(next != leader);
  auto info = client->describe("graceful");
  REQUIRE(info.ok());
  CHECK(info.value().holders_size() == 1);
}

}  // namespace fencelock::testing
