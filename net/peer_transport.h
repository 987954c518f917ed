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
// saying why, and closes.
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
#include "proto/raft.pb.h"

namespace spdlog {
class logger;
}

namespace fencelock::net {

struct PeerTransportOptions {
  uint64_t self_id = 0;
  std::string cluster_id;
  std::map<uint64_t, std::string> peer_addresses;  // id -> "host:port", self included or not
  std::string self_client_address;                 // announced in Hello
  // Peer frames carry InstallSnapshot, so they may be much larger than
  // client frames.
  uint32_t max_frame_bytes = 512u << 20;
  // Past this many queued bytes to one peer, further messages are dropped.
  size_t max_queued_bytes = 32u << 20;
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds min_backoff{50};
  std::chrono::milliseconds max_backoff{2000};
  uint64_t seed = 0;  // jitter
};

class PeerTransport {
 public:
  using MessageHandler = std::function<void(raftpb::Message message)>;
  using StatusHandler = std::function<void(uint64_t peer, bool connected)>;

  PeerTransport(boost::asio::io_context& io, PeerTransportOptions options,
                std::shared_ptr<spdlog::logger> logger);
  ~PeerTransport();

  // Binds the peer listener. Returns UNAVAILABLE naming the address when it
  // cannot (e.g. the port is in use).
  Status listen(const std::string& address);

  // Starts accepting and dialing. `on_message` gets every Raft message that
  // arrives from a verified peer; `on_status` hears outbound connects and
  // disconnects.
  void start(MessageHandler on_message, StatusHandler on_status);

  // Queues `message` for message.to(). Returns false when it was dropped
  // (unknown peer, not connected, queue over its bound).
  bool send(const raftpb::Message& message);

  // Replaces the set of peers (membership change): dials new ones, redials
  // one whose address changed, closes and forgets removed ones. Only
  // members may connect in; `self_id` is ignored if present.
  void set_peers(const std::map<uint64_t, std::string>& peer_addresses);

  // Whether the outbound connection to `peer` is up.
  bool connected(uint64_t peer) const;

  // The client address `peer` announced in its last Hello; empty if unknown.
  std::string client_address(uint64_t peer) const;

  // Closes every connection and stops dialing. Idempotent.
  void stop();

  // The bound peer address (after listen()).
  Tcp::endpoint local_endpoint() const;

 private:
  struct Peer;
  // Coroutines hold `alive` and check it after every suspension: the
  // transport may be destroyed while the io_context keeps running.
  boost::asio::awaitable<void> accept_loop(std::shared_ptr<bool> alive);
  boost::asio::awaitable<void> dial_loop(std::shared_ptr<Peer> peer, std::shared_ptr<bool> alive);
  void on_inbound(std::shared_ptr<FramedConnection> connection);
  std::chrono::milliseconds backoff(int attempt);

  boost::asio::io_context& io_;
  PeerTransportOptions options_;
  std::shared_ptr<spdlog::logger> logger_;
  Tcp::acceptor acceptor_;
  std::map<uint64_t, std::shared_ptr<Peer>> peers_;
  std::map<uint64_t, std::shared_ptr<FramedConnection>> inbound_;  // keyed by a local counter
  std::map<uint64_t, std::string> client_addresses_;  // learned from inbound Hellos
  uint64_t next_inbound_ = 1;
  MessageHandler on_message_;
  StatusHandler on_status_;
  std::mt19937_64 rng_;
  bool started_ = false;
  bool stopped_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace fencelock::net
