#pragma once
// A blocking HTTP/1.1 GET for process-level tests of a node's HTTP port
// (Boost.Beast; plain HTTP on loopback).

#include <chrono>
#include <string>

namespace fencelock::testing {

struct HttpResult {
  int status = 0;  // 0: no answer (connection refused, timeout)
  std::string body;
  std::string content_type;
  std::string error;  // why there is no answer
};

// GET http://`address``target` ("127.0.0.1:8080", "/metrics"), with an
// optional bearer token, giving up after `timeout`.
HttpResult http_get(const std::string& address, const std::string& target,
                    const std::string& bearer = "",
                    std::chrono::milliseconds timeout = std::chrono::seconds(5));

// The same over TLS: the server's certificate checked against `ca`, and
// the client certificate `cert`/`key` presented when given.
HttpResult https_get(const std::string& address, const std::string& target, const std::string& ca,
                     const std::string& cert = "", const std::string& key = "",
                     const std::string& bearer = "",
                     std::chrono::milliseconds timeout = std::chrono::seconds(5));

}  // namespace fencelock::testing
