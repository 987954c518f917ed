#pragma once
// The decoding of a client frame's body (proto/client.proto Request), as the
// client listener does it before a request reaches the node: pure, so that
// the fuzz target (fuzz/client_request_fuzz.cc) runs exactly what a server
// runs on a client's bytes, without a socket.
//
// Thread-safety: pure function; callable from any thread.

#include <string_view>

#include "common/status.h"
#include "proto/client.pb.h"

namespace fencelock::net {

struct DecodedRequest {
  // What parsed: the answer to an error still carries request.id().
  clientpb::Request request;
  // OK; MALFORMED_REQUEST when `body` is not a Request message (the id is
  // then 0); UNKNOWN_REQUEST when it has no kind this server knows (a newer
  // client?). Either error ends the connection after the answer.
  Status status;
};

DecodedRequest decode_client_request(std::string_view body);

}  // namespace fencelock::net
