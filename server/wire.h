#pragma once
// The state machine's vocabulary (statemachine/status.h, statemachine/reads.h)
// translated to the client wire (proto/client.proto). The only place that
// knows both: the state machine never sees a client message, and a client
// never sees an sm:: type.
//
// Thread-safety: pure functions; callable from any thread.

#include "common/status.h"
#include "proto/client.pb.h"
#include "statemachine/reads.h"
#include "statemachine/status.h"

namespace fencelock::server {

// The wire code a client is answered with for `code`. Total: every sm::Code
// has its own wire code (kOk is OK).
lockpb::ErrorCode to_wire(sm::Code code);

// `status` with its code translated and its message kept.
Status to_wire(const sm::Status& status);

// The read results as client messages, field for field.
clientpb::LockInfo to_wire(const sm::LockView& lock);
clientpb::LockList to_wire(const sm::LockPage& page);
clientpb::SequencerStatus to_wire(const sm::SequencerStatus& status);
clientpb::SessionInfo to_wire(const sm::SessionView& session);
clientpb::SessionList to_wire(const sm::SessionPage& page);

}  // namespace fencelock::server
