// Process-level tests of fencelockd under network partitions: every
// directed peer link goes through its own TcpProxy target, so a test can
// isolate a node (docs/faults.md "What runs" explains the routing).

#include <atomic>
#include <catch2/catch.hpp>
#include <map>

#include "client/client.h"
#include "tests/cluster/process_cluster.h"
#include "tests/cluster/partitioned_cluster.h"

namespace fencelock::testing {
namespace {

using namespace std::chrono_literals;

// 2 s election timeout: the isolated leader keeps office long enough to
// take the test's proposals.
ProcessClusterOptions partition_options(int nodes) {
  ProcessClusterOptions out;
  out.nodes = nodes;
  out.election_ticks = 40;
  return out;
}

}  // namespace

TEST_CASE("a leader cut off from its peers answers every proposal it took once it steps down",
          "[cluster]") {
  PartitionedCluster c(partition_options(3));
  uint64_t leader = c.cluster.wait_for_leader();
  REQUIRE(leader != 0);
  client::ClientOptions options;
  options.endpoints = {c.cluster.client_endpoint(leader)};
  options.request_timeout = 30s;
  options.connect_timeout = 300ms;
  auto client = client::Client::connect(options).value();
  REQUIRE(client->list_sessions().ok());  // connected to the leader

  // The isolated leader appends these to its log and can commit none of
  // them; the majority elects a leader whose log is shorter. The first 19
  // come from a client that is gone before they could be retried (a retry
  // at the new leader would lengthen its log and so resolve the next one);
  // the last, from `client`, sits at the highest index.
  c.isolate(leader, true);
  {
    client::ClientOptions gone_options = options;
    gone_options.request_timeout = 300ms;
    auto gone = client::Client::connect(gone_options).value();
    for (int i = 0; i < 19; ++i) {
      clientpb::Request request;
      request.mutable_open_session()->set_ttl_ms(60000);
      gone->call_async(request, [](clientpb::Response) {});
    }
    // Unanswered after 300 ms: the leader has them, and cannot commit them.
    clientpb::Request last;
    last.mutable_open_session()->set_ttl_ms(60000);
    REQUIRE(gone->call(last).code() == lockpb::TIMEOUT);
  }
  std::atomic<bool> answered{false};
  std::atomic<int> code{-1};
  clientpb::Request request;
  request.mutable_open_session()->set_ttl_ms(60000);
  client->call_async(request, [&](clientpb::Response response) {
    code = response.code();
    answered = true;
  });
  REQUIRE(eventually(
      [&] {
        for (uint64_t id : c.cluster.ids()) {
          if (id == leader) continue;
          auto status = c.cluster.status_of(id);
          if (!status) continue;
          for (const auto& member : status->members()) {
            if (member.id() == id && member.role() == "leader") return true;
          }
        }
        return false;
      },
      10s));
  c.isolate(leader, false);
  // Once the old leader has stepped down, its callers are told to retry
  // (the client does, at the new leader): the request is answered in a few
  // seconds, not when the new leader's log happens to reach its index.
  CHECK(eventually([&] { return answered.load(); }, 8s));
  CHECK(code.load() == lockpb::OK);
}

}  // namespace fencelock::testing
