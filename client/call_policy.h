#pragma once
// fencelock::client::CallPolicy and PendingCall: how a request reaches the
// leader, as pure code.
//
// The retry rules of a client and nothing else: no thread, no socket, no
// timer, no clock. Time is passed in as steady_clock time points from the
// caller's monotonic clock (the Client reads steady_clock::now(); the
// simulator builds them from its virtual milliseconds), so the threaded
// library and the simulator retry the same way:
//
// - A request keeps one deadline for all its attempts: request_timeout
//   after it was first issued, plus an acquire's wait. Once the deadline
//   has passed the caller answers it TIMEOUT, naming the last error.
// - NOT_LEADER is retried at the leader: a hint mapped by
//   ClientOptions::hint_endpoints goes to the mapped endpoint; an unmapped
//   hint is followed if follow_hints_outside_endpoints is true or the hint
//   is one of the endpoints; otherwise (or without a hint) the client tries
//   its endpoints in turn, 50 ms later (an election may be under way). A
//   node that names itself (a leader handing its office over, an answer
//   from before its election) is asked again 50 ms later.
// - UNAVAILABLE (the node cannot serve it just now: a proposal lost in a
//   leader change, leadership lost, a state installed from a snapshot) is
//   asked again 20 ms later, on the connection open then.
// - A lost connection resends every unanswered request on the next one, at
//   once; a failed connection attempt moves to the next endpoint, pausing
//   after each round through all endpoints (50 ms per failure so far, at
//   most 1 s). A connection attempt that takes longer than
//   ClientOptions::connect_timeout has failed.
// - Every other answer is final, errors included (SESSION_EXPIRED, TIMEOUT
//   of a wait, STALE_SEQUENCE, ...).
// - A retry resends the request exactly as first issued: same request id,
//   same (session, sequence). That is what makes a retried mutation safe:
//   the cluster answers it with the recorded result (docs/locks.md
//   "Exactly once"). PendingCall holds the request and offers no way to
//   change it.
// - There is no jitter: every delay is a constant, so the rules need no
//   random generator.
//
// Thread-safety: not thread-safe. A Client's I/O thread owns its
// CallPolicy and PendingCalls; the simulator owns one per simulated client.

#include <chrono>
#include <cstdint>
#include <string>

#include "client/client_options.h"
#include "proto/client.pb.h"

namespace fencelock::client {

using Clock = std::chrono::steady_clock;

// One request on its way to the leader: the request as first issued, the
// deadline of all its attempts, and why it was last retried.
class PendingCall {
 public:
  // `request` with its id set; `deadline` from CallPolicy::deadline().
  PendingCall(clientpb::Request request, Clock::time_point deadline);

  // What every attempt sends, unchanged from the first.
  const clientpb::Request& request() const { return request_; }
  uint64_t id() const { return request_.id(); }
  Clock::time_point deadline() const { return deadline_; }
  // Whether the deadline has passed at `now` (exactly at the deadline it
  // has): the caller then answers timeout_response(), whatever is in flight.
  bool expired(Clock::time_point now) const { return now >= deadline_; }

  // Records why the request has to be tried again; the timeout answer names
  // the last reason.
  void note_retry(std::string reason) { last_error_ = std::move(reason); }
  const std::string& last_error() const { return last_error_; }
  // TIMEOUT for this request's id: "no answer from the cluster in time",
  // with the last error if there was one.
  clientpb::Response timeout_response() const;

 private:
  clientpb::Request request_;
  Clock::time_point deadline_;
  std::string last_error_;
};

// What to do with a request after one attempt.
enum class CallStep {
  kDone,       // the answer is final: hand it to the caller
  kResend,     // send the same request again on this connection after
               // `delay` (if by then it has gone out on another, not again)
  kReconnect,  // this node will not do: close the connection (if still
               // open), and after `delay` connect to next_endpoint() and
               // send every unanswered request there
};

struct CallDecision {
  CallStep step = CallStep::kDone;
  std::chrono::milliseconds delay{0};
  // With kReconnect: the endpoint next_endpoint() will return, taken from
  // the leader's hint; empty when it will take the endpoints in turn.
  std::string endpoint;

  friend bool operator==(const CallDecision&, const CallDecision&) = default;
};

class CallPolicy {
 public:
  // How long to wait before asking a node again that answered UNAVAILABLE.
  static constexpr std::chrono::milliseconds kUnavailableDelay{20};
  // How long to wait after a NOT_LEADER that names no usable other node.
  static constexpr std::chrono::milliseconds kNotLeaderDelay{50};

  // Requires at least one endpoint (FL_CHECK); Client::connect checks it.
  explicit CallPolicy(ClientOptions options);

  const ClientOptions& options() const { return options_; }

  // The deadline of a request first issued at `issued`: request_timeout
  // plus `extra` (an acquire's wait).
  Clock::time_point deadline(Clock::time_point issued,
                             std::chrono::milliseconds extra = std::chrono::milliseconds(0)) const;

  // Whether an answer with `code` is retried (NOT_LEADER, UNAVAILABLE)
  // rather than final.
  static bool retried(lockpb::ErrorCode code);

  // `response` answered `call`; it came over the connection to
  // `connected_to`, or "" if that connection is no longer open. A retried
  // answer's message is recorded in `call`; a NOT_LEADER that leads
  // elsewhere sets what next_endpoint() returns.
  CallDecision on_response(PendingCall& call, const clientpb::Response& response,
                           const std::string& connected_to);

  // The connection carrying `call` was lost for `reason`: kReconnect at
  // once; the reason is recorded in `call`.
  CallDecision on_connection_lost(PendingCall& call, const std::string& reason) const;

  // Where to connect next: the endpoint the last NOT_LEADER pointed to
  // (once), else the configured endpoints in turn.
  std::string next_endpoint();
  // A connection attempt failed. Returns how long to pause before the next
  // one: after every round through all endpoints, 50 ms per failure since
  // the last success, at most 1 s; else zero.
  std::chrono::milliseconds connect_failed();
  // A connection attempt succeeded: failures are counted afresh.
  void connected() { connect_failures_ = 0; }

  // The endpoint that reaches the leader whose client address is `hint`:
  // its hint_endpoints mapping; else the hint itself if
  // follow_hints_outside_endpoints or it is one of the endpoints; else ""
  // (no usable hint: try the endpoints in turn). "" for an empty hint.
  std::string endpoint_for_hint(const std::string& hint) const;

 private:
  ClientOptions options_;
  std::string hinted_endpoint_;  // next_endpoint()'s answer once; "" = none
  size_t endpoint_index_ = 0;    // the next configured endpoint to try
  int connect_failures_ = 0;     // since the last successful connection
};

}  // namespace fencelock::client
