#pragma once
// PeerTransport: Raft messages between cluster members over TCP.
//
// Each node keeps one outbound connection to every peer (it dials, and
// redials with exponential backoff and seeded jitter) and accepts inbound
// connections from peers on its peer address. Messages to a peer are
// coalesced into one write when several are queued. Sends never block: a
// message to a peer that is down, or whose queue is over its bound, is
// dropped — Raft retransmits (§5.3), so a slow, dead or partitioned peer
// never blocks the loop or the other peers.
//
// Every connection starts with a Hello naming the cluster id and both node
// ids; the acceptor refuses another cluster or an unknown id with a HelloAck
// saying why, and closes. An inbound connection is held to limits before
// and after its Hello (PeerTransportOptions, docs/architecture.md
// "Network"): small frames until the Hello is accepted, the Hello within a
// deadline, an idle timeout (the dialer sends keepalives), a cap on
// connections in all, in handshake and per member id. A member may hold
// max_inbound_per_peer accepted connections at once: a restarted peer's
// new connection is accepted while its old one, which may be half-open, is
// still up; one more closes that member's oldest, with a warning naming
// both. A Raft message whose `from` is not its connection's Hello closes
// the connection. Client addresses are learned only from the HelloAck of a
// connection this node dialled to the peer address its configuration
// names, never from an inbound Hello, which proves nothing about its
// sender. With TLS, both sides first run a mutual TLS handshake, and each
// checks that the other's certificate names the member it claims to be (or
// was dialed as).
//
// InstallSnapshot is streamed (send_snapshot): the snapshot's data, shared
// with the log and read in place, goes out in chunks of at most
// kSnapshotChunkBytes, the next queued only as the socket drains (at most
// snapshot_window_bytes queued at a time), so the whole snapshot is never
// queued and Raft messages to that peer go out between chunks. The
// receiver reassembles it in memory, checks its size and CRC32C, answers
// with a SnapshotStatus and only then hands the complete MSG_SNAP to its
// node. A stream that breaks (connection lost, either side restarted, a
// bad checksum, no progress for snapshot_stall_timeout) is dropped by the
// receiver, and the sender hears of it (on_snapshot_status with false) so
// that its Raft core sends the snapshot again at once; a verified one is
// reported too (true). Every frame is at most kMaxPeerFrameBytes.
//
// Thread-safety: not thread-safe; every method and callback runs on the
// thread running the io_context.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>

#include "common/status.h"
#include "net/connection.h"
#include "net/tls.h"
#include "proto/raft.pb.h"

namespace fencelock::peerpb {
class SnapshotChunk;
}

namespace spdlog {
class logger;
}

