#pragma once
// Responder: answers client requests through the Env, and knows enough of
// the cluster to answer NOT_LEADER with a hint (the leader's client
// address, which clients follow).
//
// Thread-safety: not thread-safe; the node's loop only.

#include <cstdint>
#include <functional>
#include <string>

#include "common/status.h"
#include "server/env.h"

namespace fencelock::server {

// Who asked: the connection and the request id an answer must carry.
struct Caller {
  ConnectionId connection = 0;
  uint64_t request_id = 0;
};

class Responder {
 public:
  Responder(Env& env, uint64_t self_id) : env_(env), self_id_(self_id) {}

  // The leader this node knows (0 = none), for NOT_LEADER hints.
  void set_leader(uint64_t leader_id) { leader_id_ = leader_id; }
  // Where a member's client address comes from (default: its Hello).
  void set_address_book(std::function<std::string(uint64_t)> client_address) {
    client_address_ = std::move(client_address);
  }

  void respond(const Caller& caller, clientpb::Response response);
  void error(const Caller& caller, ErrorCode code, std::string message);
  // NOT_LEADER, naming the leader and its client address when known.
  void not_leader(const Caller& caller);
  // NOT_LEADER from a node that is not a member (removed, or not yet
  // added): clients try another endpoint.
  void not_member(const Caller& caller);

 private:
  Env& env_;
  uint64_t self_id_;
  uint64_t leader_id_ = 0;
  std::function<std::string(uint64_t)> client_address_;
};

}  // namespace fencelock::server
