// Fuzz target: sm::LockStateMachine applying an arbitrary sequence of
// commands, made from the fuzzer's bytes: mostly well-formed commands about
// a few live sessions, a few locks and the tokens granted so far (so that
// the fuzzer reaches deep states), sometimes out-of-range values and raw
// entry bytes. After every command the lock invariants hold
// (tests/statemachine/sm_invariants.h, the property test's). A twin machine
// applies the same commands as entry bytes, the way a node applies its log;
// at the end both hold the same state, and a snapshot of it restores to a
// machine with the same state and the same snapshot bytes.
//
// Input: 1 byte choosing the Limits, then one step per [kind, fields...].

#include <google/protobuf/stubs/logging.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/check.h"
#include "common/logging.h"
#include "fuzz/fuzz_input.h"
#include "statemachine/lock_state_machine.h"
#include "tests/statemachine/sm_invariants.h"

namespace fencelock::fuzz {
namespace {

using sm::testing::InvariantChecker;

// Choices that lead somewhere: what was opened and granted so far.
class Builder {
 public:
  explicit Builder(FuzzInput& in) : in_(in) {}

  uint64_t session() {
    uint8_t pick = in_.u8();
    if (pick < 200 && !sessions_.empty()) return sessions_[pick % sessions_.size()];
    return pick % 8;  // never opened, or ended
  }
  void key(lockpb::RequestKey* key) {
    uint64_t id = session();
    key->set_session_id(id);
    uint64_t& last = sequences_[id];
    uint8_t pick = in_.u8() % 16;
    if (pick < 11) {
      key->set_sequence(++last);  // the next request
    } else if (pick < 13) {
      key->set_sequence(last);  // a retry, or another request reusing it
    } else if (pick < 15) {
      key->set_sequence(in_.below(last + 1));
    } else {
      key->set_sequence(0);
    }
  }
  std::string lock() {
    static const char* const kNames[] = {"a", "b", "jobs/c", "jobs/d"};
    uint8_t pick = in_.u8();
    if (pick < 240) return kNames[pick % 4];
    return in_.short_bytes(pick == 255 ? 600 : 16);  // maybe invalid
  }
  uint64_t token() {
    uint8_t pick = in_.u8();
    if (pick < 200 && !tokens_.empty()) return tokens_[pick % tokens_.size()];
    return pick < 250 ? pick : in_.u64();
  }
  uint64_t millis() {
    static const uint64_t kMillis[] = {0, 1, 100, 500, 499, 1000, 60'000, 60'001, 600'000, 600'001};
    uint8_t pick = in_.u8();
    return pick < 250 ? kMillis[pick % std::size(kMillis)] : in_.u64();
  }

  lockpb::Command next() {
    lockpb::Command c;
    switch (in_.u8() % 9) {
      case 0: {
        lockpb::OpenSession* open = c.mutable_open_session();
        open->set_ttl_ms(millis());
        open->set_client_name(in_.u8() < 240 ? "client" : in_.short_bytes(300));
        break;
      }
      case 1:
        key(c.mutable_close_session()->mutable_key());
        break;
      case 2:
        c.mutable_expire_session()->set_session_id(session());
        c.mutable_expire_session()->set_now_ms(millis());
        break;
      case 3:
      case 4: {
        lockpb::Acquire* a = c.mutable_acquire();
        key(a->mutable_key());
        a->set_lock(lock());
        uint8_t mode = in_.u8();
        a->set_mode(static_cast<lockpb::LockMode>(mode < 250 ? mode % 2 : mode));
        a->set_wait_ms(millis());
        uint8_t options = in_.u8();
        if (options & 1) a->set_value(in_.short_bytes(options & 2 ? 1100 : 8));
        if (options & 4) a->set_max_holders(in_.u8() % 5);
        if (options & 8) a->set_lock_delay_ms(millis());
        if (options & 16) a->set_now_ms(millis());
        break;
      }
      case 5: {
        lockpb::Release* r = c.mutable_release();
        key(r->mutable_key());
        r->set_lock(lock());
        r->set_token(token());
        break;
      }
      case 6: {
        lockpb::CancelWait* w = c.mutable_cancel_wait();
        key(w->mutable_key());
        w->set_lock(lock());
        if (in_.boolean()) w->set_wait_id(in_.below(index_ + 2));
        break;
      }
      case 7:
        c.mutable_end_lock_delay()->set_lock(lock());
        c.mutable_end_lock_delay()->set_delay_id(in_.below(index_ + 2));
        break;
      case 8:
        c.mutable_force_release()->set_lock(lock());
        c.mutable_force_release()->set_now_ms(millis());
        break;
    }
    return c;
  }

