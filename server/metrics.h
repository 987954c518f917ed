#pragma once
// /metrics: a node's metrics in the Prometheus text format (0.0.4), built
// at scrape time from what the node, its edges and its log count
// (prometheus-cpp's data model and TextSerializer). Names follow
// Prometheus' conventions: the fencelock_ prefix, base units (seconds,
// bytes), counters ending in _total. docs/operations.md "Metrics" lists
// them all.
//
// Thread-safety: render_metrics runs on the node's loop, where everything
// it reads lives.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/shared_histogram.h"
#include "proto/client.pb.h"

namespace fencelock::server {

class Node;

// What the daemon counts at its edges: client requests by kind, answers by
// code (the node's and the ACL's refusals alike).
struct EdgeMetrics {
  std::vector<uint64_t> requests_by_kind;   // index: clientpb::Request::KindCase
  std::vector<uint64_t> responses_by_code;  // index: lockpb::ErrorCode
  uint64_t http_requests = 0;

  void count_request(clientpb::Request::KindCase kind) { bump(requests_by_kind, kind); }
  void count_response(int code) { bump(responses_by_code, code); }

 private:
  static void bump(std::vector<uint64_t>& counts, int index) {
    if (index < 0) return;
    if (static_cast<size_t>(index) >= counts.size()) counts.resize(index + 1);
    ++counts[index];
  }
};

struct MetricsInputs {
  const Node* node = nullptr;
  const EdgeMetrics* edge = nullptr;
  const SharedHistogram* log_sync_writes = nullptr;  // storage::DiskLog::sync_writes()
  size_t client_connections = 0;
  uint64_t client_connections_accepted = 0;
  std::function<bool(uint64_t peer)> peer_connected;
  bool process = true;  // the process_* metrics (off in tests of other parts)
};

// The exposition text.
std::string render_metrics(const MetricsInputs& inputs);

}  // namespace fencelock::server
