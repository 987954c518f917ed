#include "tests/cluster/http_get.h"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <boost/asio/ssl.hpp>

#include "net/address.h"
#include "net/asio.h"

namespace fencelock::testing {

namespace beast = boost::beast;
namespace http = beast::http;

HttpResult http_get(const std::string& address, const std::string& target,
                    const std::string& bearer, std::chrono::milliseconds timeout) {
  HttpResult result;
  std::string host;
  uint16_t port = 0;
  if (!net::split_host_port(address, host, port)) {
    result.error = "bad address " + address;
    return result;
  }
  boost::asio::io_context io;
  beast::tcp_stream stream(io);
  stream.expires_after(timeout);
  beast::error_code ec;
  stream.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address(host, ec), port), ec);
  if (ec) {
    result.error = ec.message();
    return result;
  }
  http::request<http::empty_body> request{http::verb::get, target, 11};
  request.set(http::field::host, address);
  if (!bearer.empty()) request.set(http::field::authorization, "Bearer " + bearer);
  // Synchronous calls with a deadline: beast::tcp_stream's expiry covers
  // only asynchronous operations, so run them on the io_context.
  http::response<http::string_body> response;
  beast::flat_buffer buffer;
  http::async_write(stream, request, [&](beast::error_code e, size_t) {
    if (e) {
      ec = e;
      return;
    }
    http::async_read(stream, buffer, response, [&](beast::error_code e2, size_t) { ec = e2; });
  });
  io.run();
  if (ec) {
    result.error = ec.message();
    return result;
  }
  result.status = static_cast<int>(response.result_int());
  result.body = std::move(response.body());
  result.content_type = std::string(response[http::field::content_type]);
  return result;
}

HttpResult https_get(const std::string& address, const std::string& target, const std::string& ca,
                     const std::string& cert, const std::string& key, const std::string& bearer,
                     std::chrono::milliseconds timeout) {
  namespace ssl = boost::asio::ssl;
  HttpResult result;
  std::string host;
  uint16_t port = 0;
  if (!net::split_host_port(address, host, port)) {
    result.error = "bad address " + address;
    return result;
  }
  ssl::context context(ssl::context::tls_client);
  context.load_verify_file(ca);
  context.set_verify_mode(ssl::verify_peer);
  if (!cert.empty()) {
    context.use_certificate_chain_file(cert);
    context.use_private_key_file(key, ssl::context::pem);
  }
  boost::asio::io_context io;
  ssl::stream<boost::asio::ip::tcp::socket> stream(io, context);
  beast::error_code ec;
  stream.next_layer().connect(
      boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address(host, ec), port), ec);
  if (ec) {
    result.error = ec.message();
    return result;
  }
  http::request<http::empty_body> request{http::verb::get, target, 11};
  request.set(http::field::host, address);
  request.set(http::field::connection, "close");
  if (!bearer.empty()) request.set(http::field::authorization, "Bearer " + bearer);
  http::response<http::string_body> response;
  beast::flat_buffer buffer;
  bool done = false;
  stream.async_handshake(ssl::stream_base::client, [&](beast::error_code e) {
    if (e) {
      ec = e;
      done = true;
      return;
    }
    http::async_write(stream, request, [&](beast::error_code e2, size_t) {
      if (e2) {
        ec = e2;
        done = true;
        return;
      }
      http::async_read(stream, buffer, response, [&](beast::error_code e3, size_t) {
        ec = e3;
        done = true;
      });
    });
  });
  io.run_for(timeout);
  if (!done) {
    result.error = "timed out";
    return result;
  }
  if (ec) {
    result.error = ec.message();
    return result;
  }
  result.status = static_cast<int>(response.result_int());
  result.body = std::move(response.body());
  result.content_type = std::string(response[http::field::content_type]);
  return result;
}

}  // namespace fencelock::testing
