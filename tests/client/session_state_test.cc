// SessionState: safe-until, jeopardy, keepalive answers, sequence numbers,
// all in simulated time (time points built from milliseconds, no clock).

#include "client/session_state.h"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace fencelock::client {
namespace {

using namespace std::chrono_literals;

// The time point `ms` simulated milliseconds after the epoch of the run.
Clock::time_point at(int64_t ms) { return Clock::time_point(std::chrono::milliseconds(ms)); }

// TTL 10 s, drift 5%, 4 keepalives per TTL, opened by a request sent at 1000.
SessionState opened_at_1000() { return SessionState(7, 10000ms, at(1000), 0.05, 4); }

TEST_CASE("safe-until is the open's send time plus the TTL shortened by the drift bound",
          "[client][session]") {
  CHECK(opened_at_1000().safe_until() == at(1000 + 9500));
  CHECK(SessionState(7, 10000ms, at(1000), 0.0, 4).safe_until() == at(11000));
  CHECK(SessionState(7, 1000ms, at(0), 0.2, 4).safe_until() == at(800));
}

TEST_CASE("an acknowledged keepalive moves safe-until to its send time plus the shortened TTL",
          "[client][session]") {
  SessionState state = opened_at_1000();
  state.keepalive_sent(at(3000));
  CHECK(state.keepalive_answered(at(3000), lockpb::OK, at(3040)) == KeepAliveVerdict::kExtended);
  // From the send time, not the answer's arrival: the cluster may have
  // restarted the TTL as early as the request left.
  CHECK(state.safe_until() == at(3000 + 9500));
  CHECK_FALSE(state.lost(at(12499)));
}

TEST_CASE("safe-until never extends from an ack of an older keepalive", "[client][session]") {
  SessionState state = opened_at_1000();
  // Two keepalives in flight; the newer one is answered first.
  state.keepalive_sent(at(2000));
  state.keepalive_sent(at(4500));
  CHECK(state.keepalive_answered(at(4500), lockpb::OK, at(4600)) == KeepAliveVerdict::kExtended);
  CHECK(state.safe_until() == at(14000));
  CHECK(state.keepalive_answered(at(2000), lockpb::OK, at(4700)) == KeepAliveVerdict::kStale);
  CHECK(state.safe_until() == at(14000));
  // The same keepalive acknowledged twice (a retried request) is stale too.
  CHECK(state.keepalive_answered(at(4500), lockpb::OK, at(4800)) == KeepAliveVerdict::kStale);
  CHECK(state.safe_until() == at(14000));
  // An ack of a keepalive older than the OpenSession's own send time.
  SessionState fresh = opened_at_1000();
  CHECK(fresh.keepalive_answered(at(900), lockpb::OK, at(1100)) == KeepAliveVerdict::kStale);
  CHECK(fresh.safe_until() == at(10500));
}

TEST_CASE("the session is in jeopardy exactly at safe-until", "[client][session]") {
  SessionState state = opened_at_1000();
  Clock::time_point safe = state.safe_until();
  CHECK_FALSE(state.lost(safe - 1ns));
  CHECK_FALSE(state.check_jeopardy(safe - 1ns));
  CHECK(state.end_reason() == SessionEnd::kNone);
  CHECK(state.lost(safe));
  CHECK(state.check_jeopardy(safe));
  CHECK(state.end_reason() == SessionEnd::kJeopardy);
  CHECK(std::string(session_end_name(state.end_reason())) ==
        "no keepalive acknowledged before safe-until");
  // Only the first check ends it (the caller runs the callbacks once).
  CHECK_FALSE(state.check_jeopardy(safe + 1s));
  CHECK_FALSE(state.keepalive_wanted());
}

TEST_CASE("a keepalive acknowledged at or after safe-until ends the session for good",
          "[client][session]") {
  SessionState state = opened_at_1000();
  Clock::time_point safe = state.safe_until();
  state.keepalive_sent(at(10000));
  // Lost at safe-until even though no one has called check_jeopardy yet.
  CHECK(state.keepalive_answered(at(10000), lockpb::OK, safe) == KeepAliveVerdict::kEnded);
  CHECK(state.end_reason() == SessionEnd::kLateAck);
  CHECK(state.safe_until() == safe);
  CHECK(state.lost(safe - 1ms));  // ended: lost whatever the time
  CHECK(state.keepalive_answered(at(10100), lockpb::OK, safe + 1ms) == KeepAliveVerdict::kAlreadyEnded);
  CHECK(state.safe_until() == safe);
}

TEST_CASE("a SESSION_EXPIRED answer ends the session; other errors change nothing",
          "[client][session]") {
  SessionState state = opened_at_1000();
  for (auto code : {lockpb::TIMEOUT, lockpb::UNAVAILABLE, lockpb::NOT_LEADER, lockpb::INTERNAL}) {
    CHECK(state.keepalive_answered(at(2000), code, at(2100)) == KeepAliveVerdict::kIgnored);
  }
  CHECK(state.safe_until() == at(10500));
  CHECK_FALSE(state.lost(at(2100)));
  CHECK(state.keepalive_answered(at(2500), lockpb::SESSION_EXPIRED, at(2600)) == KeepAliveVerdict::kEnded);
  CHECK(state.end_reason() == SessionEnd::kExpired);
  CHECK(state.lost(at(2600)));  // long before safe-until
  CHECK_FALSE(state.keepalive_wanted());
  // A later acknowledgement cannot bring it back.
  CHECK(state.keepalive_answered(at(2550), lockpb::OK, at(2700)) == KeepAliveVerdict::kAlreadyEnded);
  CHECK(state.keepalive_answered(at(2550), lockpb::SESSION_EXPIRED, at(2700)) ==
        KeepAliveVerdict::kAlreadyEnded);
  CHECK(state.end_reason() == SessionEnd::kExpired);
}

TEST_CASE("sequence numbers start at 1 and increase; keys name the session", "[client][session]") {
  SessionState state = opened_at_1000();
  CHECK(state.next_sequence() == 1);
  CHECK(state.next_sequence() == 2);
  lockpb::RequestKey key = state.next_key();
  CHECK(key.session_id() == 7);
  CHECK(key.sequence() == 3);
  CHECK(state.next_key().sequence() == 4);
}

TEST_CASE("keepalives are due at once, then every TTL / keepalives_per_ttl, at least 50 ms apart",
          "[client][session]") {
  SessionState state = opened_at_1000();
  CHECK(state.keepalive_interval() == 2500ms);
  CHECK(state.next_keepalive_at() == at(1000));
  CHECK(state.keepalive_wanted());
  // A fixed schedule: the next is due an interval after this one went out,
  // answered or not.
  CHECK(state.keepalive_sent(at(1200)) == at(3700));
  CHECK(state.next_keepalive_at() == at(3700));
  CHECK(state.keepalive_sent(at(3700)) == at(6200));
  CHECK(SessionState(7, 100ms, at(0), 0.05, 4).keepalive_interval() == 50ms);
  CHECK(SessionState(7, 600ms, at(0), 0.05, 3).keepalive_interval() == 200ms);
}

TEST_CASE("closing stops keepalives and jeopardy checks; the close then ends the session",
          "[client][session]") {
  SessionState state = opened_at_1000();
  CHECK(state.begin_close());
  CHECK_FALSE(state.begin_close());
  CHECK(state.closing());
  CHECK_FALSE(state.keepalive_wanted());
  CHECK_FALSE(state.check_jeopardy(at(20000)));
  CHECK(state.lost(at(20000)));  // safe-until still holds for lost()
  CHECK(state.end(SessionEnd::kClosed));
  CHECK_FALSE(state.end(SessionEnd::kExpired));
  CHECK(state.end_reason() == SessionEnd::kClosed);
}

// The loop a simulated client runs: keepalives on schedule, answered after a
// fixed latency while the cluster is reachable. The session stays safe while
// answers arrive, and is lost exactly at the last acknowledged send time plus
// TTL * (1 - drift) once they stop.
TEST_CASE("a keepalive loop in simulated time stays safe while answered and is lost on time",
          "[client][session]") {
  const int64_t latency_ms = 30;
  const int64_t cut_ms = 5000;  // no answers to keepalives sent from here on
  // OpenSession sent at 0, answered at 20: the first keepalive goes out then.
  SessionState state(1, 1000ms, at(0), 0.05, 4);
  std::vector<Clock::time_point> in_flight;
  Clock::time_point last_acked_send = at(0);
  Clock::time_point lost_at{};
  for (int64_t ms = 20; ms <= 10000; ++ms) {
    Clock::time_point now = at(ms);
    for (auto it = in_flight.begin(); it != in_flight.end();) {
      if (*it + std::chrono::milliseconds(latency_ms) == now) {
        CHECK(state.keepalive_answered(*it, lockpb::OK, now) == KeepAliveVerdict::kExtended);
        last_acked_send = *it;
        it = in_flight.erase(it);
      } else {
        ++it;
      }
    }
    if (state.keepalive_wanted() && now >= state.next_keepalive_at()) {
      state.keepalive_sent(now);
      if (ms < cut_ms) in_flight.push_back(now);
    }
    if (state.check_jeopardy(now)) lost_at = now;
    if (ms < cut_ms) CHECK_FALSE(state.lost(now));
  }
  CHECK(state.end_reason() == SessionEnd::kJeopardy);
  CHECK(last_acked_send == at(4770));  // 20 + 19 * 250
  CHECK(lost_at == last_acked_send + 950ms);
}

}  // namespace
}  // namespace fencelock::client
