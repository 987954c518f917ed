// InstallSnapshot streams between real PeerTransports on loopback TCP:
// chunking and reassembly, flow control, other messages between chunks,
// and streams that break (a restart on either side, a bad checksum, a
// chunk out of order, a stall), each discarded by the receiver and reported
// to the sender.

#include <catch2/catch.hpp>

#include <optional>
#include <random>
#include <vector>

#include "common/logging.h"
#include "net/crc32c.h"
#include "net/peer_transport.h"
#include "proto/peer.pb.h"
#include "tests/net/loop.h"

namespace fencelock::net {
namespace {

using testing::run_until;
using namespace std::chrono_literals;

uint16_t free_port(boost::asio::io_context& io) {
  Tcp::acceptor probe(io, Tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  return probe.local_endpoint().port();
}

std::map<uint64_t, std::string> two_addresses(boost::asio::io_context& io) {
  return {{1, "127.0.0.1:" + std::to_string(free_port(io))},
          {2, "127.0.0.1:" + std::to_string(free_port(io))}};
}

// Small chunks and frames, so that a few MiB make a long stream.
PeerTransportOptions small_stream_options(uint64_t id, std::map<uint64_t, std::string> addresses) {
  PeerTransportOptions options;
  options.self_id = id;
  options.cluster_id = "test-cluster";
  options.peer_addresses = std::move(addresses);
  options.min_backoff = 10ms;
  options.max_backoff = 100ms;
  options.seed = id;
  options.snapshot_chunk_bytes = 64 * 1024;
  options.snapshot_window_bytes = 128 * 1024;
  options.max_frame_bytes = 256 * 1024;
  options.snapshot_stall_timeout = 10s;
  return options;
}

struct Member {
  Member(boost::asio::io_context& io, PeerTransportOptions options) {
    std::string address = options.peer_addresses.at(options.self_id);
    transport = std::make_unique<PeerTransport>(io, std::move(options), get_logger("test"));
    REQUIRE(transport->listen(address).ok());
    transport->start([this](raftpb::Message message) { received.push_back(std::move(message)); },
                     [](uint64_t, bool) {},
                     [this](uint64_t peer, bool ok) { outcomes.emplace_back(peer, ok); });
  }
  size_t snapshots_received() const {
    size_t n = 0;
    for (const auto& m : received) n += m.type() == raftpb::MSG_SNAP;
    return n;
  }
  std::unique_ptr<PeerTransport> transport;
  std::vector<raftpb::Message> received;
  std::vector<std::pair<uint64_t, bool>> outcomes;  // on_snapshot calls
};

std::shared_ptr<const std::string> random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string bytes(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t word = rng();
    for (size_t k = 0; k < 8 && i + k < n; ++k) bytes[i + k] = static_cast<char>(word >> (8 * k));
  }
  return std::make_shared<const std::string>(std::move(bytes));
}

raftpb::Message snapshot_header(uint64_t from, uint64_t to, uint64_t index, uint64_t term = 3) {
  raftpb::Message m;
  m.set_type(raftpb::MSG_SNAP);
  m.set_from(from);
  m.set_to(to);
  m.set_term(term);
  auto* metadata = m.mutable_snapshot()->mutable_metadata();
  metadata->set_index(index);
  metadata->set_term(term);
  metadata->mutable_conf_state()->add_voters(1);
  metadata->mutable_conf_state()->add_voters(2);
  return m;
}

raftpb::Message heartbeat(uint64_t from, uint64_t to, uint64_t term) {
  raftpb::Message message;
  message.set_type(raftpb::MSG_HEARTBEAT);
  message.set_from(from);
  message.set_to(to);
  message.set_term(term);
  return message;
}

// What a chunk frame may hold besides its data: the envelope's and the
// chunk's keys and lengths, and the first chunk's header.
constexpr size_t kChunkOverheadBytes = 512;

}  // namespace

TEST_CASE("crc32c matches the standard check values and runs in pieces", "[net]") {
  CHECK(crc32c("123456789") == 0xE3069283u);
  CHECK(crc32c(std::string(32, '\0')) == 0x8A9136AAu);  // RFC 3720 B.4
  CHECK(crc32c("") == 0u);
  std::string text = "The quick brown fox jumps over the lazy dog, 0123456789 times over.";
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    std::string_view all(text);
    CHECK(crc32c(all.substr(cut), crc32c(all.substr(0, cut))) == crc32c(all));
  }
}

