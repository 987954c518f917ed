// Process-level tests of the hardened peer port (docs/architecture.md
// "Network"): a raw TCP connection speaking the peer protocol, as anyone
// who reaches the port can, must not take a node down, fill it with large
// frames or idle connections, or redirect its clients.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <catch2/catch.hpp>

#include "client/session.h"
#include "net/crc32c.h"
#include "net/frame.h"
#include "proto/client.pb.h"
#include "proto/peer.pb.h"
#include "tests/cluster/process_cluster.h"

namespace fencelock::testing {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

constexpr char kClusterId[] = "fencelock";  // fencelockd's default --cluster-id

// A blocking TCP connection to 127.0.0.1:port with framed reads under a deadline.
class RawConnection {
 public:
  explicit RawConnection(const std::string& endpoint) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(std::stoi(endpoint.substr(endpoint.rfind(':') + 1))));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  }
  ~RawConnection() { ::close(fd_); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  // Writes everything; false once the other side has closed.
  bool write(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  bool send(const google::protobuf::MessageLite& message) {
    std::string frame;
    REQUIRE(net::append_frame(message, frame));
    return write(frame);
  }

  // The next frame parsed into `message`; false on close, error or deadline.
  bool receive(google::protobuf::MessageLite& message, std::chrono::milliseconds timeout = 5s) {
    const auto deadline = SteadyClock::now() + timeout;
    net::FrameDecoder decoder;
    while (true) {
      net::DecodeStatus status = decoder.next_message(message);
      if (status == net::DecodeStatus::kFrame) return true;
      if (status != net::DecodeStatus::kNeedMore) return false;
      char buffer[4096];
      ssize_t n = read_until(deadline, buffer, sizeof(buffer));
      if (n <= 0) return false;
      decoder.feed(std::string_view(buffer, static_cast<size_t>(n)));
    }
  }

  // Whether the other side closes the connection within `timeout`
  // (whatever it sends first is read and discarded).
  bool closed_within(std::chrono::milliseconds timeout) {
    const auto deadline = SteadyClock::now() + timeout;
    char buffer[4096];
    while (SteadyClock::now() < deadline) {
      ssize_t n = read_until(deadline, buffer, sizeof(buffer));
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != ETIMEDOUT)) return true;
    }
    return false;
  }

 private:
  // read() once data is there or the peer closed; -1 with ETIMEDOUT at the deadline.
  ssize_t read_until(SteadyClock::time_point deadline, char* buffer, size_t size) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
    if (left.count() <= 0) {
      errno = ETIMEDOUT;
      return -1;
    }
    pollfd p{fd_, POLLIN, 0};
    int ready = ::poll(&p, 1, static_cast<int>(left.count()));
    if (ready <= 0) {
      errno = ETIMEDOUT;
      return -1;
    }
    return ::read(fd_, buffer, size);
  }

  int fd_ = -1;
};

peerpb::PeerEnvelope hello(uint64_t from, uint64_t to, const std::string& client_address) {
  peerpb::PeerEnvelope envelope;
  auto* h = envelope.mutable_hello();
  h->set_cluster_id(kClusterId);
  h->set_from(from);
  h->set_to(to);
  h->set_client_address(client_address);
  return envelope;
}

// Opens a peer connection to `to` claiming to be node `from`; requires the HelloAck to accept it.
std::unique_ptr<RawConnection> impersonate(ProcessCluster& cluster, uint64_t from, uint64_t to,
                                           const std::string& client_address = "") {
  auto connection = std::make_unique<RawConnection>(cluster.peer_endpoint(to));
  REQUIRE(connection->send(hello(from, to, client_address)));
  peerpb::PeerEnvelope ack;
  REQUIRE(connection->receive(ack));
  INFO(ack.hello_ack().reason());
  REQUIRE(ack.hello_ack().accepted());
  return connection;
}

uint64_t self_term(ProcessCluster& cluster, uint64_t id) {
  auto status = cluster.status_of(id);
  REQUIRE(status.has_value());
  for (const auto& member : status->members()) {
    if (member.id() == status->self_id()) return member.term();
  }
  FAIL("no row for the node itself");
  return 0;
}