  void observe(const sm::ApplyResult& r) {
    if (r.status.ok() && r.session_id != 0) sessions_.push_back(r.session_id);
    if (r.granted) tokens_.push_back(r.granted->token());
    for (const sm::Grant& g : r.grants) tokens_.push_back(g.sequencer.token());
    if (sessions_.size() > 16) sessions_.erase(sessions_.begin());
    if (tokens_.size() > 16) tokens_.erase(tokens_.begin());
  }

  uint64_t next_index() {
    // Gaps: entries that are not for the state machine (ConfChange, empty).
    index_ += 1 + (in_.u8() < 230 ? 0 : in_.below(4));
    return index_;
  }

 private:
  FuzzInput& in_;
  uint64_t index_ = 0;
  std::vector<uint64_t> sessions_;
  std::vector<uint64_t> tokens_;
  std::map<uint64_t, uint64_t> sequences_;
};

}  // namespace
}  // namespace fencelock::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fencelock::set_log_level("critical");  // FL_CHECK's message
  // proto3 logs each string field that is not UTF-8 as it refuses it.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fencelock;
  fuzz::FuzzInput in(data, size);
  sm::Limits limits;
  if (in.boolean()) limits = sm::Limits{4, 6, 3, 3};  // reach every bound
  sm::LockStateMachine machine(limits);
  sm::LockStateMachine twin(limits);
  fuzz::InvariantChecker invariants;
  fuzz::Builder builder(in);
  // Bounded: a step takes at least one byte.
  for (int step = 0; !in.empty() && step < 2000; ++step) {
    uint64_t index = builder.next_index();
    sm::ApplyResult result;
    std::string bytes;
    lockpb::Command command;
    if (in.u8() < 8) {
      bytes = in.short_bytes(64);  // a raw entry, maybe not a command at all
      result = machine.apply(index, std::string_view(bytes));
    } else {
      command = builder.next();
      bytes = command.SerializeAsString();
      // proto3 refuses a string field that is not UTF-8 when parsing, so
      // such a command reaches a node only as bytes that do not parse.
      lockpb::Command parsed;
      result = parsed.ParseFromString(bytes) ? machine.apply(index, command)
                                             : machine.apply(index, std::string_view(bytes));
    }
    sm::ApplyResult twin_result = twin.apply(index, std::string_view(bytes));
    FL_CHECK(twin_result.status.code() == result.status.code(),
             "step {}: {} applied as a command, {} as entry bytes", step, result.status.to_string(),
             twin_result.status.to_string());
    FL_CHECK(machine.applied_index() == index, "step {}: applied_index {} after applying {}", step,
             machine.applied_index(), index);
    invariants.check(machine, result);
    FL_CHECK(invariants.ok(), "step {} ({}): {}", step, command.ShortDebugString(),
             *invariants.violation());
    builder.observe(result);
  }

  std::string bytes = machine.snapshot();
  FL_CHECK(twin.snapshot() == bytes, "the twin applying entry bytes holds another state");
  FL_CHECK(machine.image().encode() == bytes, "image() encodes other bytes than snapshot()");
  sm::LockStateMachine restored(limits);
  sm::Status status = restored.restore(bytes);
  FL_CHECK(status.ok(), "a snapshot does not restore: {}", status.to_string());
  FL_CHECK(restored.snapshot() == bytes, "a restored snapshot encodes to other bytes");
  std::string before = invariants.dump(machine);
  FL_CHECK(invariants.dump(restored) == before, "a restored state reads differently");
  invariants.check(restored, sm::ApplyResult{});
  FL_CHECK(invariants.ok(), "after restore: {}", *invariants.violation());
  return 0;
}
