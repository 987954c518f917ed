#include "server/responder.h"

namespace fencelock::server {

void Responder::respond(const Caller& caller, clientpb::Response response) {
  response.set_id(caller.request_id);
  env_.respond(caller.connection, response);
}

void Responder::error(const Caller& caller, ErrorCode code, std::string message) {
  clientpb::Response response;
  response.set_code(code);
  response.set_message(std::move(message));
  respond(caller, std::move(response));
}

void Responder::not_leader(const Caller& caller) {
  clientpb::Response response;
  response.set_code(lockpb::NOT_LEADER);
  if (leader_id_ != 0 && leader_id_ != self_id_) {
    response.set_leader_hint(client_address_ ? client_address_(leader_id_)
                                             : env_.peer_client_address(leader_id_));
    response.set_message("node " + std::to_string(self_id_) + " is not the leader; node " +
                         std::to_string(leader_id_) + " is");
  } else {
    response.set_message("node " + std::to_string(self_id_) +
                         " is not the leader and knows no leader");
  }
  respond(caller, std::move(response));
}

void Responder::not_member(const Caller& caller) {
  clientpb::Response response;
  response.set_code(lockpb::NOT_LEADER);
  response.set_message("node " + std::to_string(self_id_) +
                       " is not a member of the cluster (removed, or not yet added)");
  respond(caller, std::move(response));
}

}  // namespace fencelock::server