TEST_CASE("a snapshot far over the frame limit arrives in chunks, verified, and both sides say so",
          "[net]") {
  boost::asio::io_context io;
  auto addresses = two_addresses(io);
  Member one(io, small_stream_options(1, addresses));
  Member two(io, small_stream_options(2, addresses));
  REQUIRE(run_until(io, [&] { return one.transport->connected(2); }));

  auto data = random_bytes((8 << 20) + 12345, 7);  // 32 frame limits' worth
  REQUIRE(one.transport->send_snapshot(snapshot_header(1, 2, 42), data));
  // Asked again while it streams (the core's retry): the same stream goes on.
  REQUIRE(one.transport->send_snapshot(snapshot_header(1, 2, 42), data));
  REQUIRE(run_until(io, [&] { return !one.outcomes.empty(); }));

  REQUIRE(two.received.size() == 1);
  const raftpb::Message& got = two.received[0];
  CHECK(got.type() == raftpb::MSG_SNAP);
  CHECK(got.from() == 1);
  CHECK(got.to() == 2);
  CHECK(got.term() == 3);
  CHECK(got.snapshot().metadata().index() == 42);
  CHECK(got.snapshot().metadata().conf_state().voters_size() == 2);
  CHECK(got.snapshot().data() == *data);
  CHECK(one.outcomes == std::vector<std::pair<uint64_t, bool>>{{2, true}});

  const SnapshotStreamStats& sent = one.transport->snapshot_stats();
  CHECK(sent.started == 1);
  CHECK(sent.succeeded == 1);
  CHECK(sent.chunks_sent == data->size() / (64 * 1024) + 1);
  // Never more than the window and one chunk queued: the whole is never.
  CHECK(sent.max_queued_bytes <= 128 * 1024 + 64 * 1024 + kChunkOverheadBytes);
  CHECK(two.transport->snapshot_stats().received == 1);
  CHECK(two.transport->snapshot_stats().dropped == 0);

  // A MSG_SNAP handed to send() whole is streamed the same way.
  raftpb::Message whole = snapshot_header(1, 2, 43);
  whole.mutable_snapshot()->set_data(std::string(300000, 'w'));
  REQUIRE(one.transport->send(whole));
  REQUIRE(run_until(io, [&] { return one.outcomes.size() == 2; }));
  REQUIRE(two.received.size() == 2);
  CHECK(two.received[1].snapshot().data() == std::string(300000, 'w'));
}

TEST_CASE("other Raft messages to the peer go out between the chunks of a snapshot", "[net]") {
  boost::asio::io_context io;
  auto addresses = two_addresses(io);
  Member one(io, small_stream_options(1, addresses));
  Member two(io, small_stream_options(2, addresses));
  REQUIRE(run_until(io, [&] { return one.transport->connected(2); }));

  auto data = random_bytes(16 << 20, 11);
  REQUIRE(one.transport->send_snapshot(snapshot_header(1, 2, 99), data));
  // Heartbeats sent after the stream started reach the peer long before
  // the stream ends: they wait behind at most a window of chunks.
  for (uint64_t term = 1; term <= 20; ++term) REQUIRE(one.transport->send(heartbeat(1, 2, term)));
  REQUIRE(run_until(io, [&] { return two.received.size() == 21; }, 30s));
  CHECK(two.received.back().type() == raftpb::MSG_SNAP);
  for (size_t i = 0; i < 20; ++i) CHECK(two.received[i].term() == i + 1);
  CHECK(two.received.back().snapshot().data() == *data);
  REQUIRE(run_until(io, [&] { return !one.outcomes.empty(); }));
  CHECK(one.outcomes.front().second);
}

