#pragma once
// fencelock::client::ClientOptions: how a Client reaches the cluster.
//
// A plain value in a header of its own, so that the client's pure retry
// rules (client/call_policy.h) take the same options as the threaded Client
// without depending on it.
//
// Thread-safety: a value type; distinct objects may be used from any thread.

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace fencelock::client {

struct ClientOptions {
  std::vector<std::string> endpoints;  // "host:port" of any members
  // How long a request may take in all, retries included (an acquire adds
  // its wait to this).
  std::chrono::milliseconds request_timeout{10000};
  std::chrono::milliseconds connect_timeout{1000};
  uint32_t max_frame_bytes = 4u << 20;
  // A follower's NOT_LEADER answer names the leader by the client address
  // the leader was started with (its --client-addr). A client that reaches
  // the cluster through proxies, NAT or port forwarding cannot use that
  // address: map it here to the endpoint that reaches the same member
  // ("10.0.0.2:7001" -> "proxy:9002"). Checked before the rule below.
  std::map<std::string, std::string> hint_endpoints;
  // Whether to follow a hint that is neither one of `endpoints` nor mapped
  // by hint_endpoints. true (default): connect to the hinted address, the
  // quickest way to the leader when members' client addresses are
  // reachable. false: stay within `endpoints`, trying them in turn until
  // one is the leader; use it whenever the configured endpoints are the
  // only way in.
  bool follow_hints_outside_endpoints = true;
  // TLS (docs/security.md): a CA file turns it on; the member's
  // certificate must be signed by it and name the host dialed (an IP or
  // DNS subjectAltName). A certificate and key give the client's own
  // identity, for servers with --client-auth cert.
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  // For servers with --client-auth token: presented on every connection
  // before any request. A server that does not know it answers
  // UNAUTHENTICATED, and every call fails with it.
  std::string token;
};

}  // namespace fencelock::client
