#include "server/lock_stats.h"

#include <algorithm>
#include <chrono>
#include <cstddef>

namespace fencelock::server {

namespace {

double seconds_between(SteadyTime from, SteadyTime to) {
  return std::chrono::duration<double>(to - from).count();
}

}  // namespace

LockStats::LockStats(LockStatsOptions options)
    : options_(options), top_capacity_(std::max<size_t>(4 * options.top_k, 64)) {}

std::string_view LockStats::prefix_of(std::string_view lock, uint32_t segments) {
  if (segments == 0) return {};
  size_t from = 0;
  for (uint32_t i = 0; i < segments; ++i) {
    const size_t slash = lock.find('/', from);
    if (slash == std::string_view::npos) return lock;
    from = slash + 1;
  }
  return lock.substr(0, from);
}

LockSeries& LockStats::prefix_series(std::string_view lock) {
  const std::string_view prefix = prefix_of(lock, options_.prefix_segments);
  if (auto it = prefixes_.find(prefix); it != prefixes_.end()) return it->second;
  if (admitted_prefixes_ < options_.max_prefixes) {
    ++admitted_prefixes_;
    return prefixes_.try_emplace(std::string(prefix)).first->second;
  }
  // Admission is for good: a prefix gets its own series only while there is
  // room, so a lock's series never changes, and the queue lengths counted
  // up and down stay in one place.
  return prefixes_.try_emplace(std::string(kOtherPrefix)).first->second;
}

LockStats::TopEntry* LockStats::top_entry(std::string_view lock) {
  auto it = top_index_.find(lock);
  return it == top_index_.end() ? nullptr : &top_slots_[it->second];
}

LockStats::TopEntry& LockStats::count_top_grant(std::string_view lock) {
  if (auto it = top_index_.find(lock); it != top_index_.end()) {
    TopEntry& entry = top_slots_[it->second];
    // Moves the entry's node in the order, allocating nothing.
    auto node = top_by_count_.extract({entry.count(), it->second});
    ++entry.series.grants;
    node.value().first = entry.count();
    top_by_count_.insert(std::move(node));
    return entry;
  }
  size_t slot = top_slots_.size();
  uint64_t error = 0;
  if (slot < top_capacity_) {
    top_slots_.emplace_back();
  } else {
    // Space-Saving: the new name takes the least counted one's place and
    // inherits its count as its possible overestimate.
    const auto least = top_by_count_.begin();
    error = least->first;
    slot = least->second;
    top_by_count_.erase(least);
    top_index_.erase(top_slots_[slot].lock);
  }
  TopEntry& entry = top_slots_[slot];
  entry = TopEntry{std::string(lock), error, LockSeries{}};
  entry.series.grants = 1;
  top_index_.emplace(entry.lock, slot);
  top_by_count_.emplace(entry.count(), slot);
  return entry;
}

void LockStats::dequeue(LockSeries& series) {
  if (series.queue_length > 0) --series.queue_length;
  if (waiters_ > 0) --waiters_;
}

void LockStats::granted(SteadyTime now, std::string_view lock, uint64_t token,
                        std::optional<uint64_t> wait_id) {
  ++totals_.grants;
  next_token_ = std::max(next_token_, token + 1);
  holds_[token] = now;
  LockSeries& prefix = prefix_series(lock);
  TopEntry& top = count_top_grant(lock);
  ++prefix.grants;
  double waited = 0;  // an immediate grant
  if (wait_id) {
    ++totals_.hand_offs;
    ++prefix.hand_offs;
    ++top.series.hand_offs;
    dequeue(prefix);
    auto wait = waits_.find(*wait_id);
    if (wait == waits_.end()) return;  // queued before restored(): not timed
    waited = seconds_between(wait->second, now);
    waits_.erase(wait);
  }
  prefix.wait_seconds.observe(waited);
  top.series.wait_seconds.observe(waited);
}

void LockStats::released(SteadyTime now, const sm::Released& released) {
  switch (released.reason) {
    case sm::ReleaseReason::kReleased: ++totals_.released; break;
    case sm::ReleaseReason::kSessionClosed: ++totals_.released_on_close; break;
    case sm::ReleaseReason::kSessionExpired: ++totals_.released_on_expiry; break;
    case sm::ReleaseReason::kForceReleased: ++totals_.force_released; break;
  }
  LockSeries& prefix = prefix_series(released.lock);
  TopEntry* top = top_entry(released.lock);
  ++prefix.releases;
  if (top) ++top->series.releases;
  auto hold = holds_.find(released.token);
  if (hold == holds_.end()) return;
  const double held = seconds_between(hold->second, now);
  holds_.erase(hold);
  prefix.hold_seconds.observe(held);
  if (top) top->series.hold_seconds.observe(held);
}

void LockStats::wait_ended(const sm::EndedWait& ended) {
  switch (ended.reason) {
    case sm::Code::kTimeout: ++totals_.waits_timed_out; break;
    case sm::Code::kCancelled: ++totals_.waits_cancelled; break;
    default: ++totals_.waits_session_ended; break;
  }
  waits_.erase(ended.wait_id);
  dequeue(prefix_series(ended.lock));
}

void LockStats::applied(SteadyTime now, const lockpb::Command& command,
                        const sm::ApplyResult& result) {
  // A retry applied nothing; its answer repeats what was counted the first
  // time (a grant, a queued wait, a failure).
  if (result.duplicate) return;
  const bool ok = result.status.ok();
  switch (command.kind_case()) {
    case lockpb::Command::kOpenSession:
      if (ok) ++totals_.sessions_opened;
      break;
    case lockpb::Command::kCloseSession:
      if (ok) ++totals_.sessions_closed;
      break;
    case lockpb::Command::kExpireSession:
      if (ok) ++totals_.sessions_expired;
      break;
    case lockpb::Command::kAcquire:
      if (!ok) {
        ++totals_.acquire_failures;
        ++totals_.acquire_failures_by_code[result.status.code()];
      }
      break;
    default:
      break;
  }
  // What ended before what began, as the state machine did it: released
  // holders and ended waits make the room the entry's grants take.
  for (const sm::Released& released_holder : result.released) released(now, released_holder);
  for (const sm::EndedWait& ended : result.ended_waits) wait_ended(ended);
  if (ok && command.has_acquire()) {
    const std::string& lock = command.acquire().lock();
    if (result.granted && result.granted->token() >= next_token_) {
      granted(now, lock, result.granted->token(), std::nullopt);
    } else if (result.queued) {
      ++totals_.queued;
      ++waiters_;
      ++prefix_series(lock).queue_length;
      waits_[result.wait_id] = now;
    }
  }
  for (const sm::Grant& grant : result.grants) {
    granted(now, grant.sequencer.lock(), grant.sequencer.token(), grant.wait_id);
  }
}

void LockStats::restored(SteadyTime now, const sm::LockStateMachine& state) {
  waits_.clear();
  holds_.clear();
  waiters_ = 0;
  for (auto& [prefix, series] : prefixes_) series.queue_length = 0;
  for (const sm::PendingWait& wait : state.pending_waits()) {
    ++prefix_series(wait.lock).queue_length;
    ++waiters_;
  }
  next_token_ = state.next_token();
  restored_at_ = now;
}

std::vector<PrefixSeries> LockStats::by_prefix() const {
  std::vector<PrefixSeries> out;
  out.reserve(prefixes_.size());
  for (const auto& [prefix, series] : prefixes_) out.push_back(PrefixSeries{prefix, series});
  return out;
}

std::vector<TopLock> LockStats::top(const sm::LockStateMachine& state) const {
  std::vector<const TopEntry*> ranked;
  ranked.reserve(top_slots_.size());
  for (const TopEntry& entry : top_slots_) ranked.push_back(&entry);
  const size_t k = std::min(options_.top_k, ranked.size());
  std::partial_sort(ranked.begin(), ranked.begin() + static_cast<ptrdiff_t>(k), ranked.end(),
                    [](const TopEntry* a, const TopEntry* b) {
                      if (a->count() != b->count()) return a->count() > b->count();
                      return a->lock < b->lock;
                    });
  std::vector<TopLock> out;
  out.reserve(k);
  for (size_t i = 0; i < k; ++i) {
    TopLock top{ranked[i]->lock, ranked[i]->series, ranked[i]->count()};
    auto view = state.describe(top.lock);
    top.series.queue_length = view.ok() ? view.value().waiters.size() : 0;
    out.push_back(std::move(top));
  }
  return out;
}

LockStatsSizes LockStats::sizes() const {
  return LockStatsSizes{prefixes_.size(), top_slots_.size(), waits_.size(), holds_.size()};
}

}  // namespace fencelock::server
