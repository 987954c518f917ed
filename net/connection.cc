#include "net/connection.h"

#include <google/protobuf/message_lite.h>

#include "net/address.h"

namespace fencelock::net {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;

namespace {
constexpr size_t kReadChunkBytes = 64 * 1024;
}  // namespace

FramedConnection::FramedConnection(Stream stream, ConnectionOptions options)
    : stream_(std::move(stream)),
      options_(options),
      decoder_(options.max_frame_bytes),
      write_signal_(stream_.socket().get_executor()),
      idle_timer_(stream_.socket().get_executor()),
      remote_(remote_text(stream_.socket())) {
  boost::system::error_code ignored;
  stream_.socket().set_option(Tcp::no_delay(true), ignored);
  if (stream_.tls() != nullptr) {
    options_.write_at_once = false;
  } else {
    // For the direct write in after_enqueue(): a would-block answer instead
    // of a blocked loop. Asynchronous operations are unaffected.
    stream_.socket().non_blocking(true, ignored);
  }
  write_signal_.expires_at(std::chrono::steady_clock::time_point::max());
}

void FramedConnection::start(FrameHandler on_frame, OversizeHandler on_oversize,
                             CloseHandler on_close) {
  on_frame_ = std::move(on_frame);
  on_oversize_ = std::move(on_oversize);
  on_close_ = std::move(on_close);
  last_read_ = std::chrono::steady_clock::now();
  auto self = shared_from_this();
  asio::co_spawn(stream_.socket().get_executor(), [self] { return self->reader(); }, asio::detached);
  asio::co_spawn(stream_.socket().get_executor(), [self] { return self->writer(); }, asio::detached);
  if (options_.idle_timeout.count() > 0) {
    asio::co_spawn(stream_.socket().get_executor(), [self] { return self->watchdog(); }, asio::detached);
  }
}

bool FramedConnection::send(const google::protobuf::MessageLite& message) {
  if (stopped_ || closing_) return false;
  if (!append_frame(message, pending_, options_.max_frame_bytes)) return false;
  return after_enqueue();
}

bool FramedConnection::send_framed(std::string_view frames) {
  if (stopped_ || closing_) return false;
  pending_.append(frames);
  return after_enqueue();
}

bool FramedConnection::send_framed(std::initializer_list<std::string_view> pieces) {
  if (stopped_ || closing_) return false;
  size_t bytes = 0;
  for (std::string_view piece : pieces) bytes += piece.size();
  pending_.reserve(pending_.size() + bytes);
  for (std::string_view piece : pieces) pending_.append(piece);
  return after_enqueue();
}

bool FramedConnection::after_enqueue() {
  if (queued_bytes() > options_.max_queued_bytes) {
    stop("peer is not reading: send queue over " + std::to_string(options_.max_queued_bytes) +
         " bytes");
    return false;
  }
  if (options_.write_at_once && writing_.empty() && !wrote_this_turn_) write_now();
  if (!pending_.empty()) wake_writer();
  return true;
}

void FramedConnection::write_now() {
  // No write is in flight, so the bytes can go to the socket right away
  // instead of after the writer coroutine's next turn: on the commit path
  // (an AppendEntries, its acknowledgement, a grant) that turn is all the
  // handlers queued behind the current one. Only the first frame of a turn
  // goes this way; what the same handler queues after it is coalesced by
  // the writer into one write, as before.
  boost::system::error_code ec;
  size_t written = stream_.socket().write_some(asio::buffer(pending_), ec);
  if (ec) return;  // would block, or an error the writer will meet and report
  pending_.erase(0, written);
  wrote_this_turn_ = true;
  asio::post(stream_.socket().get_executor(),
             [self = shared_from_this()] { self->wrote_this_turn_ = false; });
}

void FramedConnection::wake_writer() { write_signal_.cancel_one(); }

void FramedConnection::close_after_flush(std::string reason) {
  if (stopped_ || closing_) return;
  closing_ = true;
  close_reason_ = std::move(reason);
  boost::system::error_code ignored;
  stream_.socket().shutdown(Tcp::socket::shutdown_receive, ignored);
  if (queued_bytes() == 0) {
    stop(close_reason_);
  } else {
    wake_writer();
  }
}

void FramedConnection::stop(std::string reason) {
  if (stopped_) return;
  stopped_ = true;
  boost::system::error_code ignored;
  stream_.socket().shutdown(Tcp::socket::shutdown_both, ignored);
  stream_.socket().close(ignored);
  write_signal_.cancel();
  idle_timer_.cancel();
  pending_.clear();
  on_written_ = nullptr;
  if (on_close_) {
    // Moved out so that a handler dropping its reference to this connection
    // cannot destroy the std::function while it runs. on_frame_ stays: stop()
    // may be called from inside it.
    CloseHandler on_close = std::move(on_close_);
    on_close_ = nullptr;
    on_close(reason);
  }
}

awaitable<void> FramedConnection::reader() {
  auto self = shared_from_this();
  try {
    while (!stopped_ && !closing_) {
      std::span<char> region = decoder_.prepare(kReadChunkBytes);
      size_t n = co_await stream_.read_some(asio::buffer(region.data(), region.size()));
      decoder_.commit(n);
      last_read_ = std::chrono::steady_clock::now();
      while (!stopped_ && !closing_) {
        std::string_view body;
        DecodeStatus status = decoder_.next(body);
        if (status == DecodeStatus::kNeedMore) break;
        if (status == DecodeStatus::kTooLarge) {
          uint64_t length = decoder_.rejected_length();
          if (on_oversize_) on_oversize_(length);
          close_after_flush("frame of " + std::to_string(length) + " bytes exceeds maximum " +
                            std::to_string(options_.max_frame_bytes));
          co_return;
        }
        on_frame_(body);
      }
    }
  } catch (const boost::system::system_error& e) {
    if (e.code() == asio::error::eof || e.code() == asio::ssl::error::stream_truncated) {
      stop("closed by peer");
    } else {
      stop(e.code().message());
    }
  }
}

awaitable<void> FramedConnection::writer() {
  auto self = shared_from_this();
  try {
    while (!stopped_) {
      if (pending_.empty()) {
        if (closing_) {
          stop(close_reason_);
          co_return;
        }
        boost::system::error_code ec;
        co_await write_signal_.async_wait(asio::redirect_error(use_awaitable, ec));
        continue;
      }
      writing_.swap(pending_);
      co_await stream_.write_all(asio::buffer(writing_));
      writing_.clear();
      if (on_written_ && !stopped_) {
        // Copied: the callback may replace or clear it.
        auto on_written = on_written_;
        on_written();
      }
    }
  } catch (const boost::system::system_error& e) {
    stop(e.code().message());
  }
}

awaitable<void> FramedConnection::watchdog() {
  auto self = shared_from_this();
  while (!stopped_) {
    auto deadline = last_read_ + options_.idle_timeout;
    if (std::chrono::steady_clock::now() >= deadline) {
      stop("idle for " + std::to_string(options_.idle_timeout.count()) + " ms");
      co_return;
    }
    idle_timer_.expires_at(deadline);
    boost::system::error_code ec;
    co_await idle_timer_.async_wait(asio::redirect_error(use_awaitable, ec));
  }
}

}  // namespace fencelock::net
