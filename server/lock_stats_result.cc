#include "server/lock_stats_result.h"

namespace fencelock::server {

namespace {

void fill(const LockSeries& series, clientpb::LockSeriesStats& out) {
  out.set_grants(series.grants);
  out.set_hand_offs(series.hand_offs);
  out.set_releases(series.releases);
  out.set_queue_length(series.queue_length);
  out.set_waits(series.wait_seconds.count());
  out.set_holds(series.hold_seconds.count());
  // An empty histogram's quantile is NaN: none is shown as 0 with count 0.
  if (series.wait_seconds.count() > 0) {
    out.set_wait_p50_seconds(series.wait_seconds.quantile(0.5));
    out.set_wait_p99_seconds(series.wait_seconds.quantile(0.99));
  }
  if (series.hold_seconds.count() > 0) {
    out.set_hold_p50_seconds(series.hold_seconds.quantile(0.5));
    out.set_hold_p99_seconds(series.hold_seconds.quantile(0.99));
  }
}

}  // namespace

clientpb::LockStatsResult lock_stats_result(const LockStats& stats,
                                            const sm::LockStateMachine& state, uint64_t node_id,
                                            uint64_t applied_index, const std::string& prefix) {
  clientpb::LockStatsResult result;
  result.set_node_id(node_id);
  result.set_applied_index(applied_index);
  const LockTotals& totals = stats.totals();
  result.set_sessions_opened(totals.sessions_opened);
  result.set_sessions_closed(totals.sessions_closed);
  result.set_sessions_expired(totals.sessions_expired);
  result.set_grants(totals.grants);
  result.set_hand_offs(totals.hand_offs);
  result.set_queued(totals.queued);
  result.set_released(totals.released);
  result.set_released_on_close(totals.released_on_close);
  result.set_released_on_expiry(totals.released_on_expiry);
  result.set_force_released(totals.force_released);
  result.set_waits_timed_out(totals.waits_timed_out);
  result.set_waits_cancelled(totals.waits_cancelled);
  result.set_waits_session_ended(totals.waits_session_ended);
  result.set_acquire_failures(totals.acquire_failures);
  result.set_waiters(stats.waiters());
  for (const PrefixSeries& entry : stats.by_prefix()) {
    // A series covers the prefix asked for, or lies under it; _other may
    // hold anything.
    if (!entry.prefix.starts_with(prefix) && !prefix.starts_with(entry.prefix) &&
        entry.prefix != kOtherPrefix) {
      continue;
    }
    auto* row = result.add_prefixes();
    row->set_name(entry.prefix);
    fill(entry.series, *row);
  }
  for (const TopLock& entry : stats.top(state)) {
    if (!entry.lock.starts_with(prefix)) continue;
    auto* row = result.add_top();
    row->set_name(entry.lock);
    row->set_estimated_grants(entry.estimated_grants);
    fill(entry.series, *row);
  }
  return result;
}

}  // namespace fencelock::server