TEST_CASE("a receiver that does not read holds the sender to its window", "[net]") {
  // Two loops: the receiver's runs only when the test says so.
  boost::asio::io_context sender_io;
  boost::asio::io_context receiver_io;
  auto addresses = two_addresses(sender_io);
  Member one(sender_io, small_stream_options(1, addresses));
  Member two(receiver_io, small_stream_options(2, addresses));
  auto both = [&](const std::function<bool()>& done, std::chrono::milliseconds timeout) {
    return run_until(sender_io, [&] {
      receiver_io.restart();
      receiver_io.poll();
      return done();
    }, timeout);
  };
  REQUIRE(both([&] { return one.transport->connected(2); }, 10s));

  auto data = random_bytes(64 << 20, 13);
  REQUIRE(one.transport->send_snapshot(snapshot_header(1, 2, 5), data));
  // The receiver stops reading: the kernel's buffers fill, then the
  // sender's writes stop completing, and it queues nothing more.
  sender_io.restart();
  sender_io.run_for(1500ms);
  const SnapshotStreamStats& sent = one.transport->snapshot_stats();
  // What the kernel's buffers took, and a window queued: far from all of it.
  CHECK(one.transport->queued_bytes(2) <= 128 * 1024 + 64 * 1024 + kChunkOverheadBytes);
  CHECK(sent.chunks_sent < data->size() / (64 * 1024) / 2);
  CHECK(one.outcomes.empty());

  // The receiver reads again: the stream completes.
  REQUIRE(both([&] { return !one.outcomes.empty(); }, 60s));
  CHECK(one.outcomes.front() == std::pair<uint64_t, bool>{2, true});
  REQUIRE(two.snapshots_received() == 1);
  CHECK(two.received.back().snapshot().data() == *data);
  CHECK(sent.max_queued_bytes <= 128 * 1024 + 64 * 1024 + kChunkOverheadBytes);
}

TEST_CASE("a stream broken by the receiver's restart is reported failed, and the next succeeds",
          "[net]") {
  boost::asio::io_context io;
  auto addresses = two_addresses(io);
  Member one(io, small_stream_options(1, addresses));
  auto two = std::make_unique<Member>(io, small_stream_options(2, addresses));
  REQUIRE(run_until(io, [&] { return one.transport->connected(2); }));

  auto data = random_bytes(32 << 20, 17);
  REQUIRE(one.transport->send_snapshot(snapshot_header(1, 2, 7), data));
  REQUIRE(run_until(io, [&] { return one.transport->snapshot_stats().chunks_sent >= 20; }));
  two.reset();
  REQUIRE(run_until(io, [&] { return !one.outcomes.empty(); }));
  CHECK(one.outcomes.front() == std::pair<uint64_t, bool>{2, false});
  CHECK(one.transport->snapshot_stats().failed == 1);

  two = std::make_unique<Member>(io, small_stream_options(2, addresses));
  REQUIRE(run_until(io, [&] { return one.transport->connected(2); }));
  REQUIRE(one.transport->send_snapshot(snapshot_header(1, 2, 7), data));
  REQUIRE(run_until(io, [&] { return one.outcomes.size() == 2; }, 30s));
  CHECK(one.outcomes.back() == std::pair<uint64_t, bool>{2, true});
  REQUIRE(two->snapshots_received() == 1);
  CHECK(two->received.back().snapshot().data() == *data);
}

TEST_CASE("a stream whose sender goes away is discarded by the receiver", "[net]") {
  boost::asio::io_context io;
  auto addresses = two_addresses(io);
  auto one = std::make_unique<Member>(io, small_stream_options(1, addresses));
  Member two(io, small_stream_options(2, addresses));
  REQUIRE(run_until(io, [&] { return one->transport->connected(2); }));

  auto data = random_bytes(32 << 20, 19);
  REQUIRE(one->transport->send_snapshot(snapshot_header(1, 2, 8), data));
  REQUIRE(run_until(io, [&] { return one->transport->snapshot_stats().chunks_sent >= 20; }));
  one.reset();  // the leader restarts
  REQUIRE(run_until(io, [&] { return two.transport->snapshot_stats().dropped == 1; }));
  CHECK(two.snapshots_received() == 0);

  // The restarted sender's stream arrives whole, alone.
  one = std::make_unique<Member>(io, small_stream_options(1, addresses));
  REQUIRE(run_until(io, [&] { return one->transport->connected(2); }));
  auto newer = random_bytes(3 << 20, 23);
  REQUIRE(one->transport->send_snapshot(snapshot_header(1, 2, 9), newer));
  REQUIRE(run_until(io, [&] { return !one->outcomes.empty(); }, 30s));
  REQUIRE(two.snapshots_received() == 1);
  CHECK(two.received.back().snapshot().metadata().index() == 9);
  CHECK(two.received.back().snapshot().data() == *newer);
}