uint64_t dropped_peer_messages(ProcessCluster& cluster, uint64_t id) {
  auto status = cluster.status_of(id);
  return status ? status->dropped_peer_messages() : 0;
}

// Acquire and release through the client library (the cluster serves).
void acquire_and_release(ProcessCluster& cluster, const std::string& lock) {
  auto client = cluster.client();
  client::SessionOptions options;
  options.ttl = 3000ms;
  options.client_name = "peer_port_test";
  auto session = client::Session::open(client, options);
  INFO(session.status().to_string());
  REQUIRE(session.ok());
  auto held = session.value()->acquire(lock);
  INFO(held.status().to_string());
  REQUIRE(held.ok());
  CHECK(held.value()->release().ok());
}

// The NOT_LEADER hint `id` gives, from a raw client request.
std::string leader_hint_from(ProcessCluster& cluster, uint64_t id) {
  RawConnection connection(cluster.client_endpoint(id));
  clientpb::Request request;
  request.set_id(7);
  request.mutable_describe()->set_lock("x");
  REQUIRE(connection.send(request));
  clientpb::Response response;
  REQUIRE(connection.receive(response));
  REQUIRE(response.code() == lockpb::NOT_LEADER);
  return response.leader_hint();
}

}  // namespace

TEST_CASE(
    "a raw peer connection's heartbeat of term+1 committing 2^62, against every node: every node "
    "stays up and serving, and counts the drop (the security issue's crafted heartbeat)",
    "[cluster][peer_port]") {
  ProcessCluster cluster(ProcessClusterOptions{});
  cluster.start_all();
  REQUIRE(cluster.wait_for_leader() != 0);
  for (uint64_t target : cluster.ids()) {
    // Claims another member's id, as the issue describes.
    uint64_t claimed = target == 1 ? 2 : 1;
    uint64_t term = self_term(cluster, target);
    auto connection = impersonate(cluster, claimed, target);
    peerpb::PeerEnvelope envelope;
    raftpb::Message* m = envelope.mutable_raft();
    m->set_type(raftpb::MSG_HEARTBEAT);
    m->set_from(claimed);
    m->set_to(target);
    m->set_term(term + 1);
    m->set_commit(uint64_t{1} << 62);
    REQUIRE(connection->send(envelope));
    INFO("node " << target << ": " << cluster.log_tail(target));
    CHECK(eventually([&] { return dropped_peer_messages(cluster, target) >= 1; }, 5s));
    CHECK(cluster.running(target));
  }
  for (uint64_t id : cluster.ids()) {
    INFO(cluster.log_tail(id));
    CHECK(cluster.running(id));
    CHECK_THAT(cluster.log_tail(id, 200), Catch::Contains("dropped MSG_HEARTBEAT from"));
  }
  REQUIRE(cluster.wait_for_leader() != 0);
  acquire_and_release(cluster, "after/crafted-heartbeat");
}