namespace fencelock::net {

// Snapshot data bytes per SnapshotChunk frame.
inline constexpr size_t kSnapshotChunkBytes = 1u << 20;
// The largest peer frame: an AppendEntries holds at most 1 MiB of entries
// (raft::Config::max_size_per_msg) plus one entry over (a command is a few
// KiB at most), a snapshot chunk 1 MiB plus its header.
inline constexpr uint32_t kMaxPeerFrameBytes = 4u << 20;

struct PeerTransportOptions {
  uint64_t self_id = 0;
  std::string cluster_id;
  std::map<uint64_t, std::string> peer_addresses;  // id -> "host:port", self included or not
  std::string self_client_address;                 // announced in Hello
  uint32_t max_frame_bytes = kMaxPeerFrameBytes;
  // Past this many queued bytes to one peer, further messages are dropped.
  size_t max_queued_bytes = 32u << 20;
  // InstallSnapshot streams: data bytes per chunk; the sender queues the
  // next chunk only while fewer than snapshot_window_bytes are queued to
  // that peer; a receiver refuses a snapshot larger than
  // max_snapshot_bytes; a stream without progress for
  // snapshot_stall_timeout is dropped on both sides.
  size_t snapshot_chunk_bytes = kSnapshotChunkBytes;
  size_t snapshot_window_bytes = 2 * kSnapshotChunkBytes;
  uint64_t max_snapshot_bytes = uint64_t{16} << 30;
  std::chrono::milliseconds snapshot_stall_timeout{30'000};
  // Inbound limits: frames of at most hello_max_frame_bytes until the
  // Hello is accepted (a Hello is a few dozen bytes); the Hello within
  // handshake_timeout (also the dialer's wait for the HelloAck); closed
  // after idle_timeout without a frame (announced in the HelloAck: the
  // dialer sends a Keepalive every third of it); at most
  // max_inbound_connections at once, of which max_handshaking before their
  // Hello; at most max_inbound_per_peer accepted from one member id.
  uint32_t hello_max_frame_bytes = 4096;
  std::chrono::milliseconds handshake_timeout{5000};
  std::chrono::milliseconds idle_timeout{30'000};
  size_t max_inbound_connections = 64;
  size_t max_handshaking = 16;
  size_t max_inbound_per_peer = 2;
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds min_backoff{50};
  std::chrono::milliseconds max_backoff{2000};
  uint64_t seed = 0;  // jitter
  // Mutual TLS (net/tls.h): `tls_server` accepts (and requires a
  // certificate), `tls_client` dials; both null for plaintext. A peer's
  // certificate must name the member it is (names_member): the acceptor
  // checks the id in the Hello, the dialer the member it dialed.
  // handshake_timeout bounds the TLS handshake too.
  std::shared_ptr<TlsContext> tls_server;
  std::shared_ptr<TlsContext> tls_client;
};

// Counters of InstallSnapshot streams, for tests and logs.
struct SnapshotStreamStats {
  // Sending.
  uint64_t started = 0;    // streams begun
  uint64_t succeeded = 0;  // the receiver verified them
  uint64_t failed = 0;     // broken or refused
  uint64_t chunks_sent = 0;
  size_t max_queued_bytes = 0;  // the most bytes queued to a peer while streaming
  // Receiving.
  uint64_t received = 0;  // verified and handed on
  uint64_t dropped = 0;   // partial streams discarded
};

// Counters of inbound connections closed by the limits, for tests and logs.
struct PeerConnectionStats {
  uint64_t over_cap = 0;                // closed at accept: too many connections
  uint64_t hellos_refused = 0;          // another cluster, another node, not a member
  uint64_t handshake_timeouts = 0;      // no Hello within handshake_timeout
  uint64_t oversized_before_hello = 0;  // a frame over hello_max_frame_bytes first
  uint64_t replaced = 0;                // a member's oldest, over max_inbound_per_peer
  uint64_t misaddressed = 0;            // a Raft message not from its Hello's node
};

class PeerTransport {
 public:
  using MessageHandler = std::function<void(raftpb::Message message)>;
  using StatusHandler = std::function<void(uint64_t peer, bool connected)>;
  // The outcome of a snapshot stream to `peer` that send_snapshot started:
  // verified by the receiver (ok) or broken. Called on the loop, never
  // from inside send_snapshot.
  using SnapshotHandler = std::function<void(uint64_t peer, bool ok)>;

  PeerTransport(boost::asio::io_context& io, PeerTransportOptions options,
                std::shared_ptr<spdlog::logger> logger);
  ~PeerTransport();

  // Binds the peer listener. Returns UNAVAILABLE naming the address when it
  // cannot (e.g. the port is in use).
  Status listen(const std::string& address);

  // Starts accepting and dialing. `on_message` gets every Raft message that
  // arrives from a verified peer (a streamed MSG_SNAP once complete and
  // verified); `on_status` hears outbound connects and disconnects;
  // `on_snapshot` the outcome of each snapshot stream this node sends.
  void start(MessageHandler on_message, StatusHandler on_status,
             SnapshotHandler on_snapshot = nullptr);

  // Queues `message` for message.to(). Returns false when it was dropped
  // (unknown peer, not connected, queue over its bound). A MSG_SNAP is
  // streamed (send_snapshot with a copy of its data).
  bool send(const raftpb::Message& message);

  // Replaces the set of peers (membership change): dials new ones, redials
  // one whose address changed, closes and forgets removed ones. Only
  // members may connect in; `self_id` is ignored if present.
  void set_peers(const std::map<uint64_t, std::string>& peer_addresses);
  // Streams InstallSnapshot to header.to(): `header` is the MSG_SNAP
  // without data (metadata only), `data` the snapshot's bytes, read in
  // place until the stream ends. A stream of the same snapshot (index and
  // term) already under way to that peer goes on and this returns true; a
  // different one replaces it. Returns false when no stream could start
  // (unknown peer, not connected); otherwise the outcome comes to
  // on_snapshot.
  bool send_snapshot(const raftpb::Message& header, std::shared_ptr<const std::string> data);

  // Whether the outbound connection to `peer` is up.
  bool connected(uint64_t peer) const;

  // The client address `peer` announced in the HelloAck of this node's
  // last connection to it; empty if unknown.
  std::string client_address(uint64_t peer) const;

  // Closes every connection and stops dialing. Idempotent.
  void stop();

  // The bound peer address (after listen()).
  Tcp::endpoint local_endpoint() const;

  // Bytes queued to `peer` and not yet written to its socket.
  size_t queued_bytes(uint64_t peer) const;
  const SnapshotStreamStats& snapshot_stats() const { return stats_; }
  const PeerConnectionStats& connection_stats() const { return connection_stats_; }
  // Inbound connections open now (handshaking or accepted).
  size_t inbound_connections() const { return inbound_.size(); }

 private:
  struct Peer;
  struct OutboundStream;
  struct InboundStream;
  // Coroutines hold `alive` and check it after every suspension: the
  // transport may be destroyed while the io_context keeps running.
  boost::asio::awaitable<void> accept_loop(std::shared_ptr<bool> alive);
  boost::asio::awaitable<void> dial_loop(std::shared_ptr<Peer> peer, std::shared_ptr<bool> alive);
  // Runs an inbound connection's TLS handshake, then on_inbound.
  boost::asio::awaitable<void> admit(Tcp::socket socket, std::shared_ptr<bool> alive);
  void on_inbound(Stream socket);
  // Whether `connection`'s certificate names member `id` (true without TLS).
  bool certified_as(FramedConnection& connection, uint64_t id) const;
  // Every member's peer address, this node's included (once listening).
  std::map<uint64_t, std::string> member_addresses() const;
  // Whether another inbound connection may be accepted now; logs (at most
  // once a second) when not.
  bool inbound_has_room(const std::string& remote);
  // The Hello of inbound connection `key` from `from` is accepted: raises
  // its frame limit and keeps `from` within max_inbound_per_peer.
  void on_hello_accepted(uint64_t key, uint64_t from, FramedConnection& connection);
  std::chrono::milliseconds backoff(int attempt);
  // Queues chunks of `peer`'s stream while its window has room.
  void pump(Peer& peer);
  // Ends `peer`'s stream and reports `ok` (posted: never inside a send).
  void end_stream(Peer& peer, bool ok, const std::string& why);
  // A chunk arriving on an inbound connection from `from`.
  void on_chunk(FramedConnection& connection, uint64_t from, InboundStream& stream,
                peerpb::SnapshotChunk& chunk);
  // Drops streams that made no progress for snapshot_stall_timeout.
  boost::asio::awaitable<void> stall_watchdog(std::shared_ptr<bool> alive);

  boost::asio::io_context& io_;
  PeerTransportOptions options_;
  std::shared_ptr<spdlog::logger> logger_;
  Tcp::acceptor acceptor_;
  std::map<uint64_t, std::shared_ptr<Peer>> peers_;
  std::string listen_address_;
  size_t tls_handshaking_ = 0;  // inbound connections in their TLS handshake
  std::map<uint64_t, std::shared_ptr<FramedConnection>> inbound_;  // keyed by a local counter
  std::map<uint64_t, uint64_t> inbound_from_;  // by inbound key: the Hello's node, once accepted
  std::map<uint64_t, std::string> client_addresses_;  // learned from HelloAcks
  PeerConnectionStats connection_stats_;
  std::chrono::steady_clock::time_point last_cap_log_{};
  uint64_t next_inbound_ = 1;
  MessageHandler on_message_;
  StatusHandler on_status_;
  SnapshotHandler on_snapshot_;
  // Inbound connections' streams in progress, for the watchdog.
  std::map<uint64_t, std::weak_ptr<InboundStream>> inbound_streams_;  // by inbound key
  uint64_t next_stream_id_ = 1;
  SnapshotStreamStats stats_;
  boost::asio::steady_timer stall_timer_;
  std::mt19937_64 rng_;
  bool started_ = false;
  bool stopped_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace fencelock::net