TEST_CASE("a newer snapshot replaces the stream under way", "[net]") {
  boost::asio::io_context io;
  auto addresses = two_addresses(io);
  Member one(io, small_stream_options(1, addresses));
  Member two(io, small_stream_options(2, addresses));
  REQUIRE(run_until(io, [&] { return one.transport->connected(2); }));
  auto old_data = random_bytes(32 << 20, 29);
  REQUIRE(one.transport->send_snapshot(snapshot_header(1, 2, 10), old_data));
  REQUIRE(run_until(io, [&] { return one.transport->snapshot_stats().chunks_sent >= 10; }));
  auto new_data = random_bytes(1 << 20, 31);
  REQUIRE(one.transport->send_snapshot(snapshot_header(1, 2, 20), new_data));
  REQUIRE(run_until(io, [&] { return !one.outcomes.empty(); }, 30s));
  CHECK(one.outcomes == std::vector<std::pair<uint64_t, bool>>{{2, true}});
  REQUIRE(two.snapshots_received() == 1);
  CHECK(two.received.back().snapshot().metadata().index() == 20);
  CHECK(two.received.back().snapshot().data() == *new_data);
  CHECK(two.transport->snapshot_stats().dropped == 1);
}

TEST_CASE("a sender whose socket stops draining gives the stream up after the stall timeout",
          "[net]") {
  boost::asio::io_context sender_io;
  boost::asio::io_context receiver_io;
  auto addresses = two_addresses(sender_io);
  PeerTransportOptions options = small_stream_options(1, addresses);
  options.snapshot_stall_timeout = 300ms;
  Member one(sender_io, options);
  Member two(receiver_io, small_stream_options(2, addresses));
  REQUIRE(run_until(sender_io, [&] {
    receiver_io.restart();
    receiver_io.poll();
    return one.transport->connected(2);
  }));
  auto data = random_bytes(64 << 20, 37);
  REQUIRE(one.transport->send_snapshot(snapshot_header(1, 2, 11), data));
  // Only the sender's loop runs: nothing drains.
  REQUIRE(run_until(sender_io, [&] { return !one.outcomes.empty(); }, 10s));
  CHECK(one.outcomes.front() == std::pair<uint64_t, bool>{2, false});
  CHECK(one.transport->snapshot_stats().failed == 1);
}

// A peer that speaks the wire by hand, to send what a PeerTransport never
// would: blocking writes (small enough for the kernel's buffers) and reads
// of what the receiver has already answered.
class RawPeer {
 public:
  RawPeer(boost::asio::io_context& io, const std::string& address, uint64_t from, uint64_t to)
      : io_(io), socket_(io) {
    auto colon = address.rfind(':');
    socket_.connect(Tcp::endpoint(boost::asio::ip::make_address(address.substr(0, colon)),
                                  static_cast<uint16_t>(std::stoi(address.substr(colon + 1)))));
    peerpb::PeerEnvelope hello;
    hello.mutable_hello()->set_cluster_id("test-cluster");
    hello.mutable_hello()->set_from(from);
    hello.mutable_hello()->set_to(to);
    write(hello);
    peerpb::PeerEnvelope ack = read();
    REQUIRE(ack.has_hello_ack());
    REQUIRE(ack.hello_ack().accepted());
  }

  void write(const peerpb::PeerEnvelope& envelope) {
    std::string frame;
    REQUIRE(append_frame(envelope, frame, kMaxPeerFrameBytes));
    boost::asio::write(socket_, boost::asio::buffer(frame));
  }

  void chunk(uint64_t stream, uint64_t offset, uint64_t total, std::string data, bool last = false,
             uint32_t crc = 0, std::optional<raftpb::Message> header = std::nullopt) {
    peerpb::PeerEnvelope envelope;
    auto* c = envelope.mutable_snapshot_chunk();
    c->set_stream_id(stream);
    c->set_offset(offset);
    c->set_total_bytes(total);
    c->set_data(std::move(data));
    c->set_last(last);
    c->set_crc32c(crc);
    if (header) *c->mutable_header() = *header;
    write(envelope);
  }

  // The next frame from the receiver, running its loop until it comes.
  peerpb::PeerEnvelope read() {
    REQUIRE(run_until(io_, [&] {
      boost::system::error_code ec;
      return socket_.available(ec) >= kFrameHeaderBytes || ec;
    }));
    char header[kFrameHeaderBytes];
    boost::asio::read(socket_, boost::asio::buffer(header));
    uint32_t length = 0;
    for (char c : header) length = (length << 8) | static_cast<unsigned char>(c);
    std::string body(length, '\0');
    boost::asio::read(socket_, boost::asio::buffer(body));
    peerpb::PeerEnvelope envelope;
    REQUIRE(envelope.ParseFromString(body));
    return envelope;
  }

