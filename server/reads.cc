#include "server/reads.h"

#include "server/wire.h"

namespace fencelock::server {

void Reads::queue(const Caller& caller, const std::string& principal, clientpb::Request request) {
  unsent_.push_back(Request{caller, principal, std::move(request)});
}

void Reads::flush(raft::RawNode& raft, bool leader, SteadyTime now) {
  if (unsent_.empty()) return;
  std::string context = std::to_string(self_id_) + "/" + std::to_string(next_context_++);
  if (!leader || !raft.read_index(context).ok()) {
    for (auto& queued : std::exchange(unsent_, {})) responder_.not_leader(queued.caller);
    return;
  }
  Round round;
  round.requests = std::exchange(unsent_, {});
  round.deadline = now + timeout_;
  in_flight_.emplace(std::move(context), std::move(round));
}

void Reads::confirmed(const raft::ReadState& read_state, SteadyTime now) {
  auto it = in_flight_.find(read_state.context);
  if (it == in_flight_.end()) return;
  Round round = std::move(it->second);
  in_flight_.erase(it);
  round.index = read_state.index;
  // Keepalives are confirmed now: the leader was still the leader after they arrived.
  // Another principal's keepalive must not keep a session alive. A session
  // the leader's timers track is in its state, with its principal.
  for (auto& [caller, principal, request] : round.requests) {
    if (request.has_keep_alive() &&
        state_.authorize(request.keep_alive().session_id(), principal).ok()) {
      timers_.keepalive_confirmed(request.keep_alive().session_id(), now);
    }
  }
  awaiting_apply_.emplace(round.index, std::move(round));
}

void Reads::serve_applied(uint64_t applied_index, bool leader) {
  while (!awaiting_apply_.empty() && awaiting_apply_.begin()->first <= applied_index) {
    Round round = std::move(awaiting_apply_.begin()->second);
    awaiting_apply_.erase(awaiting_apply_.begin());
    for (auto& [caller, principal, request] : round.requests) {
      serve(caller, principal, request, leader);
    }
  }
}

void Reads::expire(SteadyTime now) {
  for (auto it = in_flight_.begin(); it != in_flight_.end();) {
    if (it->second.deadline > now) {
      ++it;
      continue;
    }
    for (auto& queued : it->second.requests) responder_.not_leader(queued.caller);
    it = in_flight_.erase(it);
  }
}

void Reads::fail_unconfirmed() {
  for (auto& [context, round] : std::exchange(in_flight_, {})) {
    for (auto& queued : round.requests) responder_.not_leader(queued.caller);
  }
  for (auto& queued : std::exchange(unsent_, {})) responder_.not_leader(queued.caller);
}

void Reads::serve(const Caller& caller, const std::string& principal,
                  const clientpb::Request& request, bool leader) {
  clientpb::Response response;
  switch (request.kind_case()) {
    case clientpb::Request::kKeepAlive: {
      // Only the leader vouches for a session; one that lost office after
      // confirming this keepalive says so instead of guessing.
      if (!leader) {
        responder_.not_leader(caller);
        return;
      }
      uint64_t session = request.keep_alive().session_id();
      if (sm::Status owner = state_.authorize(session, principal);
          owner.code() == sm::Code::kPermissionDenied) {
        responder_.error(caller, lockpb::PERMISSION_DENIED, owner.message());
        return;
      }
      auto ttl_ms = timers_.keepalive_ttl_ms(session);
      if (!ttl_ms) {
        responder_.error(caller, lockpb::SESSION_EXPIRED,
                         "session " + std::to_string(session) + " does not exist or has expired");
        return;
      }
      response.mutable_keep_alive_ack()->set_ttl_ms(*ttl_ms);
      break;
    }
    case clientpb::Request::kDescribe: {
      auto info = state_.describe(request.describe().lock());
      if (!info.ok()) {
        responder_.error(caller, to_wire(info.code()), info.status().message());
        return;
      }
      *response.mutable_lock_info() = to_wire(info.value());
      break;
    }
    case clientpb::Request::kListLocks:
      *response.mutable_lock_list() =
          to_wire(state_.list_locks(request.list_locks().prefix(), request.list_locks().start_after(),
                                    request.list_locks().limit(), page_bytes_));
      break;
    case clientpb::Request::kCheckSequencer:
      *response.mutable_sequencer_status() =
          to_wire(state_.check_sequencer(request.check_sequencer().sequencer()));
      break;
    case clientpb::Request::kListSessions:
      *response.mutable_session_list() = to_wire(state_.list_sessions(
          request.list_sessions().start_after(), request.list_sessions().limit(), page_bytes_));
      break;
    default:
      if (fallback_ && fallback_(caller, request)) return;
      responder_.error(caller, lockpb::UNKNOWN_REQUEST, "unknown request");
      return;
  }
  responder_.respond(caller, std::move(response));
}

}  // namespace fencelock::server
