#pragma once
// LockStats: statistics of the applied command stream, for the node's
// metrics (issue "Observability"). The node feeds it every command it
// applies, with the state machine's ApplyResult and the time it applied it;
// it keeps totals since the process started, a few gauges it maintains
// incrementally, per lock-name-prefix series and the busiest lock names.
// Everything it holds is bounded, whatever the lock names:
//
// - per prefix: at most LockStatsOptions::max_prefixes prefixes, plus one
//   series labelled kOtherPrefix for every prefix after them;
// - the busiest names: a Space-Saving table (Metwally, Agrawal and El
//   Abbadi, "Efficient computation of frequent and top-k elements in data
//   streams", 2005) of max(4 * top_k, 64) names, ranked by grants;
// - in-flight waits (by wait_id) and holds (by token), to time them: at
//   most the state's waiters and holders, since every wait ends through a
//   Grant or an EndedWait, and every hold through a Released.
//
// It is pure: it reads no clock (times are passed in), owns no thread,
// socket or file, and names nothing the way an exporter would (the metric
// names and labels are the exporter's business). Times are the node's
// steady clock, so they are local to this node: on a follower a wait
// measures from this node's apply of the Acquire to its apply of the grant.
//
// Thread-safety: not thread-safe; the node's loop owns it.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "proto/command.pb.h"
#include "server/env.h"
#include "server/histogram.h"
#include "statemachine/lock_state_machine.h"

namespace fencelock::server {

struct LockStatsOptions {
  // A lock's prefix is the first `prefix_segments` '/'-separated segments
  // of its name, with the '/' after them ("jobs/nightly/a": "jobs/" with 1,
  // "jobs/nightly/" with 2); a name with no more segments is its own prefix
  // ("nightly"). 0 puts every lock under the prefix "".
  uint32_t prefix_segments = 1;
  // Distinct prefixes with their own series; later ones share kOtherPrefix.
  size_t max_prefixes = 256;
  // Names top() returns.
  size_t top_k = 10;
};

// The series of the prefixes beyond LockStatsOptions::max_prefixes. A lock
// whose own prefix is "_other" shares it.
inline constexpr std::string_view kOtherPrefix = "_other";

// Counters since the process started (restored() keeps them).
struct LockTotals {
  uint64_t sessions_opened = 0;
  uint64_t sessions_closed = 0;
  uint64_t sessions_expired = 0;
  // Every new grant: immediate ones and hand-offs. A re-acquire answered
  // with the session's existing grant is none.
  uint64_t grants = 0;
  // Grants from the queue, caused by another command (a release, an
  // expiry, a cancelled wait, the end of a lock-delay, ...).
  uint64_t hand_offs = 0;
  // Acquires that queued.
  uint64_t queued = 0;
  // Holders that stopped holding, by sm::ReleaseReason.
  uint64_t released = 0;
  uint64_t released_on_close = 0;
  uint64_t released_on_expiry = 0;
  uint64_t force_released = 0;
  // Queued acquires that ended without a grant, by sm::EndedWait::reason:
  // the leader's deadline, the client's CancelWait, its session's end.
  uint64_t waits_timed_out = 0;
  uint64_t waits_cancelled = 0;
  uint64_t waits_session_ended = 0;
  // Acquires answered with an error (a busy try-acquire's TIMEOUT
  // included), and the same by code. Retries are not counted again.
  uint64_t acquire_failures = 0;
  std::map<sm::Code, uint64_t> acquire_failures_by_code;

  friend bool operator==(const LockTotals&, const LockTotals&) = default;
};

// The statistics of a set of locks: a prefix, or one busy lock name.
struct LockSeries {
  uint64_t grants = 0;     // LockTotals::grants
  uint64_t hand_offs = 0;  // LockTotals::hand_offs
  uint64_t releases = 0;   // every reason
  // Acquires queued now.
  uint64_t queue_length = 0;
  // From a queued Acquire's apply to its grant's; an immediate grant
  // observes 0. A wait queued before restored() is not observed.
  Histogram wait_seconds;
  // From a grant to its release, whatever the reason. A hold granted
  // before restored() is not observed (its release still counts).
  Histogram hold_seconds;
};

struct PrefixSeries {
  std::string prefix;
  LockSeries series;
};

// One of the busiest lock names. Its series counts from when the name last
// entered the Space-Saving table (a name evicted loses it): series.grants
// <= the name's grants since the process started <= estimated_grants.
// series.queue_length is read from the state.
struct TopLock {
  std::string lock;
  LockSeries series;
  // The table's count, by which names are ranked: series.grants plus the
  // count of the name it replaced in the table (Space-Saving's error).
  uint64_t estimated_grants = 0;
};

// The sizes of the tables LockStats keeps, to check (and export) that they
// stay bounded.
struct LockStatsSizes {
  size_t prefixes = 0;         // <= max_prefixes + 1
  size_t top_table = 0;        // <= max(4 * top_k, 64)
  size_t waits_in_flight = 0;  // <= the state's waiters
  size_t holds_in_flight = 0;  // <= the state's holders
};

class LockStats {
 public:
  explicit LockStats(LockStatsOptions options = {});

