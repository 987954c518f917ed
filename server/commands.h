#pragma once
// The command a client request becomes (proto/command.proto): what the
// leader proposes for it, with the fields a client must not set cleared.
// Pure, so that the fuzz target (fuzz/client_request_fuzz.cc) runs the
// server's own decision on arbitrary requests.
//
// Thread-safety: pure function; callable from any thread.

#include <optional>
#include <string>

#include "proto/client.pb.h"
#include "proto/command.pb.h"

namespace fencelock::server {

// The command a mutating request becomes. nullopt for requests that are not
// commands (reads, keepalives, status, membership, backups), and for one
// that is invalid as it stands, which sets `*invalid` to the reason
// (answered INVALID_ARGUMENT).
std::optional<lockpb::Command> to_command(const clientpb::Request& request, std::string* invalid);

}  // namespace fencelock::server
