#include "server/leader_timers.h"

namespace fencelock::server {

namespace {

std::chrono::milliseconds ms(uint64_t count) {
  return std::chrono::milliseconds(static_cast<int64_t>(count));
}

// `count` ms after `now`, saturating: a wait of "forever" (wait_ms near
// 2^64) must not wrap into the past.
SteadyTime after_ms(SteadyTime now, uint64_t count) {
  auto room = std::chrono::duration_cast<std::chrono::milliseconds>(SteadyTime::max() - now);
  if (count >= static_cast<uint64_t>(room.count())) return SteadyTime::max();
  return now + ms(count);
}

}  // namespace

void LeaderTimers::track_session(uint64_t session_id, uint64_t ttl_ms, SteadyTime now) {
  session_seen_[session_id] = Seen{now, ttl_ms};
  session_deadlines_.emplace(now + ms(ttl_ms), session_id);
}

void LeaderTimers::take_office(SteadyTime now, const sm::LockStateMachine& state, uint64_t term) {
  clear();
  for (const auto& session : state.sessions()) {
    SteadyTime from = now;
    if (bug_ == InjectedBug::kExpireOnOldDeadline) from -= ms(session.ttl_ms / 2);
    track_session(session.session_id, session.ttl_ms, from);
  }
  // Every pending wait and lock-delay runs in full again from taking office:
  // this node cannot know how much of it ran on another leader's clock, and
  // neither may end early.
  for (const auto& wait : state.pending_waits()) {
    wait_deadlines_.push(WaitTimer{after_ms(now, wait.wait_ms), wait.session_id, wait.lock,
                                   wait.wait_id});
  }
  for (const auto& delay : state.lock_delays()) {
    SteadyTime end = after_ms(now, delay.delay_ms);
    if (bug_ == InjectedBug::kEarlyLockDelay) end = now;
    delay_ends_.push(DelayTimer{end, delay.lock, delay.delay_id});
  }
  logger_->info("{} took office at term {}: {} sessions, {} waits, {} lock delays armed", self_id_,
                term, session_seen_.size(), wait_deadlines_.size(), delay_ends_.size());
}

void LeaderTimers::clear() {
  session_seen_.clear();
  expiring_sessions_.clear();
  session_deadlines_ = {};
  wait_deadlines_ = {};
  delay_ends_ = {};
}

void LeaderTimers::keepalive_confirmed(uint64_t session, SteadyTime now) {
  auto seen = session_seen_.find(session);
  if (seen == session_seen_.end() || expiring_sessions_.contains(session)) return;
  seen->second.last = now;
}

std::optional<uint64_t> LeaderTimers::keepalive_ttl_ms(uint64_t session) const {
  auto seen = session_seen_.find(session);
  if (seen == session_seen_.end() || expiring_sessions_.contains(session)) return std::nullopt;
  return seen->second.ttl_ms;
}

void LeaderTimers::applied(SteadyTime now, const lockpb::Command& command,
                           const sm::ApplyResult& result) {
  if (command.has_open_session() && result.status.ok()) {
    track_session(result.session_id, result.ttl_ms, now);
  }
  if (command.has_close_session() && result.status.ok()) {
    session_seen_.erase(command.close_session().key().session_id());
    expiring_sessions_.erase(command.close_session().key().session_id());
  }
  if (command.has_expire_session()) {
    session_seen_.erase(command.expire_session().session_id());
    expiring_sessions_.erase(command.expire_session().session_id());
  }
  // A wait and a lock-delay run from when this node applied the entry
  // that started them, on its own steady clock.
  if (result.queued) {
    wait_deadlines_.push(WaitTimer{after_ms(now, result.wait_ms), command.acquire().key().session_id(),
                                   command.acquire().lock(), result.wait_id});
  }
  for (const auto& delay : result.lock_delays_started) {
    delay_ends_.push(DelayTimer{after_ms(now, delay.delay_ms), delay.lock, delay.delay_id});
  }
}

void LeaderTimers::expire_due_sessions(SteadyTime now, bool hold_sessions, const Propose& propose) {
  while (!session_deadlines_.empty() && session_deadlines_.top().first <= now) {
    uint64_t session = session_deadlines_.top().second;
    session_deadlines_.pop();
    auto seen = session_seen_.find(session);
    if (seen == session_seen_.end()) continue;  // ended
    auto deadline = seen->second.last + ms(seen->second.ttl_ms);
    if (deadline > now || hold_sessions) {
      session_deadlines_.emplace(std::max(deadline, now + ms(tick_ms_)), session);
      continue;
    }
    if (!expiring_sessions_.contains(session)) {
      logger_->info("{} session {} expired after {} ms without keepalive", self_id_, session,
                    seen->second.ttl_ms);
    }
    expiring_sessions_.insert(session);
    lockpb::Command command;
    command.mutable_expire_session()->set_session_id(session);
    propose(command);
    // Re-armed in case the proposal is lost; applying it erases the session.
    session_deadlines_.emplace(now + ms(election_ms_), session);
  }
}

void LeaderTimers::run(SteadyTime now, bool hold_sessions, const Propose& propose) {
  expire_due_sessions(now, hold_sessions, propose);
  // Proposals refused for now (a leadership transfer under way) are tried
  // again a tick later; a stale one is ignored by the state machine.
  std::vector<WaitTimer> retry_waits;
  while (!wait_deadlines_.empty() && wait_deadlines_.top().deadline <= now) {
    WaitTimer wait = wait_deadlines_.top();
    wait_deadlines_.pop();
    lockpb::Command command;
    auto* cancel = command.mutable_cancel_wait();
    cancel->mutable_key()->set_session_id(wait.session_id);
    cancel->set_lock(wait.lock);
    cancel->set_wait_id(wait.wait_id);
    if (!propose(command)) {
      wait.deadline = now + ms(tick_ms_);
      retry_waits.push_back(std::move(wait));
    }
  }
  for (auto& wait : retry_waits) wait_deadlines_.push(std::move(wait));
  std::vector<DelayTimer> retry_delays;
  while (!delay_ends_.empty() && delay_ends_.top().end <= now) {
    DelayTimer delay = delay_ends_.top();
    delay_ends_.pop();
    lockpb::Command command;
    command.mutable_end_lock_delay()->set_lock(delay.lock);
    command.mutable_end_lock_delay()->set_delay_id(delay.delay_id);
    if (!propose(command)) {
      delay.end = now + ms(tick_ms_);
      retry_delays.push_back(std::move(delay));
    }
  }
  for (auto& delay : retry_delays) delay_ends_.push(std::move(delay));
}

}  // namespace fencelock::server
