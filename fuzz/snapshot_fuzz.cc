// Fuzz target: sm::LockStateMachine::restore() of arbitrary bytes, as a
// follower restores a snapshot from the leader or a node from its disk.
// It must return an error ("damaged snapshot: ...") and leave the state as
// it was, or install a state that keeps the lock invariants and encodes to a
// snapshot that restores to itself. Never a crash, never an allocation out
// of proportion to the input (libFuzzer's -malloc_limit_mb).
//
// Input: 1 byte of options, then the snapshot bytes. Bit 0 appends the right
// trailing checksum (FNV-1a 64), so that the fuzzer gets past it into the
// decoding; bit 1 restores over a machine that already holds state.

#include <cstdint>
#include <string>

#include "common/check.h"
#include "common/logging.h"
#include "statemachine/lock_state_machine.h"
#include "statemachine/snapshot_codec.h"
#include "tests/statemachine/sm_invariants.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fencelock::set_log_level("critical");  // FL_CHECK's message
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fencelock;
  if (size == 0) return 0;
  const uint8_t options = data[0];
  std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  if (options & 1) {
    uint64_t checksum = sm::detail::fnv1a64(bytes);
    for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>(checksum >> (8 * i)));
  }

  sm::LockStateMachine machine;
  if (options & 2) {
    lockpb::Command open;
    open.mutable_open_session()->set_client_name("before");
    sm::ApplyResult opened = machine.apply(1, open);
    lockpb::Command acquire;
    acquire.mutable_acquire()->mutable_key()->set_session_id(opened.session_id);
    acquire.mutable_acquire()->mutable_key()->set_sequence(1);
    acquire.mutable_acquire()->set_lock("held");
    FL_CHECK(machine.apply(2, acquire).granted, "the lock was not granted");
  }
  const std::string before = machine.snapshot();

  sm::Status status = machine.restore(bytes);
  if (!status.ok()) {
    FL_CHECK(status.code() == sm::Code::kInvalidArgument &&
                 status.message().starts_with("damaged snapshot:"),
             "restore failed with {}", status.to_string());
    FL_CHECK(machine.snapshot() == before, "a failed restore changed the state");
    return 0;
  }
  sm::testing::InvariantChecker invariants;
  invariants.check(machine, sm::ApplyResult{});
  FL_CHECK(invariants.ok(), "a restored snapshot breaks an invariant: {}", *invariants.violation());
  std::string encoded = machine.snapshot();
  sm::LockStateMachine again;
  status = again.restore(encoded);
  FL_CHECK(status.ok(), "the snapshot of a restored state does not restore: {}",
           status.to_string());
  FL_CHECK(again.snapshot() == encoded, "a restored state's snapshot does not round-trip");
  FL_CHECK(invariants.dump(again) == invariants.dump(machine), "a round trip changed the state");
  return 0;
}
