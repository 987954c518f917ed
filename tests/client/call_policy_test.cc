// CallPolicy and PendingCall: which answers are retried and where, the
// deadline, and that a retry is the same request; all in simulated time.

#include "client/call_policy.h"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <vector>
#include <string>

#include "client/session_state.h"

namespace fencelock::client {
namespace {

using namespace std::chrono_literals;

Clock::time_point at(int64_t ms) { return Clock::time_point(std::chrono::milliseconds(ms)); }

ClientOptions three_endpoints() {
  ClientOptions options;
  options.endpoints = {"a:1", "b:1", "c:1"};
  return options;
}

// An acquire of "jobs/nightly" by session 7 with sequence `sequence`.
clientpb::Request acquire_request(uint64_t id, uint64_t sequence) {
  clientpb::Request request;
  request.set_id(id);
  request.mutable_acquire()->mutable_key()->set_session_id(7);
  request.mutable_acquire()->mutable_key()->set_sequence(sequence);
  request.mutable_acquire()->set_lock("jobs/nightly");
  return request;
}

clientpb::Response answer(uint64_t id, lockpb::ErrorCode code, const std::string& hint = "",
                          const std::string& message = "") {
  clientpb::Response response;
  response.set_id(id);
  response.set_code(code);
  response.set_leader_hint(hint);
  response.set_message(message);
  return response;
}

CallDecision reconnect(std::chrono::milliseconds delay, std::string endpoint) {
  return CallDecision{CallStep::kReconnect, delay, std::move(endpoint)};
}
CallDecision resend(std::chrono::milliseconds delay) {
  return CallDecision{CallStep::kResend, delay, ""};
}

TEST_CASE("NOT_LEADER, UNAVAILABLE and lost connections are retried; every other answer is final",
          "[client][retry]") {
  CallPolicy policy(three_endpoints());
  const auto* codes = lockpb::ErrorCode_descriptor();
  for (int i = 0; i < codes->value_count(); ++i) {
    auto code = static_cast<lockpb::ErrorCode>(codes->value(i)->number());
    INFO(codes->value(i)->name());
    PendingCall call(acquire_request(1, 1), at(10000));
    CallDecision decision = policy.on_response(call, answer(1, code, "", "why"), "a:1");
    bool retried = code == lockpb::NOT_LEADER || code == lockpb::UNAVAILABLE;
    CHECK(CallPolicy::retried(code) == retried);
    CHECK((decision.step != CallStep::kDone) == retried);
    CHECK(call.last_error() == (retried ? "why" : ""));
  }
  PendingCall call(acquire_request(1, 1), at(10000));
  CHECK(policy.on_connection_lost(call, "reset by peer") == reconnect(0ms, ""));
  CHECK(call.last_error() == "connection lost: reset by peer");
}

TEST_CASE("UNAVAILABLE is asked again on the same node after 20 ms", "[client][retry]") {
  CallPolicy policy(three_endpoints());
  PendingCall call(acquire_request(1, 1), at(10000));
  CHECK(policy.on_response(call, answer(1, lockpb::UNAVAILABLE), "b:1") == resend(20ms));
  CHECK(policy.next_endpoint() == "a:1");  // no hint taken: the endpoints in turn
}

TEST_CASE("a retry resends the same request: same id, session and sequence", "[client][retry]") {
  CallPolicy policy(three_endpoints());
  SessionState session(7, 10000ms, at(0), 0.05, 4);
  clientpb::Request first;
  first.set_id(41);
  *first.mutable_acquire()->mutable_key() = session.next_key();
  clientpb::Request second;
  second.set_id(42);
  *second.mutable_release()->mutable_key() = session.next_key();
  CHECK(first.acquire().key().sequence() == 1);
  CHECK(second.release().key().sequence() == 2);

  std::string sent = first.SerializeAsString();
  PendingCall call(first, policy.deadline(at(0)));
  policy.on_response(call, answer(41, lockpb::NOT_LEADER, "b:1"), "a:1");
  policy.on_response(call, answer(41, lockpb::UNAVAILABLE), "b:1");
  policy.on_connection_lost(call, "reset");
  policy.on_response(call, answer(41, lockpb::NOT_LEADER, "c:1"), "b:1");
  CHECK(call.request().SerializeAsString() == sent);
  CHECK(call.id() == 41);
  CHECK(call.request().acquire().key().session_id() == 7);
  CHECK(call.request().acquire().key().sequence() == 1);
  // Retries took no sequence numbers: the session's next request gets 3.
  CHECK(session.next_sequence() == 3);
}

TEST_CASE("a NOT_LEADER hint naming one of the endpoints is followed at once", "[client][retry]") {
  CallPolicy policy(three_endpoints());
  CHECK(policy.next_endpoint() == "a:1");
  PendingCall call(acquire_request(1, 1), at(10000));
  CHECK(policy.on_response(call, answer(1, lockpb::NOT_LEADER, "c:1", "not the leader"), "a:1") ==
        reconnect(0ms, "c:1"));
  CHECK(call.last_error() == "not the leader");
  CHECK(policy.next_endpoint() == "c:1");
  // The hint is used once; then the endpoints in turn, where they left off.
  CHECK(policy.next_endpoint() == "b:1");
  CHECK(policy.next_endpoint() == "c:1");
  CHECK(policy.next_endpoint() == "a:1");
}

TEST_CASE("a hint outside the endpoints is followed only with follow_hints_outside_endpoints",
          "[client][retry]") {
  ClientOptions options = three_endpoints();
  SECTION("true (default): connect to the hinted address") {
    CallPolicy policy(options);
    PendingCall call(acquire_request(1, 1), at(10000));
    CHECK(policy.on_response(call, answer(1, lockpb::NOT_LEADER, "10.0.0.2:7001"), "a:1") ==
          reconnect(0ms, "10.0.0.2:7001"));
    CHECK(policy.next_endpoint() == "10.0.0.2:7001");
  }
  SECTION("false: ignore it, try the next endpoint after 50 ms") {
    options.follow_hints_outside_endpoints = false;
    CallPolicy policy(options);
    CHECK(policy.next_endpoint() == "a:1");
    PendingCall call(acquire_request(1, 1), at(10000));
    CHECK(policy.on_response(call, answer(1, lockpb::NOT_LEADER, "10.0.0.2:7001"), "a:1") ==
          reconnect(50ms, ""));
    CHECK(policy.next_endpoint() == "b:1");
    // A hint that is one of the endpoints is still followed.
    CHECK(policy.on_response(call, answer(1, lockpb::NOT_LEADER, "a:1"), "b:1") ==
          reconnect(0ms, "a:1"));
    CHECK(policy.next_endpoint() == "a:1");
  }
}

TEST_CASE("a hint found in hint_endpoints goes to the mapped endpoint", "[client][retry]") {
  ClientOptions options;
  options.endpoints = {"proxy:9001", "proxy:9002", "proxy:9003"};
  options.hint_endpoints = {{"10.0.0.1:7001", "proxy:9001"},
                            {"10.0.0.2:7001", "proxy:9002"},
                            {"proxy:9003", "proxy:9001"}};
  options.follow_hints_outside_endpoints = false;
  CallPolicy policy(options);
  CHECK(policy.endpoint_for_hint("10.0.0.2:7001") == "proxy:9002");
  CHECK(policy.endpoint_for_hint("10.0.0.9:7001") == "");
  CHECK(policy.endpoint_for_hint("") == "");
  // The mapping is checked first, even for a hint that is an endpoint.
  CHECK(policy.endpoint_for_hint("proxy:9003") == "proxy:9001");
  PendingCall call(acquire_request(1, 1), at(10000));
  CHECK(policy.on_response(call, answer(1, lockpb::NOT_LEADER, "10.0.0.2:7001"), "proxy:9001") ==
        reconnect(0ms, "proxy:9002"));
  CHECK(policy.next_endpoint() == "proxy:9002");
  // The mapping holds with follow_hints_outside_endpoints = true as well.
  options.follow_hints_outside_endpoints = true;
  CHECK(CallPolicy(options).endpoint_for_hint("10.0.0.1:7001") == "proxy:9001");
}

TEST_CASE("a NOT_LEADER without a usable hint tries the next endpoint after 50 ms",
          "[client][retry]") {
  CallPolicy policy(three_endpoints());
  CHECK(policy.next_endpoint() == "a:1");
  PendingCall call(acquire_request(1, 1), at(10000));
  // A hint is pending...
  policy.on_response(call, answer(1, lockpb::NOT_LEADER, "c:1"), "a:1");
  // ...and an answer without one, before the reconnection, drops it.
  CHECK(policy.on_response(call, answer(1, lockpb::NOT_LEADER, ""), "") == reconnect(50ms, ""));
  CHECK(policy.next_endpoint() == "b:1");
}

TEST_CASE("a node that names itself the leader is asked again after 50 ms", "[client][retry]") {
  ClientOptions options = three_endpoints();
  options.hint_endpoints = {{"10.0.0.2:7001", "b:1"}};
  CallPolicy policy(options);
  PendingCall call(acquire_request(1, 1), at(10000));
  CHECK(policy.on_response(call, answer(1, lockpb::NOT_LEADER, "b:1"), "b:1") == resend(50ms));
  // Also when it names itself by its own client address, mapped.
  CHECK(policy.on_response(call, answer(1, lockpb::NOT_LEADER, "10.0.0.2:7001"), "b:1") ==
        resend(50ms));
  CHECK(policy.next_endpoint() == "a:1");  // no hint was taken
  // If the connection it came on is closed by now, connect to it again.
  CHECK(policy.on_response(call, answer(1, lockpb::NOT_LEADER, "b:1"), "") == reconnect(0ms, "b:1"));
  CHECK(policy.next_endpoint() == "b:1");
}

TEST_CASE("failed connections pause after each round through the endpoints, up to 1 s",
          "[client][retry]") {
  CallPolicy policy(three_endpoints());
  std::vector<int64_t> pauses;
  for (int i = 0; i < 21; ++i) pauses.push_back(policy.connect_failed().count());
  CHECK(pauses == std::vector<int64_t>{0, 0, 150, 0, 0, 300, 0, 0, 450, 0, 0, 600, 0, 0, 750,
                                       0, 0, 900, 0, 0, 1000});
  policy.connected();
  CHECK(policy.connect_failed() == 0ms);
  CHECK(policy.connect_failed() == 0ms);
  CHECK(policy.connect_failed() == 150ms);

  ClientOptions one;
  one.endpoints = {"a:1"};
  CallPolicy single(one);
  CHECK(single.connect_failed() == 50ms);
  CHECK(single.connect_failed() == 100ms);
  CHECK(single.next_endpoint() == "a:1");
  CHECK(single.next_endpoint() == "a:1");
}

TEST_CASE("the deadline is request_timeout plus an acquire's wait, and passes exactly then",
          "[client][retry]") {
  ClientOptions options = three_endpoints();
  options.request_timeout = 10000ms;
  CallPolicy policy(options);
  CHECK(policy.deadline(at(1000)) == at(11000));
  PendingCall call(acquire_request(9, 1), policy.deadline(at(1000), 30000ms));
  CHECK(call.deadline() == at(41000));
  CHECK_FALSE(call.expired(at(40999)));
  CHECK(call.expired(at(41000)));

  clientpb::Response quiet = call.timeout_response();
  CHECK(quiet.id() == 9);
  CHECK(quiet.code() == lockpb::TIMEOUT);
  CHECK(quiet.message() == "no answer from the cluster in time");
  policy.on_connection_lost(call, "reset by peer");
  CHECK(call.timeout_response().message() ==
        "no answer from the cluster in time (last error: connection lost: reset by peer)");
}

// How a simulated client drives the policy: one connection at a time, a
// scripted cluster, virtual time. Node a is a follower that names the
// leader b; b answers UNAVAILABLE once (a proposal lost in a leader change),
// then grants. The acquire succeeds 20 ms after it was issued, having been
// sent three times, always as the same request.
TEST_CASE("an acquire follows the hint and retries UNAVAILABLE in simulated time",
          "[client][retry]") {
  CallPolicy policy(three_endpoints());
  std::map<std::string, std::deque<lockpb::ErrorCode>> script = {
      {"a:1", {lockpb::NOT_LEADER}}, {"b:1", {lockpb::UNAVAILABLE, lockpb::OK}}};
  PendingCall call(acquire_request(5, 1), policy.deadline(at(0), 2000ms));
  std::string connected_to = policy.next_endpoint();
  policy.connected();
  int64_t now_ms = 0;
  int sends = 0;
  std::optional<clientpb::Response> final_answer;
  while (!final_answer && !call.expired(at(now_ms))) {
    ++sends;
    CHECK(call.request().acquire().key().sequence() == 1);
    lockpb::ErrorCode code = script[connected_to].front();
    script[connected_to].pop_front();
    clientpb::Response response = answer(call.id(), code, "b:1");
    CallDecision decision = policy.on_response(call, response, connected_to);
    now_ms += decision.delay.count();
    switch (decision.step) {
      case CallStep::kDone:
        final_answer = response;
        break;
      case CallStep::kResend:
        break;
      case CallStep::kReconnect:
        connected_to = policy.next_endpoint();
        policy.connected();
        break;
    }
  }
  REQUIRE(final_answer);
  CHECK(final_answer->code() == lockpb::OK);
  CHECK(sends == 3);
  CHECK(now_ms == 20);
  CHECK(connected_to == "b:1");
}

// No node knows a leader: every answer is NOT_LEADER without a hint. The
// client walks the endpoints 50 ms apart until the deadline, then answers
// TIMEOUT naming the last error.
TEST_CASE("without a leader the call times out at its deadline with the last error",
          "[client][retry]") {
  ClientOptions options = three_endpoints();
  options.request_timeout = 1000ms;
  CallPolicy policy(options);
  PendingCall call(acquire_request(6, 4), policy.deadline(at(0)));
  std::string connected_to = policy.next_endpoint();
  std::map<std::string, int> asked;
  int64_t now_ms = 0;
  while (!call.expired(at(now_ms))) {
    ++asked[connected_to];
    CallDecision decision =
        policy.on_response(call, answer(6, lockpb::NOT_LEADER, "", "no leader known"), connected_to);
    REQUIRE(decision == reconnect(50ms, ""));
    now_ms += decision.delay.count();
    connected_to = policy.next_endpoint();
  }
  CHECK(now_ms == 1000);
  CHECK(asked == std::map<std::string, int>{{"a:1", 7}, {"b:1", 7}, {"c:1", 6}});
  clientpb::Response timeout = call.timeout_response();
  CHECK(timeout.code() == lockpb::TIMEOUT);
  CHECK(timeout.message() == "no answer from the cluster in time (last error: no leader known)");
}

}  // namespace
}  // namespace fencelock::client
