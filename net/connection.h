#pragma once
// FramedConnection: one TCP connection carrying length-prefixed frames in
// both directions (net/frame.h), in the shape of the Asio examples: a reader
// coroutine, a writer coroutine, one outgoing buffer into which queued frames
// are coalesced, a timer as the writer's wake-up signal, and exactly one
// async_write in flight. When no write is in flight, the first frame queued
// in a handler is written to the (non-blocking) socket at once, and only
// what it does not take waits for the writer.
//
// The stream may be TLS (net/tls.h); then every write goes through the
// writer (TLS records cannot be written half by a non-blocking call).
//
// Thread-safety: not thread-safe. Every method, and every callback, runs on
// the thread running the connection's io_context.

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

#include "net/asio.h"
#include "net/frame.h"
#include "net/stream.h"

namespace google::protobuf {
class MessageLite;
}

namespace fencelock::net {

struct ConnectionOptions {
  uint32_t max_frame_bytes = kDefaultMaxFrameBytes;
  // Outgoing bytes not yet written; past this the peer is not reading and
  // the connection is closed rather than letting memory grow.
  size_t max_queued_bytes = 64u << 20;
  // Close when nothing arrives for this long; zero disables it.
  std::chrono::milliseconds idle_timeout{0};
  // Write the first frame queued in a handler at once when no write is in
  // flight (write_now()), instead of on the writer's next turn.
  bool write_at_once = false;
};

class FramedConnection : public std::enable_shared_from_this<FramedConnection> {
 public:
  // Called for each complete frame's body, in order. The view is valid only
  // during the call.
  using FrameHandler = std::function<void(std::string_view body)>;
  // Called when the next frame's length exceeds max_frame_bytes; the
  // connection has stopped reading and will close after flushing what was
  // queued (so an error response sent from the handler still goes out).
  using OversizeHandler = std::function<void(uint64_t length)>;
  // Called exactly once, when the connection has closed; `reason` says why.
  using CloseHandler = std::function<void(const std::string& reason)>;

  FramedConnection(Stream stream, ConnectionOptions options);
  FramedConnection(Tcp::socket socket, ConnectionOptions options)
      : FramedConnection(Stream(std::move(socket)), options) {}

  // Installs the handlers and starts the reader, writer and idle watchdog.
  // Call once.
  void start(FrameHandler on_frame, OversizeHandler on_oversize, CloseHandler on_close);

  // Queues `message` as one frame. Returns false (and queues nothing) when it
  // exceeds max_frame_bytes, or the connection is closing; closes the
  // connection when the queue limit is passed.
  bool send(const google::protobuf::MessageLite& message);

  // Queues bytes that are already framed (a header and body, or several).
  bool send_framed(std::string_view frames);
  // The same, given in pieces that are appended in order (a frame's header
  // and the start of its body, then a large tail read in place: one copy).
  bool send_framed(std::initializer_list<std::string_view> pieces);

  // Called on the loop each time a write to the socket completes, so a
  // sender can queue its next piece only as the socket drains (flow
  // control of InstallSnapshot streams). It may send or stop.
  void set_on_written(std::function<void()> on_written) { on_written_ = std::move(on_written); }

  // Stops reading; closes once every queued byte has been written.
  void close_after_flush(std::string reason);

  // Closes the socket now and cancels the timers; queued bytes are dropped.
  void stop(std::string reason);

  // Changes max_frame_bytes, for frames read and sent from now on (a peer
  // connection reads small frames until its Hello is accepted).
  void set_max_frame_bytes(uint32_t max_frame_bytes) {
    options_.max_frame_bytes = max_frame_bytes;
    decoder_.set_max_frame_bytes(max_frame_bytes);
  }

  bool open() const { return !stopped_; }
  const std::string& remote() const { return remote_; }
  // The TLS stream, null for a plaintext connection.
  TlsStream* tls() { return stream_.tls(); }
  size_t queued_bytes() const { return pending_.size() + writing_.size(); }

 private:
  boost::asio::awaitable<void> reader();
  boost::asio::awaitable<void> writer();
  boost::asio::awaitable<void> watchdog();
  void wake_writer();
  // Writes pending_ to the socket without blocking, as far as it takes it.
  void write_now();
  // Closes the connection if the queue is over its bound, else wakes the
  // writer. Returns whether the connection is still open.
  bool after_enqueue();

  Stream stream_;
  ConnectionOptions options_;
  FrameDecoder decoder_;
  boost::asio::steady_timer write_signal_;
  boost::asio::steady_timer idle_timer_;
  std::chrono::steady_clock::time_point last_read_;
  std::string pending_;  // frames queued while a write is in flight
  std::string writing_;  // the frames of the write in flight
  std::string remote_;
  FrameHandler on_frame_;
  OversizeHandler on_oversize_;
  CloseHandler on_close_;
  std::function<void()> on_written_;
  bool closing_ = false;  // close once the queue is empty
  bool stopped_ = false;
  bool wrote_this_turn_ = false;  // write_now() ran in the current handler
  std::string close_reason_;
};

}  // namespace fencelock::net
