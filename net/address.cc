#include "net/address.h"

#include <charconv>

namespace fencelock::net {

std::string remote_text(const boost::asio::ip::tcp::socket& socket) {
  boost::system::error_code ec;
  auto endpoint = socket.remote_endpoint(ec);
  if (ec) return "unknown";
  return endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
}

namespace asio = boost::asio;

bool split_host_port(const std::string& address, std::string& host, uint16_t& port) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) return false;
  host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const char* begin = address.data() + colon + 1;
  const char* end = address.data() + address.size();
  auto [ptr, ec] = std::from_chars(begin, end, port);
  return ec == std::errc() && ptr == end;
}

Status listen_on(asio::ip::tcp::acceptor& acceptor, const std::string& address,
                 std::string_view what) {
  std::string prefix = std::string(what) + " address '" + address + "'";
  std::string host;
  uint16_t port = 0;
  if (!split_host_port(address, host, port)) {
    return Status(lockpb::INVALID_ARGUMENT, prefix + " is not host:port");
  }
  boost::system::error_code ec;
  auto ip = asio::ip::make_address(host, ec);
  if (ec) return Status(lockpb::INVALID_ARGUMENT, prefix + ": " + ec.message());
  asio::ip::tcp::endpoint endpoint(ip, port);
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    boost::system::error_code ignored;
    acceptor.close(ignored);
    return Status(lockpb::UNAVAILABLE, "cannot listen on " + prefix + ": " + ec.message());
  }
  return Status();
}

}  // namespace fencelock::net
