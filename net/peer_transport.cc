#include "net/peer_transport.h"

#include <spdlog/spdlog.h>

#include "common/check.h"
#include "net/address.h"
#include "net/crc32c.h"
#include "proto/peer.pb.h"

namespace fencelock::net {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using SteadyClock = std::chrono::steady_clock;

namespace {

void put_varint(uint64_t value, std::string& out) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

// Protobuf keys of the two length-delimited fields a chunk frame is built
// from by hand (proto/peer.proto): PeerEnvelope.snapshot_chunk and
// SnapshotChunk.data.
constexpr uint64_t kEnvelopeChunkKey = (4 << 3) | 2;
constexpr uint64_t kChunkDataKey = (5 << 3) | 2;

// The frame of `chunk` (whose data field is empty) carrying `data`, less
// `data` itself: the frame header and the body up to the data's bytes,
// which follow it on the wire. Building the envelope by hand lets the data
// go from the snapshot's buffer to the socket's with one copy; a parser
// reads the data field after the others like any other field order.
std::string chunk_frame_prefix(const peerpb::SnapshotChunk& chunk, size_t data_bytes) {
  std::string data_key;
  put_varint(kChunkDataKey, data_key);
  put_varint(data_bytes, data_key);
  const std::string meta = chunk.SerializeAsString();
  const size_t chunk_bytes = meta.size() + data_key.size() + data_bytes;
  std::string envelope_key;
  put_varint(kEnvelopeChunkKey, envelope_key);
  put_varint(chunk_bytes, envelope_key);
  const uint64_t body = envelope_key.size() + chunk_bytes;
  std::string prefix;
  prefix.reserve(kFrameHeaderBytes + envelope_key.size() + meta.size() + data_key.size());
  for (int shift = 24; shift >= 0; shift -= 8) prefix.push_back(static_cast<char>(body >> shift));
  prefix += envelope_key;
  prefix += meta;
  prefix += data_key;
  return prefix;
}

}  // namespace

// A snapshot this node streams to a peer.
struct PeerTransport::OutboundStream {
  uint64_t id = 0;
  raftpb::Message header;  // the MSG_SNAP without data
  std::shared_ptr<const std::string> data;
  size_t offset = 0;      // bytes queued so far
  uint32_t crc = 0;       // CRC32C of data[0, offset)
  bool all_queued = false;
  SteadyClock::time_point last_progress;
};

// A snapshot arriving on one inbound connection.
struct PeerTransport::InboundStream {
  FramedConnection* connection = nullptr;  // lives as long as this stream's entry
  uint64_t from = 0;
  bool active = false;
  uint64_t id = 0;
  uint64_t dropped_id = 0;  // the last stream dropped: its later chunks are ignored
  raftpb::Message header;
  std::string data;
  uint64_t total = 0;
  uint32_t crc = 0;
  SteadyClock::time_point last_chunk;