  // Counts the command the state machine applied at `now` (the node's
  // steady clock) and what it did (`result`, from LockStateMachine::apply
  // of `command`). Call it for every applied command, in apply order,
  // leader or not; a retry (result.duplicate) changes nothing. Bytes that
  // did not parse as a command need not be passed. Never fails.
  void applied(SteadyTime now, const lockpb::Command& command, const sm::ApplyResult& result);

  // After the state machine was replaced (a snapshot installed) or at
  // start, before the first applied(): recounts the queue lengths and
  // waiters() from `state`, and forgets the times of the waits and holds in
  // flight (the grants and releases of those are counted, not timed). The
  // totals and the series' counters and histograms stay. `now` is kept as
  // restored_at().
  void restored(SteadyTime now, const sm::LockStateMachine& state);

  const LockTotals& totals() const { return totals_; }
  // Every prefix series, by prefix; at most max_prefixes + 1.
  std::vector<PrefixSeries> by_prefix() const;
  // The top_k names of the table with the most estimated grants (then by
  // name), most first, with their queue length now in `state` (the state
  // this object is fed from). O(top_k describe()).
  std::vector<TopLock> top(const sm::LockStateMachine& state) const;
  // Acquires queued now, over every lock.
  uint64_t waiters() const { return waiters_; }
  // When restored() was last called.
  std::optional<SteadyTime> restored_at() const { return restored_at_; }
  LockStatsSizes sizes() const;

  // The prefix of `lock` with `segments` segments (LockStatsOptions).
  static std::string_view prefix_of(std::string_view lock, uint32_t segments);

 private:
  struct TopEntry {
    std::string lock;
    uint64_t error = 0;  // the count of the name this one replaced
    LockSeries series;
    uint64_t count() const { return error + series.grants; }
  };
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  // The series of `lock`'s prefix, admitting the prefix while there is room.
  LockSeries& prefix_series(std::string_view lock);
  // The table entry of `lock`, or null when it has none.
  TopEntry* top_entry(std::string_view lock);
  // Counts a grant of `lock` in the Space-Saving table, adding the name
  // (in place of the least counted one when the table is full); returns
  // its entry.
  TopEntry& count_top_grant(std::string_view lock);
  // A new grant of `lock` with `token`: immediate (wait 0 s), or a hand-off
  // of the wait `wait_id`.
  void granted(SteadyTime now, std::string_view lock, uint64_t token,
               std::optional<uint64_t> wait_id);
  void released(SteadyTime now, const sm::Released& released);
  void wait_ended(const sm::EndedWait& ended);
  // One queued acquire of `series` fewer (saturating: one that was never
  // counted, had restored() been skipped, must not wrap).
  void dequeue(LockSeries& series);

  LockStatsOptions options_;
  size_t top_capacity_;
  LockTotals totals_;
  uint64_t waiters_ = 0;
  // Prefix series by prefix; admitted_prefixes_ of them have their own
  // prefix (kOtherPrefix, once used, is the one more).
  std::map<std::string, LockSeries, std::less<>> prefixes_;
  size_t admitted_prefixes_ = 0;
  // The Space-Saving table: entries, their index by name, and (count,
  // slot) in increasing order, so the least counted entry is the first.
  std::vector<TopEntry> top_slots_;
  std::unordered_map<std::string, size_t, StringHash, std::equal_to<>> top_index_;
  std::set<std::pair<uint64_t, size_t>> top_by_count_;
  // When each wait in flight queued (by wait_id), and each hold in flight
  // was granted (by token).
  std::unordered_map<uint64_t, SteadyTime> waits_;
  std::unordered_map<uint64_t, SteadyTime> holds_;
  // The lowest token a new grant can carry: a grant with a lower one is a
  // re-acquire answered with the existing grant.
  uint64_t next_token_ = 1;
  std::optional<SteadyTime> restored_at_;
};

}  // namespace fencelock::server