 private:
  boost::asio::io_context& io_;
  Tcp::socket socket_;
};

TEST_CASE("a receiver checks every stream and answers each: ok, bad checksum, out of order, "
          "too large, timed out",
          "[net]") {
  boost::asio::io_context io;
  auto addresses = two_addresses(io);
  PeerTransportOptions options = small_stream_options(2, addresses);
  options.max_snapshot_bytes = 1 << 20;
  options.snapshot_stall_timeout = 200ms;
  Member two(io, options);
  RawPeer raw(io, addresses.at(2), 1, 2);
  const std::string data(100, 'd');

  SECTION("a well-formed stream is handed on whole, and answered ok") {
    raw.chunk(5, 0, 100, data.substr(0, 60), false, 0, snapshot_header(1, 2, 3));
    raw.chunk(5, 60, 100, data.substr(60), true, crc32c(data));
    peerpb::PeerEnvelope answer = raw.read();
    REQUIRE(answer.has_snapshot_status());
    CHECK(answer.snapshot_status().stream_id() == 5);
    CHECK(answer.snapshot_status().ok());
    REQUIRE(run_until(io, [&] { return two.snapshots_received() == 1; }));
    CHECK(two.received[0].snapshot().data() == data);
  }
  SECTION("a bad checksum drops the stream") {
    raw.chunk(6, 0, 100, data.substr(0, 60), false, 0, snapshot_header(1, 2, 3));
    raw.chunk(6, 60, 100, data.substr(60), true, crc32c(data) ^ 1);
    peerpb::PeerEnvelope answer = raw.read();
    CHECK_FALSE(answer.snapshot_status().ok());
    CHECK(answer.snapshot_status().reason() == "checksum mismatch");
  }
  SECTION("a chunk out of order drops the stream; its later chunks are ignored") {
    raw.chunk(7, 0, 100, data.substr(0, 50), false, 0, snapshot_header(1, 2, 3));
    raw.chunk(7, 70, 100, data.substr(70, 10));
    raw.chunk(7, 80, 100, data.substr(80), true, crc32c(data));
    peerpb::PeerEnvelope answer = raw.read();
    CHECK_FALSE(answer.snapshot_status().ok());
    CHECK(answer.snapshot_status().reason() == "chunk at offset 70, expected 50");
    // A new stream on the same connection still works.
    raw.chunk(8, 0, 100, data, true, crc32c(data), snapshot_header(1, 2, 4));
    answer = raw.read();
    CHECK(answer.snapshot_status().stream_id() == 8);
    CHECK(answer.snapshot_status().ok());
  }
  SECTION("a stream that ends short or says more than it announced is dropped") {
    raw.chunk(9, 0, 100, data.substr(0, 90), true, crc32c(data.substr(0, 90)),
              snapshot_header(1, 2, 3));
    peerpb::PeerEnvelope answer = raw.read();
    CHECK(answer.snapshot_status().reason() == "stream ended at 90 of 100 bytes");
    raw.chunk(10, 0, 10, data, true, crc32c(data), snapshot_header(1, 2, 3));
    answer = raw.read();
    CHECK(answer.snapshot_status().reason() == "more data than the 10 bytes announced");
  }
  SECTION("a snapshot over the receiver's limit, or not addressed to it, is refused") {
    raw.chunk(11, 0, 2 << 20, data, false, 0, snapshot_header(1, 2, 3));
    peerpb::PeerEnvelope answer = raw.read();
    CHECK_FALSE(answer.snapshot_status().ok());
    CHECK_THAT(answer.snapshot_status().reason(), Catch::Contains("over the limit"));
    raw.chunk(12, 0, 100, data, true, crc32c(data), snapshot_header(1, 3, 3));
    answer = raw.read();
    CHECK_FALSE(answer.snapshot_status().ok());
  }
  SECTION("a stream that stops is dropped after the stall timeout") {
    raw.chunk(13, 0, 100, data.substr(0, 50), false, 0, snapshot_header(1, 2, 3));
    peerpb::PeerEnvelope answer = raw.read();
    CHECK(answer.snapshot_status().stream_id() == 13);
    CHECK_FALSE(answer.snapshot_status().ok());
    CHECK(answer.snapshot_status().reason() == "timed out");
  }
  CHECK(two.transport->snapshot_stats().received + two.transport->snapshot_stats().dropped >= 1);
  if (two.transport->snapshot_stats().received == 0) CHECK(two.snapshots_received() == 0);
}

}  // namespace fencelock::net
