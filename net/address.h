#pragma once
// Address parsing and listening shared by the peer and client listeners.

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "net/asio.h"

namespace fencelock::net {

// Splits "host:port" (IPv6 hosts in brackets); false when there is no port or
// it is not a number.
bool split_host_port(const std::string& address, std::string& host, uint16_t& port);

// Opens, binds and listens `acceptor` on `address`, a numeric "ip:port".
// INVALID_ARGUMENT when the address does not parse, UNAVAILABLE (naming the
// address and the OS error) when it cannot be bound; `what` names the
// listener in the message ("client", "peer").
Status listen_on(boost::asio::ip::tcp::acceptor& acceptor, const std::string& address,
                 std::string_view what);

// "ip:port" of the other end of `socket`, or "unknown" when it has none
// (closed, or never connected): for log lines.
std::string remote_text(const boost::asio::ip::tcp::socket& socket);

}  // namespace fencelock::net
