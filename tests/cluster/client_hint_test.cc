// Process-level tests of how the client library follows NOT_LEADER hints
// when it reaches the cluster through proxies (ClientOptions::hint_endpoints,
// follow_hints_outside_endpoints; docs/client.md "Proxies").

#include <catch2/catch.hpp>

#include "client/client.h"
#include "tests/cluster/process_cluster.h"
#include "tests/cluster/tcp_proxy.h"

namespace fencelock::testing {
namespace {

using namespace std::chrono_literals;

// The cluster's client endpoints with a follower first, so the first
// request meets NOT_LEADER and a hint naming the leader's real address.
std::vector<std::string> follower_first(ProcessCluster& cluster, uint64_t leader) {
  std::vector<std::string> out;
  for (uint64_t id : cluster.ids()) {
    if (id != leader) out.push_back(cluster.client_endpoint(id));
  }
  out.push_back(cluster.client_endpoint(leader));
  return out;
}

bool contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

}  // namespace

TEST_CASE("a client behind proxies stays within its endpoints when told to", "[cluster]") {
  ProcessCluster cluster(ProcessClusterOptions{});
  cluster.start_all();
  uint64_t leader = cluster.wait_for_leader();
  REQUIRE(leader != 0);
  auto real = follower_first(cluster, leader);
  TcpProxy proxy(real);
  auto proxied = proxy.endpoints();

  client::ClientOptions options;
  options.endpoints = proxied;
  options.request_timeout = 1500ms;
  options.connect_timeout = 300ms;

  SECTION("by default the client follows the hint to the leader's own address") {
    auto client = client::Client::connect(options).value();
    REQUIRE(client->describe("x").status().code() == lockpb::NOT_FOUND);
    CHECK(client->current_endpoint() == cluster.client_endpoint(leader));
  }

  SECTION("follow_hints_outside_endpoints=false: it tries its endpoints in turn") {
    options.follow_hints_outside_endpoints = false;
    auto client = client::Client::connect(options).value();
    REQUIRE(client->describe("x").status().code() == lockpb::NOT_FOUND);
    CHECK(client->current_endpoint() == proxied.back());
    // Cut off, it reaches nobody: no request slips past the proxy.
    proxy.cut();
    CHECK(client->describe("x").status().code() == lockpb::TIMEOUT);
    proxy.heal();
    CHECK(client->describe("x").status().code() == lockpb::NOT_FOUND);
    CHECK(contains(proxied, client->current_endpoint()));
  }

  SECTION("hint_endpoints maps the leader's address to the proxy that reaches it") {
    options.follow_hints_outside_endpoints = false;
    for (size_t i = 0; i < real.size(); ++i) options.hint_endpoints[real[i]] = proxied[i];
    // Only the first (a follower) is listed: the mapped hint is followed all
    // the same.
    options.endpoints = {proxied.front()};
    auto client = client::Client::connect(options).value();
    REQUIRE(client->describe("x").status().code() == lockpb::NOT_FOUND);
    CHECK(client->current_endpoint() == proxied.back());
  }
}

}  // namespace fencelock::testing
