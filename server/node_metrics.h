#pragma once
// NodeMetrics: what a server::Node counts about itself for /metrics and
// the operator page (server/metrics.h renders them): leadership, Raft log
// writes, proposals and snapshots. The lock and session counters come
// from the applied stream (server/lock_stats.h).
//
// Thread-safety: the node updates the plain counters on its loop, where
// they are read too; the histograms are written from the storage thread
// as well and may be read from anywhere.

#include <chrono>
#include <cstdint>
#include <deque>

#include "common/shared_histogram.h"

namespace fencelock::server {

struct LeaderChange {
  std::chrono::steady_clock::time_point at;  // on the node's clock
  uint64_t term = 0;
  uint64_t leader_id = 0;  // 0: no leader known
};

struct NodeMetrics {
  // Times this node saw the leader change to another known leader.
  uint64_t leader_changes = 0;
  // The latest changes of the known leader (to none included), oldest first.
  static constexpr size_t kRecentLeaderChanges = 20;
  std::deque<LeaderChange> recent_leaders;

  // Commands this node proposed as leader, and proposals the core refused.
  uint64_t proposals = 0;
  uint64_t proposals_refused = 0;

  // State machine snapshots taken by this node, and the bytes of each
  // (summed); snapshots installed from the leader.
  uint64_t snapshots_taken = 0;
  uint64_t snapshot_bytes_total = 0;
  uint64_t last_snapshot_bytes = 0;
  uint64_t snapshots_installed = 0;

  // Each write of the Raft log (entries and hard state, synced or not),
  // and the entries each carried: the batch a leader appends in one write.
  SharedHistogram log_writes{latency_buckets()};
  SharedHistogram log_write_entries{size_buckets()};
};

}  // namespace fencelock::server
