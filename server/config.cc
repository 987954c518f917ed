#include "server/config.h"

#include <charconv>

#include "net/address.h"

namespace fencelock::server {

Result<std::map<uint64_t, std::string>> parse_peers(const std::string& text) {
  std::map<uint64_t, std::string> peers;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string part = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? text.size() + 1 : comma + 1;
    if (part.empty()) continue;
    size_t eq = part.find('=');
    uint64_t id = 0;
    if (eq == std::string::npos || eq == 0) {
      return Status(lockpb::INVALID_ARGUMENT, "peer '" + part + "' is not ID=HOST:PORT");
    }
    auto [ptr, ec] = std::from_chars(part.data(), part.data() + eq, id);
    if (ec != std::errc() || ptr != part.data() + eq || id == 0) {
      return Status(lockpb::INVALID_ARGUMENT, "peer '" + part + "': id must be a positive integer");
    }
    std::string address = part.substr(eq + 1);
    std::string host;
    uint16_t port = 0;
    if (!net::split_host_port(address, host, port)) {
      return Status(lockpb::INVALID_ARGUMENT, "peer '" + part + "': address is not HOST:PORT");
    }
    if (!peers.emplace(id, address).second) {
      return Status(lockpb::INVALID_ARGUMENT, "peer id " + std::to_string(id) + " appears twice");
    }
  }
  if (peers.empty()) return Status(lockpb::INVALID_ARGUMENT, "no peers given");
  return peers;
}

Status validate(const NodeConfig& config) {
  auto invalid = [](std::string message) { return Status(lockpb::INVALID_ARGUMENT, std::move(message)); };
  if (config.id == 0) return invalid("--id must be a positive integer");
  if (!config.peers.contains(config.id)) {
    if (config.join) {
      return invalid("node " + std::to_string(config.id) +
                     " is not a member of the cluster it joins: add it first with "
                     "`fencelock member add`");
    }
    return invalid("--id " + std::to_string(config.id) + " is not among --peers");
  }
  if (config.client_addr.empty()) return invalid("--client-addr is required");
  if (config.data_dir.empty()) return invalid("--data-dir is required");
  if (config.tick_ms < 1 || config.tick_ms > 10000) return invalid("--tick-ms must be in [1, 10000]");
  if (config.election_ticks < 3) return invalid("--election-ticks must be at least 3");
  if (config.heartbeat_ticks < 1 || config.heartbeat_ticks >= config.election_ticks) {
    return invalid("heartbeat ticks must be at least 1 and below --election-ticks");
  }
  if (config.lazy_window_us > kMaxLazyWindowUs) {
    return invalid("--lazy-window-us must be at most " + std::to_string(kMaxLazyWindowUs));
  }
  if (config.snapshot_every < 1) return invalid("--snapshot-every must be at least 1");
  if (config.cluster_id.empty()) return invalid("--cluster-id must not be empty");
  if (config.restore_token_floor != 0 && config.restore_file.empty()) {
    return invalid("--restore-token-floor needs --restore");
  }
  const ObservabilityConfig& observability = config.observability;
  if (observability.prefix_segments < 1 || observability.prefix_segments > 16) {
    return invalid("--metrics-prefix-segments must be in [1, 16]");
  }
  if (observability.max_prefixes < 1 || observability.max_prefixes > 100'000) {
    return invalid("--metrics-max-prefixes must be in [1, 100000]");
  }
  if (observability.top_k > 1000) return invalid("--metrics-top-k must be at most 1000");
  if (!observability.http_addr.empty() && observability.http_addr == config.client_addr) {
    return invalid("--http-addr must differ from --client-addr");
  }
  const SecurityConfig& security = config.security;
  if (security.tls() &&
      (security.tls_cert.empty() || security.tls_key.empty() || security.tls_ca.empty())) {
    return invalid("TLS needs all three of --tls-cert, --tls-key and --tls-ca");
  }
  if (security.client_auth == ClientAuthMode::kCert && !security.tls()) {
    return invalid("--client-auth cert needs TLS (--tls-cert, --tls-key, --tls-ca)");
  }
  if ((security.client_auth == ClientAuthMode::kToken) != !security.tokens_file.empty()) {
    return invalid("--client-auth token and --tokens-file go together");
  }
  if ((security.client_auth != ClientAuthMode::kNone) != !security.acl_file.empty()) {
    return invalid(security.acl_file.empty()
                       ? "--client-auth cert|token needs --acl (the rights of each principal)"
                       : "--acl needs --client-auth cert or token (who the client is)");
  }
  return Status();
}

uint64_t cluster_hash(const std::string& cluster_id) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (unsigned char c : cluster_id) {
    hash ^= c;
    hash *= 0x100000001b3ull;
  }
  return hash == 0 ? 1 : hash;
}

}  // namespace fencelock::server
