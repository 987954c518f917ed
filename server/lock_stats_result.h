#pragma once
// The lock statistics (server/lock_stats.h) of the locks under a prefix,
// as the LockStats request answers them (`fencelock stats`) and /v1/stats
// shows them: totals, the prefix series that overlap the prefix, and the
// busiest names under it, with p50 and p99 wait and hold times.

#include <cstdint>
#include <string>

#include "proto/client.pb.h"
#include "server/lock_stats.h"

namespace fencelock::server {

clientpb::LockStatsResult lock_stats_result(const LockStats& stats,
                                            const sm::LockStateMachine& state, uint64_t node_id,
                                            uint64_t applied_index, const std::string& prefix);

}  // namespace fencelock::server
