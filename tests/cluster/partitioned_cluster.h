#pragma once
// A ProcessCluster whose every directed peer link goes through its own
// TcpProxy target, so that a test can cut a node off from its peers and
// heal it (docs/faults.md "What runs" explains the routing).

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tests/cluster/process_cluster.h"
#include "tests/cluster/tcp_proxy.h"

namespace fencelock::testing {

struct PartitionedCluster {
  // `options` as for ProcessCluster; its dial_address is set here. Starts
  // every node.
  explicit PartitionedCluster(ProcessClusterOptions options) : cluster(route(std::move(options))) {
    std::vector<std::string> targets;
    for (uint64_t from : cluster.ids()) {
      for (uint64_t to : cluster.ids()) {
        if (from == to) continue;
        index[{from, to}] = targets.size();
        targets.push_back(cluster.peer_endpoint(to));
      }
    }
    links = std::make_unique<TcpProxy>(targets);
    auto endpoints = links->endpoints();
    for (const auto& [link, i] : index) address[link] = endpoints[i];
    cluster.start_all();
  }

  // Cuts (heals) every link to and from `node`.
  void isolate(uint64_t node, bool cut) {
    for (const auto& [link, i] : index) {
      if (link.first != node && link.second != node) continue;
      cut ? links->cut(i) : links->heal(i);
    }
  }

  std::map<std::pair<uint64_t, uint64_t>, size_t> index;
  std::map<std::pair<uint64_t, uint64_t>, std::string> address;
  ProcessCluster cluster;
  std::unique_ptr<TcpProxy> links;

 private:
  ProcessClusterOptions route(ProcessClusterOptions options) {
    options.dial_address = [this](uint64_t from, uint64_t to, const std::string&) {
      return address.at({from, to});
    };
    return options;
  }
};

}  // namespace fencelock::testing