TEST_CASE(
    "a raw peer connection's InstallSnapshot whose data does not restore is dropped before the "
    "core takes it: the follower stays up, and up again after a restart",
    "[cluster][peer_port]") {
  ProcessCluster cluster(ProcessClusterOptions{});
  cluster.start_all();
  uint64_t leader = cluster.wait_for_leader();
  REQUIRE(leader != 0);
  uint64_t target = leader == 1 ? 2 : 1;
  auto status = cluster.status_of(target);
  REQUIRE(status.has_value());
  uint64_t term = self_term(cluster, target);
  uint64_t commit = 0;
  for (const auto& member : status->members()) {
    if (member.id() == target) commit = member.commit_index();
  }
  auto connection = impersonate(cluster, leader, target);
  const std::string data = "not a state machine snapshot";
  peerpb::PeerEnvelope envelope;
  auto* chunk = envelope.mutable_snapshot_chunk();
  chunk->set_stream_id(1);
  raftpb::Message* header = chunk->mutable_header();
  header->set_type(raftpb::MSG_SNAP);
  header->set_from(leader);
  header->set_to(target);
  header->set_term(term + 1);
  auto* meta = header->mutable_snapshot()->mutable_metadata();
  meta->set_index(commit + 100);
  meta->set_term(term + 1);
  for (uint64_t id : cluster.ids()) meta->mutable_conf_state()->add_voters(id);
  chunk->set_offset(0);
  chunk->set_total_bytes(data.size());
  chunk->set_data(data);
  chunk->set_last(true);
  chunk->set_crc32c(net::crc32c(data));
  REQUIRE(connection->send(envelope));
  INFO(cluster.log_tail(target));
  CHECK(eventually([&] { return dropped_peer_messages(cluster, target) >= 1; }, 5s));
  CHECK(cluster.running(target));
  // Nothing of it was persisted: the node starts again.
  cluster.kill(target);
  cluster.start(target);
  CHECK(eventually([&] { return cluster.status_of(target).has_value(); }));
  CHECK(cluster.running(target));
  REQUIRE(cluster.wait_for_leader() != 0);
  acquire_and_release(cluster, "after/bogus-snapshot");
}

TEST_CASE("a 1 MiB frame before any Hello closes the connection at once", "[cluster][peer_port]") {
  ProcessCluster cluster(ProcessClusterOptions{});
  cluster.start_all();
  REQUIRE(cluster.wait_for_leader() != 0);
  RawConnection connection(cluster.peer_endpoint(1));
  const uint32_t length = 1u << 20;
  std::string frame = {static_cast<char>(length >> 24), static_cast<char>(length >> 16),
                       static_cast<char>(length >> 8), static_cast<char>(length)};
  frame.append(length, 'x');
  (void)connection.write(std::string_view(frame).substr(0, 64 * 1024));
  // Well before the handshake deadline (5 s): the frame limit closed it.
  CHECK(connection.closed_within(2s));
  INFO(cluster.log_tail(1));
  CHECK_THAT(cluster.log_tail(1, 100), Catch::Contains("before its Hello"));
  acquire_and_release(cluster, "after/large-frame");
}

TEST_CASE("a peer connection that sends nothing is closed at the handshake deadline",
          "[cluster][peer_port]") {
  ProcessCluster cluster(ProcessClusterOptions{});
  cluster.start_all();
  REQUIRE(cluster.wait_for_leader() != 0);
  RawConnection connection(cluster.peer_endpoint(2));
  const auto start = SteadyClock::now();
  CHECK(connection.closed_within(10s));
  const auto took = SteadyClock::now() - start;
  CHECK(took >= 4s);  // the deadline is 5 s
  INFO(cluster.log_tail(2));
  CHECK_THAT(cluster.log_tail(2, 100), Catch::Contains("no Hello within 5000 ms"));
}

TEST_CASE("a Hello claiming the leader's id with a bogus client address changes no NOT_LEADER hint",
          "[cluster][peer_port]") {
  ProcessCluster cluster(ProcessClusterOptions{});
  cluster.start_all();
  uint64_t leader = cluster.wait_for_leader();
  REQUIRE(leader != 0);
  const std::string real = cluster.client_endpoint(leader);
  std::vector<std::unique_ptr<RawConnection>> impostors;
  for (uint64_t id : cluster.ids()) {
    if (id == leader) continue;
    REQUIRE(eventually([&] { return leader_hint_from(cluster, id) == real; }));
    impostors.push_back(impersonate(cluster, leader, id, "127.0.0.1:9"));
  }
  for (uint64_t id : cluster.ids()) {
    if (id == leader) continue;
    CHECK(leader_hint_from(cluster, id) == real);
    auto status = cluster.status_of(id);
    REQUIRE(status.has_value());
    for (const auto& member : status->members()) {
      if (member.id() == leader) CHECK(member.address() == real);
    }
  }
  // The client library, which follows hints, still finds the leader.
  acquire_and_release(cluster, "after/impostor-hello");
}

}  // namespace fencelock::testing
