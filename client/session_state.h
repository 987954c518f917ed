#pragma once
// fencelock::client::SessionState: what a client knows about one of its
// sessions, as a pure value.
//
// It holds the rules of a session and nothing else: no thread, no timer, no
// socket, no clock. Every time it needs is passed in by the caller, a
// std::chrono::steady_clock::time_point read from the caller's monotonic
// clock (Session reads steady_clock::now(); the simulator builds one from
// its virtual milliseconds). So the threaded library and the simulator run
// the same rules:
//
// - Safe-until. The send time of the last acknowledged keepalive (or of
//   the OpenSession) plus the TTL shortened by the clock-drift bound:
//
//       safe_until = max(safe_until, t_send + TTL * (1 - clock_drift))
//
//   The cluster cannot end the session, and so cannot grant its locks to
//   anyone else, before then: only the leader expires a session, after a
//   whole TTL on its own clock without a keepalive; a keepalive is
//   acknowledged only after a ReadIndex round that the leader completed
//   after the keepalive arrived (so no other leader existed then, and the
//   TTL restarted after t_send); a later leader gives every session a full
//   TTL from taking office, also after t_send; and with clock rates within
//   `clock_drift`, a TTL on any leader's clock is at least
//   TTL * (1 - clock_drift) on ours. docs/client.md gives the argument in
//   full. Safe-until never moves backwards: an acknowledgement of a
//   keepalive older than one already acknowledged changes nothing.
// - Jeopardy. At safe-until (now >= safe_until) the session is lost, and
//   stays lost: the cluster may now hand its locks to someone else, so a
//   holder must stop and acquire again. It is also lost, for good, when
//   the cluster answers a keepalive SESSION_EXPIRED, when a keepalive is
//   acknowledged only after safe-until (the locks may have passed to
//   someone else in between), and when its owner closes it.
// - Keepalives go out every max(50 ms, TTL / keepalives_per_ttl), on a
//   fixed schedule that does not wait for answers, until the session is
//   lost or closing. The first is due as soon as the session is open.
// - Sequence numbers. Every mutating request of the session carries the
//   next one (1, 2, 3, ...); a retry resends its request unchanged, with
//   the number it was given (client/call_policy.h).
//
// Thread-safety: not thread-safe; a plain value. Session keeps one behind
// its mutex; the simulator keeps one per simulated session on its thread.

#include <chrono>
#include <cstdint>

#include "proto/command.pb.h"

namespace fencelock::client {

using Clock = std::chrono::steady_clock;

// Why a session ended, as the client sees it.
enum class SessionEnd {
  kNone,      // not ended (though lost(now) is true once safe-until passes)
  kJeopardy,  // safe-until passed with no newer acknowledgement
  kExpired,   // the cluster answered SESSION_EXPIRED
  kLateAck,   // a keepalive was acknowledged only after safe-until
  kClosed,    // its owner closed it
};

// Returns a short phrase for `end`, e.g. "the cluster expired the session".
const char* session_end_name(SessionEnd end);

// What one keepalive answer did to the session.
enum class KeepAliveVerdict {
  kExtended,      // OK in time: safe-until moved later
  kStale,         // OK in time, but for a keepalive no newer than one already
                  // acknowledged: safe-until unchanged
  kIgnored,       // another error (TIMEOUT, UNAVAILABLE, ...): nothing changes,
                  // the next keepalive tries again
  kEnded,         // this answer ended the session (SESSION_EXPIRED, or OK
                  // after safe-until): run the lost callbacks
  kAlreadyEnded,  // the session had ended before: nothing changes
};

class SessionState {
 public:
  // The session `session_id` that the cluster opened with TTL `ttl` (the
  // TTL in its answer) for an OpenSession request sent at `open_sent`.
  // `clock_drift` bounds how much faster the cluster's clocks may run than
  // ours (0.05: safe-until is 5% of the TTL short of t_send + TTL);
  // keepalives go out every max(50 ms, ttl / keepalives_per_ttl).
  // Requires keepalives_per_ttl >= 1 (FL_CHECK).
  SessionState(uint64_t session_id, std::chrono::milliseconds ttl, Clock::time_point open_sent,
               double clock_drift, int keepalives_per_ttl);

