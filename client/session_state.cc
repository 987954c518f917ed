#include "client/session_state.h"

#include <algorithm>
#include <utility>

#include "common/check.h"

namespace fencelock::client {

const char* session_end_name(SessionEnd end) {
  switch (end) {
    case SessionEnd::kNone:
      return "not ended";
    case SessionEnd::kJeopardy:
      return "no keepalive acknowledged before safe-until";
    case SessionEnd::kExpired:
      return "the cluster expired the session";
    case SessionEnd::kLateAck:
      return "keepalive acknowledged after safe-until";
    case SessionEnd::kClosed:
      return "closed";
  }
  return "unknown";
}

SessionState::SessionState(uint64_t session_id, std::chrono::milliseconds ttl,
                           Clock::time_point open_sent, double clock_drift, int keepalives_per_ttl)
    : session_id_(session_id), ttl_(ttl), clock_drift_(clock_drift), next_keepalive_at_(open_sent) {
  FL_CHECK(keepalives_per_ttl >= 1, "keepalives_per_ttl is {}, must be at least 1", keepalives_per_ttl);
  keepalive_interval_ = std::max(std::chrono::milliseconds(50), ttl_ / keepalives_per_ttl);
  safe_until_ = safe_until_after(open_sent);
}

Clock::time_point SessionState::safe_until_after(Clock::time_point sent) const {
  return sent + std::chrono::duration_cast<Clock::duration>(ttl_ * (1.0 - clock_drift_));
}

bool SessionState::check_jeopardy(Clock::time_point now) {
  if (ended() || closing_ || now < safe_until_) return false;
  return end(SessionEnd::kJeopardy);
}

bool SessionState::end(SessionEnd why) {
  FL_CHECK(why != SessionEnd::kNone, "a session cannot end for no reason");
  if (ended()) return false;
  end_ = why;
  return true;
}

lockpb::RequestKey SessionState::next_key() {
  lockpb::RequestKey key;
  key.set_session_id(session_id_);
  key.set_sequence(next_sequence());
  return key;
}

bool SessionState::begin_close() { return !std::exchange(closing_, true); }

Clock::time_point SessionState::keepalive_sent(Clock::time_point now) {
  next_keepalive_at_ = now + keepalive_interval_;
  return next_keepalive_at_;
}

KeepAliveVerdict SessionState::keepalive_answered(Clock::time_point sent, lockpb::ErrorCode code,
                                                  Clock::time_point now) {
  if (ended()) return KeepAliveVerdict::kAlreadyEnded;
  if (code == lockpb::SESSION_EXPIRED) {
    end(SessionEnd::kExpired);
    return KeepAliveVerdict::kEnded;
  }
  if (code != lockpb::OK) return KeepAliveVerdict::kIgnored;
  if (now >= safe_until_) {
    // The locks may have been granted to someone else between safe-until
    // and this answer: they stay lost even though the session lives on.
    end(SessionEnd::kLateAck);
    return KeepAliveVerdict::kEnded;
  }
  Clock::time_point safe = safe_until_after(sent);
  if (safe <= safe_until_) return KeepAliveVerdict::kStale;
  safe_until_ = safe;
  return KeepAliveVerdict::kExtended;
}

}  // namespace fencelock::client