  void reset() {
    active = false;
    header.Clear();
    std::string().swap(data);
    total = 0;
    crc = 0;
  }
};

struct PeerTransport::Peer {
  Peer(asio::io_context& io, uint64_t id, std::string address)
      : id(id), address(std::move(address)), wake(io) {}
  uint64_t id;
  std::string address;
  std::shared_ptr<FramedConnection> connection;  // set once Hello is accepted
  asio::steady_timer wake;                       // cancelled when the connection closes
  bool accepted = false;
  bool removed = false;  // no longer a member: the dial loop ends
  std::chrono::milliseconds keepalive{0};  // a third of the acceptor's idle timeout
  std::unique_ptr<OutboundStream> stream;  // the InstallSnapshot under way, if any
};

PeerTransport::PeerTransport(asio::io_context& io, PeerTransportOptions options,
                             std::shared_ptr<spdlog::logger> logger)
    : io_(io),
      options_(std::move(options)),
      logger_(std::move(logger)),
      acceptor_(io),
      stall_timer_(io),
      rng_(options_.seed) {
  // A chunk's frame: its data, the first chunk's MSG_SNAP header, keys.
  FL_CHECK(options_.snapshot_chunk_bytes > 0 &&
               options_.snapshot_chunk_bytes + 64 * 1024 <= options_.max_frame_bytes,
           "snapshot chunks of {} bytes do not fit peer frames of {}",
           options_.snapshot_chunk_bytes, options_.max_frame_bytes);
  for (const auto& [id, address] : options_.peer_addresses) {
    if (id == options_.self_id) continue;
    peers_.emplace(id, std::make_shared<Peer>(io_, id, address));
  }
}

PeerTransport::~PeerTransport() {
  stop();
  *alive_ = false;
}

Status PeerTransport::listen(const std::string& address) {
  listen_address_ = address;
  return listen_on(acceptor_, address, "peer");
}

Tcp::endpoint PeerTransport::local_endpoint() const {
  boost::system::error_code ec;
  return acceptor_.local_endpoint(ec);
}

void PeerTransport::start(MessageHandler on_message, StatusHandler on_status,
                          SnapshotHandler on_snapshot) {
  on_message_ = std::move(on_message);
  on_status_ = std::move(on_status);
  started_ = true;
  on_snapshot_ = std::move(on_snapshot);
  if (acceptor_.is_open()) {
    asio::co_spawn(io_, accept_loop(alive_), asio::detached);
  }
  for (auto& [id, peer] : peers_) {
    asio::co_spawn(io_, dial_loop(peer, alive_), asio::detached);
  }
  asio::co_spawn(io_, stall_watchdog(alive_), asio::detached);
}

bool PeerTransport::send(const raftpb::Message& message) {
  if (message.type() == raftpb::MSG_SNAP) {
    raftpb::Message header = message;
    auto data = std::make_shared<const std::string>(
        std::move(*header.mutable_snapshot()->mutable_data()));
    header.mutable_snapshot()->clear_data();
    return send_snapshot(header, std::move(data));
  }
  auto it = peers_.find(message.to());
  if (it == peers_.end()) return false;
  Peer& peer = *it->second;
  if (!peer.accepted || !peer.connection || !peer.connection->open()) return false;
  if (peer.connection->queued_bytes() > options_.max_queued_bytes) return false;
  peerpb::PeerEnvelope envelope;
  *envelope.mutable_raft() = message;
  return peer.connection->send(envelope);
}

void PeerTransport::set_peers(const std::map<uint64_t, std::string>& peer_addresses) {
  for (auto it = peers_.begin(); it != peers_.end();) {
    auto wanted = peer_addresses.find(it->first);
    if (wanted != peer_addresses.end() && wanted->second == it->second->address) {
      ++it;
      continue;
    }
    logger_->info("{} forgets peer {} at {}", options_.self_id, it->first, it->second->address);
    it->second->removed = true;
    if (it->second->connection) it->second->connection->stop("no longer a member");
    it->second->wake.cancel();
    it = peers_.erase(it);
  }
  for (const auto& [id, address] : peer_addresses) {
    if (id == options_.self_id || peers_.contains(id)) continue;
    logger_->info("{} adds peer {} at {}", options_.self_id, id, address);
    auto peer = std::make_shared<Peer>(io_, id, address);
    peers_.emplace(id, peer);
    if (started_ && !stopped_) asio::co_spawn(io_, dial_loop(peer, alive_), asio::detached);
  }
}

bool PeerTransport::send_snapshot(const raftpb::Message& header,
                                  std::shared_ptr<const std::string> data) {
  auto it = peers_.find(header.to());
  if (it == peers_.end() || !data) return false;
  Peer& peer = *it->second;
  if (!peer.accepted || !peer.connection || !peer.connection->open()) return false;
  const raftpb::SnapshotMetadata& metadata = header.snapshot().metadata();
  if (peer.stream) {
    const raftpb::SnapshotMetadata& current = peer.stream->header.snapshot().metadata();
    if (current.index() == metadata.index() && current.term() == metadata.term()) {
      return true;  // under way: the Raft core asked again after its timeout
    }
    logger_->info("{} replaces its snapshot stream at index {} to {} by one at index {}",
                  options_.self_id, current.index(), peer.id, metadata.index());
    peer.stream.reset();  // the receiver drops it when the new one starts
  }
  auto stream = std::make_unique<OutboundStream>();
  stream->id = next_stream_id_++;
  stream->header = header;
  stream->header.mutable_snapshot()->clear_data();
  stream->data = std::move(data);
  stream->last_progress = SteadyClock::now();
  logger_->info("{} streams snapshot at index {} ({} bytes) to {}", options_.self_id,
                metadata.index(), stream->data->size(), peer.id);
  peer.stream = std::move(stream);
  ++stats_.started;
  pump(peer);
  return true;
}

void PeerTransport::pump(Peer& peer) {
  while (peer.stream && !peer.stream->all_queued && peer.connection && peer.connection->open() &&
         peer.connection->queued_bytes() < options_.snapshot_window_bytes) {
    OutboundStream& stream = *peer.stream;
    const std::string& data = *stream.data;
    const size_t bytes = std::min(options_.snapshot_chunk_bytes, data.size() - stream.offset);
    const std::string_view piece(data.data() + stream.offset, bytes);
    const bool last = stream.offset + bytes == data.size();
    peerpb::SnapshotChunk chunk;
    chunk.set_stream_id(stream.id);
    if (stream.offset == 0) *chunk.mutable_header() = stream.header;
    chunk.set_offset(stream.offset);
    chunk.set_total_bytes(data.size());
    stream.crc = crc32c(piece, stream.crc);
    if (last) {
      chunk.set_last(true);
      chunk.set_crc32c(stream.crc);
    }
    stream.offset += bytes;
    stream.all_queued = last;
    stream.last_progress = SteadyClock::now();
    ++stats_.chunks_sent;
    // The connection may close inside (and end the stream): looked up again.
    std::shared_ptr<FramedConnection> connection = peer.connection;
    if (!connection->send_framed({chunk_frame_prefix(chunk, bytes), piece})) return;
    stats_.max_queued_bytes = std::max(stats_.max_queued_bytes, connection->queued_bytes());
  }
}

void PeerTransport::end_stream(Peer& peer, bool ok, const std::string& why) {
  if (!peer.stream) return;
  std::unique_ptr<OutboundStream> stream = std::move(peer.stream);
  const raftpb::SnapshotMetadata& metadata = stream->header.snapshot().metadata();
  if (ok) {
    ++stats_.succeeded;
    logger_->info("{} snapshot at index {} reached {} ({} bytes)", options_.self_id,
                  metadata.index(), peer.id, stream->data->size());
  } else {
    ++stats_.failed;
    logger_->warn("{} snapshot stream at index {} to {} failed after {} of {} bytes: {}",
                  options_.self_id, metadata.index(), peer.id, stream->offset,
                  stream->data->size(), why);
  }
  if (!on_snapshot_) return;
  // Posted: a stream can end inside a send (its connection closing), where
  // the caller may not be called back.
  asio::post(io_, [this, alive = alive_, id = peer.id, ok] {
    if (*alive && !stopped_ && on_snapshot_) on_snapshot_(id, ok);
  });
}

size_t PeerTransport::queued_bytes(uint64_t peer) const {
  auto it = peers_.find(peer);
  if (it == peers_.end() || !it->second->connection) return 0;
  return it->second->connection->queued_bytes();
}

bool PeerTransport::connected(uint64_t peer) const {
  auto it = peers_.find(peer);
  return it != peers_.end() && it->second->accepted && it->second->connection &&
         it->second->connection->open();
}

std::string PeerTransport::client_address(uint64_t peer) const {
  auto it = client_addresses_.find(peer);
  return it == client_addresses_.end() ? std::string() : it->second;
}

void PeerTransport::stop() {
  if (stopped_) return;
  stopped_ = true;
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  stall_timer_.cancel();
  for (auto& [id, peer] : peers_) {
    if (peer->connection) peer->connection->stop("transport stopped");
    peer->wake.cancel();
  }
  auto inbound = std::move(inbound_);
  for (auto& [key, connection] : inbound) connection->stop("transport stopped");
}

std::chrono::milliseconds PeerTransport::backoff(int attempt) {
  auto base = options_.min_backoff.count();
  for (int i = 0; i < attempt && base < options_.max_backoff.count(); ++i) base *= 2;
  base = std::min<int64_t>(base, options_.max_backoff.count());
  // Full jitter in [base/2, base]: peers that lost each other at the same
  // moment do not redial in lockstep.
  int64_t jitter = static_cast<int64_t>(rng_() % static_cast<uint64_t>(base / 2 + 1));
  return std::chrono::milliseconds(base - jitter);
}

awaitable<void> PeerTransport::accept_loop(std::shared_ptr<bool> alive) {
  while (!stopped_) {
    boost::system::error_code ec;
    Tcp::socket socket = co_await acceptor_.async_accept(asio::redirect_error(use_awaitable, ec));
    if (!*alive) co_return;
    if (ec) {
      if (stopped_ || ec == asio::error::operation_aborted) co_return;
      logger_->warn("{} peer accept failed: {}", options_.self_id, ec.message());
      continue;
    }
    if (!inbound_has_room(remote_text(socket))) {
      boost::system::error_code ignored;
      socket.close(ignored);
      continue;
    }
    if (options_.tls_server) {
      asio::co_spawn(io_, admit(std::move(socket), alive), asio::detached);
    } else {
      on_inbound(Stream(std::move(socket)));
    }
  }
}

awaitable<void> PeerTransport::admit(Tcp::socket socket, std::shared_ptr<bool> alive) {
  std::string remote = remote_text(socket);
  std::string error;
  ++tls_handshaking_;  // counts toward max_handshaking (inbound_has_room)
  auto tls = co_await handshake(std::move(socket), *options_.tls_server,
                                options_.handshake_timeout, "", error);
  if (!*alive) co_return;
  --tls_handshaking_;
  if (stopped_) co_return;
  if (!tls) {
    logger_->error("{} refused peer connection from {}: {}", options_.self_id, remote, error);
    co_return;
  }
  on_inbound(Stream(std::move(tls)));
}

std::map<uint64_t, std::string> PeerTransport::member_addresses() const {
  std::map<uint64_t, std::string> members;
  for (const auto& [id, peer] : peers_) members.emplace(id, peer->address);
  if (!listen_address_.empty()) members[options_.self_id] = listen_address_;
  return members;
}

bool PeerTransport::certified_as(FramedConnection& connection, uint64_t id) const {
  if (connection.tls() == nullptr) return true;
  auto it = peers_.find(id);
  if (it == peers_.end()) return false;
  return names_member(peer_names(*connection.tls()), id, it->second->address, member_addresses());
}

bool PeerTransport::inbound_has_room(const std::string& remote) {
  const size_t handshaking = inbound_.size() - inbound_from_.size() + tls_handshaking_;
  std::string why;
  if (inbound_.size() + tls_handshaking_ >= options_.max_inbound_connections) {
    why = std::to_string(inbound_.size() + tls_handshaking_) +
          " peer connections open, the most allowed";
  } else if (handshaking >= options_.max_handshaking) {
    why = std::to_string(handshaking) + " peer connections wait for their Hello, the most allowed";
  } else {
    return true;
  }
  ++connection_stats_.over_cap;
  const auto now = SteadyClock::now();
  if (now - last_cap_log_ >= std::chrono::seconds(1)) {
    last_cap_log_ = now;
    logger_->warn("{} refused peer connection from {}: {} ({} refused so far)", options_.self_id,
                  remote, why, connection_stats_.over_cap);
  }
  return false;
}

void PeerTransport::on_hello_accepted(uint64_t key, uint64_t from, FramedConnection& connection) {
  connection.set_max_frame_bytes(options_.max_frame_bytes);
  std::vector<uint64_t> same;  // the member's accepted connections, oldest first
  for (const auto& [other_key, other_from] : inbound_from_) {
    if (other_from == from) same.push_back(other_key);
  }
  inbound_from_[key] = from;
  if (same.empty()) return;
  if (same.size() < options_.max_inbound_per_peer) {
    logger_->info("{} accepted another connection from node {} at {} while {} are open",
                  options_.self_id, from, connection.remote(), same.size());
    return;
  }
  // The oldest is the likeliest dead (a peer that restarted without
  // closing it); under an impostor, the member's own dialer comes back.
  std::shared_ptr<FramedConnection> oldest = inbound_.at(same.front());
  ++connection_stats_.replaced;
  logger_->warn("{} closes its oldest connection from node {} (at {}): a new one from {} "
                "passes the {} allowed per member",
                options_.self_id, from, oldest->remote(), connection.remote(),
                options_.max_inbound_per_peer);
  oldest->stop("replaced by a newer connection from the same node");
}

void PeerTransport::on_inbound(Stream socket) {
  ConnectionOptions connection_options;
  connection_options.max_frame_bytes = options_.hello_max_frame_bytes;  // until the Hello
  connection_options.max_queued_bytes = options_.max_queued_bytes * 2;
  connection_options.idle_timeout = options_.idle_timeout;
  connection_options.write_at_once = true;
  auto connection = std::make_shared<FramedConnection>(std::move(socket), connection_options);
  uint64_t key = next_inbound_++;
  inbound_.emplace(key, connection);
  // The peer id is learned from the Hello; 0 until then.
  auto from = std::make_shared<uint64_t>(0);
  FramedConnection* raw = connection.get();
  auto stream = std::make_shared<InboundStream>();
  stream->connection = raw;
  inbound_streams_.emplace(key, stream);
  // The Hello's deadline; the close handler cancels it.
  auto handshake = std::make_shared<asio::steady_timer>(io_);
  handshake->expires_after(options_.handshake_timeout);
  handshake->async_wait([this, alive = alive_, weak = std::weak_ptr<FramedConnection>(connection),
                         from](boost::system::error_code ec) {
    if (ec || !*alive || *from != 0) return;
    auto connection = weak.lock();
    if (!connection || !connection->open()) return;
    ++connection_stats_.handshake_timeouts;
    logger_->warn("{} closed peer connection from {}: no Hello within {} ms", options_.self_id,
                  connection->remote(), options_.handshake_timeout.count());
    connection->stop("no Hello in time");
  });
  connection->start(
      [this, key, raw, from, stream, handshake](std::string_view body) {
        peerpb::PeerEnvelope envelope;
        if (!envelope.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
          logger_->warn("{} dropped peer connection from {}: malformed frame", options_.self_id,
                        raw->remote());
          raw->stop("malformed peer frame");
          return;
        }
        if (*from == 0) {
          peerpb::PeerEnvelope ack;
          auto* hello_ack = ack.mutable_hello_ack();
          std::string reason;
          if (!envelope.has_hello()) {
            reason = "first frame is not a Hello";
          } else if (envelope.hello().cluster_id() != options_.cluster_id) {
            reason = "cluster id '" + envelope.hello().cluster_id() + "' is not this cluster's '" +
                     options_.cluster_id + "'";
          } else if (envelope.hello().to() != options_.self_id) {
            reason = "this is node " + std::to_string(options_.self_id) + ", not node " +
                     std::to_string(envelope.hello().to());
          } else if (!peers_.contains(envelope.hello().from())) {
            reason = "node " + std::to_string(envelope.hello().from()) + " is not a member";
          } else if (!certified_as(*raw, envelope.hello().from())) {
            reason = "its certificate does not name node " +
                     std::to_string(envelope.hello().from()) + " (" +
                     member_dns_name(envelope.hello().from()) + " or its address)";
          }
          hello_ack->set_accepted(reason.empty());
          hello_ack->set_reason(reason);
          if (reason.empty()) {
            hello_ack->set_client_address(options_.self_client_address);
            hello_ack->set_idle_timeout_ms(static_cast<uint64_t>(options_.idle_timeout.count()));
          }
          raw->send(ack);
          if (!reason.empty()) {
            ++connection_stats_.hellos_refused;
            logger_->error("{} refused peer connection from {}: {}", options_.self_id,
                           raw->remote(), reason);
            raw->close_after_flush(reason);
            return;
          }
          handshake->cancel();
          *from = envelope.hello().from();
          stream->from = *from;
          // Hello.client_address is ignored: see the class comment.
          on_hello_accepted(key, *from, *raw);
          return;
        }
        if (envelope.has_keepalive()) return;  // the read itself keeps the connection
        if (envelope.has_snapshot_chunk()) {
          on_chunk(*raw, *from, *stream, *envelope.mutable_snapshot_chunk());
          return;
        }
        if (!envelope.has_raft() || envelope.raft().from() != *from ||
            envelope.raft().to() != options_.self_id) {
          ++connection_stats_.misaddressed;
          logger_->warn("{} dropped peer connection from node {}: unexpected message",
                        options_.self_id, *from);
          raw->stop("unexpected peer message");
          return;
        }
        if (on_message_) on_message_(std::move(*envelope.mutable_raft()));
      },
      [this, raw, from](uint64_t length) {
        if (*from == 0) {
          ++connection_stats_.oversized_before_hello;
          logger_->warn("{} peer {} sent a frame of {} bytes before its Hello, over the {} allowed",
                        options_.self_id, raw->remote(), length, options_.hello_max_frame_bytes);
          return;
        }
        logger_->warn("{} peer {} sent a frame of {} bytes, over the maximum", options_.self_id,
                      raw->remote(), length);
      },
      [this, key, stream, handshake](const std::string&) {
        handshake->cancel();
        inbound_from_.erase(key);
        if (stream->active) {
          ++stats_.dropped;
          logger_->warn("{} dropped snapshot stream from {} at {} of {} bytes: connection lost",
                        options_.self_id, stream->from, stream->data.size(), stream->total);
        }
        stream->reset();
        inbound_streams_.erase(key);
        inbound_.erase(key);
      });
}

void PeerTransport::on_chunk(FramedConnection& connection, uint64_t from, InboundStream& stream,
                             peerpb::SnapshotChunk& chunk) {
  auto answer = [&](uint64_t stream_id, bool ok, const std::string& reason) {
    peerpb::PeerEnvelope envelope;
    auto* status = envelope.mutable_snapshot_status();
    status->set_stream_id(stream_id);
    status->set_ok(ok);
    status->set_reason(reason);
    connection.send(envelope);
  };
  auto drop = [&](const std::string& why) {
    ++stats_.dropped;
    logger_->warn("{} dropped snapshot stream from {} at {} of {} bytes: {}", options_.self_id,
                  from, stream.data.size(), stream.total, why);
    answer(chunk.stream_id(), false, why);
    stream.dropped_id = chunk.stream_id();
    stream.reset();
  };
  if (chunk.offset() == 0) {
    if (stream.active) {
      // The sender gave it up for a newer snapshot.
      ++stats_.dropped;
      logger_->info("{} drops snapshot stream from {} at {} of {} bytes: a new one starts",
                    options_.self_id, from, stream.data.size(), stream.total);
      stream.reset();
    }
    stream.id = chunk.stream_id();
    const raftpb::Message& header = chunk.header();
    if (!chunk.has_header() || header.type() != raftpb::MSG_SNAP || header.from() != from ||
        header.to() != options_.self_id) {
      return drop("the first chunk carries no MSG_SNAP from the sender to this node");
    }
    if (chunk.total_bytes() > options_.max_snapshot_bytes) {
      return drop("snapshot of " + std::to_string(chunk.total_bytes()) +
                  " bytes is over the limit of " + std::to_string(options_.max_snapshot_bytes));
    }
    stream.active = true;
    stream.header = std::move(*chunk.mutable_header());
    stream.total = chunk.total_bytes();
    stream.data.reserve(stream.total);
  } else if (!stream.active || chunk.stream_id() != stream.id) {
    // The rest of a stream dropped above, or of one this connection never
    // saw start: the sender is told once.
    if (chunk.stream_id() == stream.dropped_id) return;
    stream.id = chunk.stream_id();
    return drop("chunk of an unknown stream");
  }
  if (chunk.offset() != stream.data.size()) {
    return drop("chunk at offset " + std::to_string(chunk.offset()) + ", expected " +
                std::to_string(stream.data.size()));
  }
  if (chunk.data().size() > stream.total - stream.data.size()) {
    return drop("more data than the " + std::to_string(stream.total) + " bytes announced");
  }
  stream.crc = crc32c(chunk.data(), stream.crc);
  stream.data.append(chunk.data());
  stream.last_chunk = SteadyClock::now();
  if (!chunk.last()) return;
  if (stream.data.size() != stream.total) {
    return drop("stream ended at " + std::to_string(stream.data.size()) + " of " +
                std::to_string(stream.total) + " bytes");
  }
  if (stream.crc != chunk.crc32c()) return drop("checksum mismatch");
  raftpb::Message message = std::move(stream.header);
  const uint64_t bytes = stream.data.size();
  message.mutable_snapshot()->set_data(std::move(stream.data));
  stream.reset();
  ++stats_.received;
  logger_->info("{} received snapshot at index {} ({} bytes) from {}", options_.self_id,
                message.snapshot().metadata().index(), bytes, from);
  // Answered before the node installs it, which takes a while.
  answer(chunk.stream_id(), true, "");
  if (on_message_) on_message_(std::move(message));
}

awaitable<void> PeerTransport::stall_watchdog(std::shared_ptr<bool> alive) {
  const auto timeout = options_.snapshot_stall_timeout;
  const auto period = std::clamp<std::chrono::milliseconds>(timeout / 4, std::chrono::milliseconds(5),
                                                            std::chrono::milliseconds(1000));
  while (!stopped_) {
    stall_timer_.expires_after(period);
    boost::system::error_code ec;
    co_await stall_timer_.async_wait(asio::redirect_error(use_awaitable, ec));
    if (!*alive || stopped_) co_return;
    const auto now = SteadyClock::now();
    for (auto& [id, peer] : peers_) {
      if (!peer->stream || now - peer->stream->last_progress < timeout) continue;
      std::shared_ptr<FramedConnection> connection = peer->connection;
      end_stream(*peer, false, "no progress for " + std::to_string(timeout.count()) + " ms");
      // Its socket no longer drains: start over on a new connection.
      if (connection) connection->stop("snapshot stream stalled");
    }
    std::vector<std::shared_ptr<InboundStream>> stalled;
    for (auto& [key, weak] : inbound_streams_) {
      auto stream = weak.lock();
      if (stream && stream->active && now - stream->last_chunk >= timeout) stalled.push_back(stream);
    }
    for (auto& stream : stalled) {
      ++stats_.dropped;
      logger_->warn("{} dropped snapshot stream from {} at {} of {} bytes: nothing for {} ms",
                    options_.self_id, stream->from, stream->data.size(), stream->total,
                    timeout.count());
      peerpb::PeerEnvelope envelope;
      envelope.mutable_snapshot_status()->set_stream_id(stream->id);
      envelope.mutable_snapshot_status()->set_ok(false);
      envelope.mutable_snapshot_status()->set_reason("timed out");
      stream->dropped_id = stream->id;
      stream->reset();
      stream->connection->send(envelope);
    }
  }
}

awaitable<void> PeerTransport::dial_loop(std::shared_ptr<Peer> peer, std::shared_ptr<bool> alive) {
  int attempt = 0;
  asio::steady_timer timer(io_);
  Tcp::resolver resolver(io_);
  while (!stopped_ && !peer->removed) {
    std::string host;
    uint16_t port = 0;
    if (!split_host_port(peer->address, host, port)) {
      logger_->error("{} peer {} address '{}' is not host:port", options_.self_id, peer->id,
                     peer->address);
      co_return;
    }
    boost::system::error_code ec;
    auto endpoints = co_await resolver.async_resolve(host, std::to_string(port),
                                                     asio::redirect_error(use_awaitable, ec));
    if (!*alive) co_return;
    Tcp::socket socket(io_);
    if (!ec) {
      // Boost 1.74 has no per-operation cancellation: the timeout closes the socket.
      asio::steady_timer deadline(io_);
      deadline.expires_after(options_.connect_timeout);
      deadline.async_wait([&socket](boost::system::error_code wait_ec) {
        if (!wait_ec) socket.close();
      });
      co_await asio::async_connect(socket, endpoints, asio::redirect_error(use_awaitable, ec));
      if (!*alive) co_return;
      deadline.cancel();
      if (!ec && !socket.is_open()) ec = asio::error::timed_out;
    }
    if (stopped_) co_return;
    std::optional<Stream> stream;
    if (!ec && options_.tls_client) {
      std::string error;
      auto tls = co_await handshake(std::move(socket), *options_.tls_client,
                                    options_.handshake_timeout, "", error);
      if (!*alive) co_return;
      if (tls) {
        auto members = member_addresses();
        members[peer->id] = peer->address;
        if (!names_member(peer_names(*tls), peer->id, peer->address, members)) {
          error = "its certificate does not name node " + std::to_string(peer->id) + " (" +
                  member_dns_name(peer->id) + " or its address)";
          tls.reset();
        }
      }
      if (tls) {
        stream.emplace(std::move(tls));
      } else {
        logger_->error("{} refused peer {} at {}: {}", options_.self_id, peer->id, peer->address,
                       error);
        ec = asio::error::access_denied;
        attempt = std::max(attempt, 5);  // a configuration error: retry, but slowly
      }
    } else if (!ec) {
      stream.emplace(std::move(socket));
    }
    if (stopped_) co_return;
    if (!ec) {
      ConnectionOptions connection_options;
      connection_options.max_frame_bytes = options_.hello_max_frame_bytes;  // until the HelloAck
      connection_options.max_queued_bytes = options_.max_queued_bytes * 2;
      connection_options.write_at_once = true;
      auto connection = std::make_shared<FramedConnection>(std::move(*stream), connection_options);
      peer->connection = connection;
      peer->accepted = false;
      peer->keepalive = std::chrono::milliseconds(0);
      FramedConnection* raw = connection.get();
      // The handlers live inside the connection, which the peer owns: they
      // hold the peer weakly to make no cycle.
      std::weak_ptr<Peer> weak_peer = peer;
      auto refused = std::make_shared<bool>(false);
      connection->set_on_written([this, weak_peer] {
        auto peer = weak_peer.lock();
        if (!peer || !peer->stream) return;
        peer->stream->last_progress = SteadyClock::now();
        pump(*peer);
      });
      connection->start(
          [this, weak_peer, raw, refused](std::string_view body) {
            auto peer = weak_peer.lock();
            if (!peer) return;
            peerpb::PeerEnvelope envelope;
            if (!envelope.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
              raw->stop("malformed frame from peer");
              return;
            }
            if (peer->accepted && envelope.has_snapshot_status()) {
              const auto& status = envelope.snapshot_status();
              if (peer->stream && peer->stream->id == status.stream_id()) {
                end_stream(*peer, status.ok(), status.reason());
              }
              return;
            }
            if (peer->accepted || !envelope.has_hello_ack()) {
              raw->stop("unexpected frame from peer");
              return;
            }
            if (!envelope.hello_ack().accepted()) {
              logger_->error("{} peer {} refused our connection: {}", options_.self_id, peer->id,
                             envelope.hello_ack().reason());
              *refused = true;
              raw->stop("refused");
              return;
            }
            peer->accepted = true;
            raw->set_max_frame_bytes(options_.max_frame_bytes);
            const auto& hello_ack = envelope.hello_ack();
            // Dialled at the address the configuration names: this is the
            // member's own client address (the class comment).
            if (!hello_ack.client_address().empty()) {
              client_addresses_[peer->id] = hello_ack.client_address();
            }
            peer->keepalive = std::chrono::milliseconds(hello_ack.idle_timeout_ms() / 3);
            peer->wake.cancel();  // the dial loop waits for keepalives from now on
            logger_->info("{} connected to peer {} at {}", options_.self_id, peer->id,
                          peer->address);
            if (on_status_) on_status_(peer->id, true);
          },
          [](uint64_t) {},
          [this, weak_peer](const std::string& reason) {
            auto peer = weak_peer.lock();
            if (!peer) return;
            end_stream(*peer, false, "connection lost: " + reason);
            if (peer->accepted) {
              logger_->info("{} lost peer {}: {}", options_.self_id, peer->id, reason);
              if (on_status_) on_status_(peer->id, false);
            }
            peer->accepted = false;
            peer->wake.cancel();
          });
      peerpb::PeerEnvelope hello;
      hello.mutable_hello()->set_cluster_id(options_.cluster_id);
      hello.mutable_hello()->set_from(options_.self_id);
      hello.mutable_hello()->set_to(peer->id);
      hello.mutable_hello()->set_client_address(options_.self_client_address);
      connection->send(hello);
      // Until the connection closes (its close handler cancels `wake`):
      // the HelloAck within handshake_timeout, then a Keepalive every
      // third of the acceptor's idle timeout.
      const auto hello_deadline = SteadyClock::now() + options_.handshake_timeout;
      while (connection->open() && !stopped_) {
        if (!peer->accepted) {
          peer->wake.expires_at(hello_deadline);
        } else if (peer->keepalive.count() > 0) {
          peer->wake.expires_after(peer->keepalive);
        } else {
          peer->wake.expires_at(SteadyClock::time_point::max());
        }
        boost::system::error_code wait_ec;
        co_await peer->wake.async_wait(asio::redirect_error(use_awaitable, wait_ec));
        if (!*alive) co_return;
        if (wait_ec || !connection->open() || stopped_) continue;
        if (!peer->accepted) {
          if (SteadyClock::now() < hello_deadline) continue;
          logger_->warn("{} peer {} at {} sent no HelloAck within {} ms", options_.self_id,
                        peer->id, peer->address, options_.handshake_timeout.count());
          connection->stop("no HelloAck in time");
        } else if (peer->keepalive.count() > 0) {
          peerpb::PeerEnvelope keepalive;
          keepalive.mutable_keepalive();
          connection->send(keepalive);
        }
      }
      peer->connection.reset();
      if (peer->removed) co_return;
      // A refusal is a configuration error: retry, but slowly.
      attempt = *refused ? std::max(attempt + 1, 5) : 0;
    } else {
      ++attempt;
    }
    if (stopped_ || peer->removed) co_return;
    timer.expires_after(backoff(attempt));
    boost::system::error_code wait_ec;
    co_await timer.async_wait(asio::redirect_error(use_awaitable, wait_ec));
    if (!*alive) co_return;
  }
}

}  // namespace fencelock::net