  uint64_t session_id() const { return session_id_; }
  std::chrono::milliseconds ttl() const { return ttl_; }

  // Until when the session is certainly alive on the cluster. Never moves
  // backwards.
  Clock::time_point safe_until() const { return safe_until_; }

  // Whether the session must be treated as gone at `now`: it ended, or
  // `now` has reached safe-until (jeopardy: exactly at safe-until it is
  // lost). True forever after, for any later `now`.
  bool lost(Clock::time_point now) const { return ended() || now >= safe_until_; }
  // Whether the session has been ended (end_reason() != kNone). Unlike
  // lost(), this does not look at the time: a caller ends the session at
  // safe-until with check_jeopardy().
  bool ended() const { return end_ != SessionEnd::kNone; }
  SessionEnd end_reason() const { return end_; }

  // If `now` has reached safe-until and the session has not ended, ends it
  // (kJeopardy) and returns true: the caller runs the lost callbacks.
  // Otherwise returns false; while the session is neither ended nor
  // closing, the caller checks again at safe_until().
  bool check_jeopardy(Clock::time_point now);

  // Ends the session for `why` (not kNone) unless it has ended already.
  // Returns whether this call ended it.
  bool end(SessionEnd why);

  // The next sequence number for a mutating request of this session: 1 on
  // the first call, then one more on each call.
  uint64_t next_sequence() { return ++last_sequence_; }
  // (session_id, next_sequence()) as the key of a mutating request.
  lockpb::RequestKey next_key();

  // Marks the session closing: no more keepalives or jeopardy checks are
  // wanted (the caller sends CloseSession, then calls end(kClosed)).
  // Returns false if it was already closing.
  bool begin_close();
  bool closing() const { return closing_; }

  // Between two keepalives: max(50 ms, ttl / keepalives_per_ttl).
  std::chrono::milliseconds keepalive_interval() const { return keepalive_interval_; }
  // Whether keepalives should still go out: neither ended nor closing.
  bool keepalive_wanted() const { return !ended() && !closing_; }
  // When the next keepalive is due: `open_sent` before the first (due at
  // once), else the last one's send time plus keepalive_interval().
  Clock::time_point next_keepalive_at() const { return next_keepalive_at_; }
  // A keepalive goes out at `now`. Returns when the next one is due,
  // now + keepalive_interval(): the schedule is fixed and does not wait for
  // this one's answer. The caller keeps `now` to pass to keepalive_answered().
  Clock::time_point keepalive_sent(Clock::time_point now);
  // The answer `code` to the keepalive sent at `sent`, received at `now`.
  // OK before safe-until extends safe-until to sent + TTL * (1 - drift) if
  // that is later; OK at or after safe-until ends the session (kLateAck);
  // SESSION_EXPIRED ends it (kExpired); any other code changes nothing.
  // Once ended, nothing changes (kAlreadyEnded): a lost lock stays lost.
  KeepAliveVerdict keepalive_answered(Clock::time_point sent, lockpb::ErrorCode code,
                                      Clock::time_point now);

 private:
  // sent + TTL * (1 - drift): the safe-until that an acknowledgement of a
  // request sent at `sent` earns.
  Clock::time_point safe_until_after(Clock::time_point sent) const;

  uint64_t session_id_;
  std::chrono::milliseconds ttl_;
  double clock_drift_;
  std::chrono::milliseconds keepalive_interval_;
  Clock::time_point safe_until_;
  Clock::time_point next_keepalive_at_;
  uint64_t last_sequence_ = 0;
  SessionEnd end_ = SessionEnd::kNone;
  bool closing_ = false;
};

}  // namespace fencelock::client
