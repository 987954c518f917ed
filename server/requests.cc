#include "server/requests.h"

#include "server/wire.h"

namespace fencelock::server {

namespace {
constexpr const char* kLost = "proposal lost in a leader change; retry";
}  // namespace

bool Requests::propose(raft::RawNode& raft, const Caller& caller, const lockpb::Command& command) {
  std::string data;
  command.SerializeToString(&data);
  auto proposed = raft.propose(std::move(data));
  if (!proposed.ok()) {
    responder_.not_leader(caller);
    return false;
  }
  auto [it, inserted] = proposals_.try_emplace(proposed.value().index,
                                               PendingProposal{caller, proposed.value().term});
  if (!inserted) {
    // An older proposal at this index was truncated away by another
    // leader: it will never apply.
    responder_.error(it->second.caller, lockpb::UNAVAILABLE, kLost);
    it->second = PendingProposal{caller, proposed.value().term};
  }
  return true;
}

std::optional<Caller> Requests::take_caller(const raftpb::Entry& entry) {
  // Proposals at lower indices that never appeared were overwritten.
  while (!proposals_.empty() && proposals_.begin()->first < entry.index()) {
    responder_.error(proposals_.begin()->second.caller, lockpb::UNAVAILABLE, kLost);
    proposals_.erase(proposals_.begin());
  }
  auto it = proposals_.find(entry.index());
  if (it == proposals_.end()) return std::nullopt;
  PendingProposal proposal = it->second;
  proposals_.erase(it);
  if (proposal.term != entry.term() || entry.type() != raftpb::ENTRY_NORMAL) {
    responder_.error(proposal.caller, lockpb::UNAVAILABLE, kLost);
    return std::nullopt;
  }
  return proposal.caller;
}

void Requests::answer_applied(const Caller& caller, lockpb::Command::KindCase kind,
                              const sm::ApplyResult& result) {
  clientpb::Response response;
  response.set_code(to_wire(result.status.code()));
  response.set_message(result.status.message());
  if (!result.status.ok()) {
    responder_.respond(caller, std::move(response));
    return;
  }
  switch (kind) {
    case lockpb::Command::kOpenSession:
      response.mutable_session_opened()->set_session_id(result.session_id);
      response.mutable_session_opened()->set_ttl_ms(result.ttl_ms);
      break;
    case lockpb::Command::kAcquire:
      if (result.granted) {
        *response.mutable_granted() = *result.granted;
      } else if (result.queued) {
        // Answered later, by a grant or an ended wait.
        waiting_acquires_.emplace(result.wait_id, caller);
        return;
      }
      break;
    default:
      break;
  }
  responder_.respond(caller, std::move(response));
}

std::vector<Caller> Requests::take_waiting(uint64_t wait_id) {
  // Taken out before answering: an answer can close a connection, whose
  // close handler edits waiting_acquires_.
  std::vector<Caller> callers;
  auto [begin, end] = waiting_acquires_.equal_range(wait_id);
  for (auto it = begin; it != end; ++it) callers.push_back(it->second);
  waiting_acquires_.erase(begin, end);
  return callers;
}

void Requests::answer_waits(const sm::ApplyResult& result) {
  for (const auto& grant : result.grants) {
    for (const Caller& caller : take_waiting(grant.wait_id)) {
      clientpb::Response response;
      *response.mutable_granted() = grant.sequencer;
      responder_.respond(caller, std::move(response));
    }
  }
  for (const auto& ended : result.ended_waits) {
    std::string message = ended.reason == sm::Code::kTimeout
                              ? "lock not granted before the wait deadline"
                          : ended.reason == sm::Code::kCancelled ? "wait cancelled"
                                                                 : "session ended while waiting";
    for (const Caller& caller : take_waiting(ended.wait_id)) {
      responder_.error(caller, to_wire(ended.reason), message);
    }
  }
}

void Requests::fail_proposals(const std::string& why) {
  for (auto& [index, proposal] : std::exchange(proposals_, {})) {
    responder_.error(proposal.caller, lockpb::UNAVAILABLE, why);
  }
}

void Requests::fail_waits(const std::string& why) {
  for (auto& [wait_id, caller] : std::exchange(waiting_acquires_, {})) {
    responder_.error(caller, lockpb::UNAVAILABLE, why);
  }
}

void Requests::fail_after_snapshot(uint64_t snapshot_index, const std::set<uint64_t>& pending_waits) {
  std::vector<Caller> callers;
  while (!proposals_.empty() && proposals_.begin()->first <= snapshot_index) {
    callers.push_back(proposals_.begin()->second.caller);
    proposals_.erase(proposals_.begin());
  }
  for (auto it = waiting_acquires_.begin(); it != waiting_acquires_.end();) {
    if (pending_waits.contains(it->first)) {
      ++it;
      continue;
    }
    callers.push_back(it->second);
    it = waiting_acquires_.erase(it);
  }
  for (const Caller& caller : callers) {
    responder_.error(caller, lockpb::UNAVAILABLE, "state installed from a snapshot; retry");
  }
}

void Requests::forget_connection(ConnectionId connection) {
  for (auto it = waiting_acquires_.begin(); it != waiting_acquires_.end();) {
    it = it->second.connection == connection ? waiting_acquires_.erase(it) : std::next(it);
  }
}

}  // namespace fencelock::server
