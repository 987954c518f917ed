#include "client/call_policy.h"

#include <algorithm>
#include <utility>

#include "common/check.h"

namespace fencelock::client {

PendingCall::PendingCall(clientpb::Request request, Clock::time_point deadline)
    : request_(std::move(request)), deadline_(deadline) {}

clientpb::Response PendingCall::timeout_response() const {
  clientpb::Response response;
  response.set_id(request_.id());
  response.set_code(lockpb::TIMEOUT);
  response.set_message("no answer from the cluster in time" +
                       (last_error_.empty() ? "" : " (last error: " + last_error_ + ")"));
  return response;
}

CallPolicy::CallPolicy(ClientOptions options) : options_(std::move(options)) {
  FL_CHECK(!options_.endpoints.empty(), "a client needs at least one endpoint");
}

Clock::time_point CallPolicy::deadline(Clock::time_point issued,
                                       std::chrono::milliseconds extra) const {
  return issued + options_.request_timeout + extra;
}

bool CallPolicy::retried(lockpb::ErrorCode code) {
  return code == lockpb::NOT_LEADER || code == lockpb::UNAVAILABLE;
}

CallDecision CallPolicy::on_response(PendingCall& call, const clientpb::Response& response,
                                     const std::string& connected_to) {
  switch (response.code()) {
    case lockpb::NOT_LEADER: {
      call.note_retry(response.message());
      std::string endpoint = endpoint_for_hint(response.leader_hint());
      if (!endpoint.empty() && endpoint == connected_to) {
        // The node names itself: a leader handing its office over, or an
        // answer from before its election. Ask it again shortly.
        return CallDecision{CallStep::kResend, kNotLeaderDelay, ""};
      }
      hinted_endpoint_ = endpoint;
      // Without a usable hint an election may be under way: pause before
      // trying the next endpoint.
      return CallDecision{CallStep::kReconnect,
                          endpoint.empty() ? kNotLeaderDelay : std::chrono::milliseconds(0),
                          std::move(endpoint)};
    }
    case lockpb::UNAVAILABLE:
      call.note_retry(response.message());
      return CallDecision{CallStep::kResend, kUnavailableDelay, ""};
    default:
      return CallDecision{};
  }
}

CallDecision CallPolicy::on_connection_lost(PendingCall& call, const std::string& reason) const {
  call.note_retry("connection lost: " + reason);
  return CallDecision{CallStep::kReconnect, std::chrono::milliseconds(0), ""};
}

std::string CallPolicy::next_endpoint() {
  if (!hinted_endpoint_.empty()) return std::exchange(hinted_endpoint_, "");
  const auto& endpoints = options_.endpoints;
  return endpoints[endpoint_index_++ % endpoints.size()];
}

std::chrono::milliseconds CallPolicy::connect_failed() {
  ++connect_failures_;
  if (connect_failures_ % static_cast<int>(options_.endpoints.size()) != 0) {
    return std::chrono::milliseconds(0);
  }
  return std::chrono::milliseconds(std::min(50 * connect_failures_, 1000));
}

std::string CallPolicy::endpoint_for_hint(const std::string& hint) const {
  if (hint.empty()) return hint;
  if (auto it = options_.hint_endpoints.find(hint); it != options_.hint_endpoints.end()) {
    return it->second;
  }
  if (options_.follow_hints_outside_endpoints) return hint;
  for (const auto& endpoint : options_.endpoints) {
    if (endpoint == hint) return hint;
  }
  return "";
}

}  // namespace fencelock::client
