#pragma once
// Stream: a connected TCP socket, plain or inside TLS (net/tls.h), with
// the few operations a FramedConnection needs. A TLS stream comes with its
// handshake done.
//
// Thread-safety: not thread-safe; used on its io_context's thread.

#include <cstddef>
#include <memory>

#include "net/asio.h"
#include "net/tls.h"

namespace fencelock::net {

class Stream {
 public:
  explicit Stream(Tcp::socket socket) : socket_(std::move(socket)) {}
  explicit Stream(std::unique_ptr<TlsStream> tls)
      : socket_(tls->get_executor()), tls_(std::move(tls)) {}

  // The TCP socket underneath (options, shutdown, close, endpoints).
  Tcp::socket& socket() { return tls_ ? tls_->next_layer() : socket_; }
  const Tcp::socket& socket() const { return tls_ ? tls_->next_layer() : socket_; }
  // The TLS stream; null for a plain one.
  TlsStream* tls() { return tls_.get(); }

  boost::asio::awaitable<size_t> read_some(boost::asio::mutable_buffer buffer) {
    if (tls_) co_return co_await tls_->async_read_some(buffer, boost::asio::use_awaitable);
    co_return co_await socket_.async_read_some(buffer, boost::asio::use_awaitable);
  }
  boost::asio::awaitable<void> write_all(boost::asio::const_buffer buffer) {
    if (tls_) {
      co_await boost::asio::async_write(*tls_, buffer, boost::asio::use_awaitable);
    } else {
      co_await boost::asio::async_write(socket_, buffer, boost::asio::use_awaitable);
    }
  }

 private:
  Tcp::socket socket_;  // unused (closed) when tls_ is set
  std::unique_ptr<TlsStream> tls_;
};

}  // namespace fencelock::net
