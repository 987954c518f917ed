#pragma once
// Command builders and a driver that numbers entries, for the state machine
// tests.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <string>

#include "statemachine/lock_state_machine.h"

namespace fencelock::sm::testing {

// A byte budget for list_locks/list_sessions that never ends a page early.
inline constexpr size_t kNoByteLimit = std::numeric_limits<size_t>::max();

inline lockpb::Command open_cmd(uint64_t ttl_ms = 0, std::string client_name = "client") {
  lockpb::Command c;
  c.mutable_open_session()->set_ttl_ms(ttl_ms);
  c.mutable_open_session()->set_client_name(std::move(client_name));
  return c;
}

inline lockpb::Command close_cmd(uint64_t session, uint64_t sequence) {
  lockpb::Command c;
  c.mutable_close_session()->mutable_key()->set_session_id(session);
  c.mutable_close_session()->mutable_key()->set_sequence(sequence);
  return c;
}

inline lockpb::Command expire_cmd(uint64_t session, uint64_t now_ms = 0) {
  lockpb::Command c;
  c.mutable_expire_session()->set_session_id(session);
  c.mutable_expire_session()->set_now_ms(now_ms);
  return c;
}

struct AcquireArgs {
  lockpb::LockMode mode = lockpb::EXCLUSIVE;
  uint64_t wait_ms = 0;
  std::string value;
  uint32_t max_holders = 0;
  uint64_t lock_delay_ms = 0;
  uint64_t now_ms = 0;
};

inline lockpb::Command acquire_cmd(uint64_t session, uint64_t sequence, std::string lock,
                                   const AcquireArgs& args = {}) {
  lockpb::Command c;
  lockpb::Acquire* a = c.mutable_acquire();
  a->mutable_key()->set_session_id(session);
  a->mutable_key()->set_sequence(sequence);
  a->set_lock(std::move(lock));
  a->set_mode(args.mode);
  a->set_wait_ms(args.wait_ms);
  a->set_value(args.value);
  a->set_max_holders(args.max_holders);
  a->set_lock_delay_ms(args.lock_delay_ms);
  a->set_now_ms(args.now_ms);
  return c;
}

inline lockpb::Command release_cmd(uint64_t session, uint64_t sequence, std::string lock,
                                   uint64_t token) {
  lockpb::Command c;
  c.mutable_release()->mutable_key()->set_session_id(session);
  c.mutable_release()->mutable_key()->set_sequence(sequence);
  c.mutable_release()->set_lock(std::move(lock));
  c.mutable_release()->set_token(token);
  return c;
}

inline lockpb::Command cancel_cmd(uint64_t session, uint64_t sequence, std::string lock,
                                  uint64_t wait_id = 0) {
  lockpb::Command c;
  c.mutable_cancel_wait()->mutable_key()->set_session_id(session);
  c.mutable_cancel_wait()->mutable_key()->set_sequence(sequence);
  c.mutable_cancel_wait()->set_lock(std::move(lock));
  c.mutable_cancel_wait()->set_wait_id(wait_id);
  return c;
}

inline lockpb::Command end_delay_cmd(std::string lock, uint64_t delay_id) {
  lockpb::Command c;
  c.mutable_end_lock_delay()->set_lock(std::move(lock));
  c.mutable_end_lock_delay()->set_delay_id(delay_id);
  return c;
}

inline lockpb::Command force_cmd(std::string lock, uint64_t now_ms = 0) {
  lockpb::Command c;
  c.mutable_force_release()->set_lock(std::move(lock));
  c.mutable_force_release()->set_now_ms(now_ms);
  return c;
}

// Applies commands at consecutive indexes and numbers each session's
// requests.
class Driver {
 public:
  explicit Driver(Limits limits = {}) : sm(limits) {}

  ApplyResult apply(const lockpb::Command& command) {
    ApplyResult result = sm.apply(++index, command);
    if (on_applied) on_applied(command, result);
    return result;
  }

  uint64_t open(uint64_t ttl_ms = 0) {
    ApplyResult r = apply(open_cmd(ttl_ms));
    return r.status.ok() ? r.session_id : 0;
  }
  ApplyResult acquire(uint64_t session, std::string lock, const AcquireArgs& args = {}) {
    return apply(acquire_cmd(session, ++sequence[session], std::move(lock), args));
  }
  // The token of an immediate grant, or 0.
  uint64_t take(uint64_t session, std::string lock, const AcquireArgs& args = {}) {
    ApplyResult r = acquire(session, std::move(lock), args);
    return r.granted ? r.granted->token() : 0;
  }
  ApplyResult wait(uint64_t session, std::string lock, lockpb::LockMode mode = lockpb::EXCLUSIVE) {
    AcquireArgs args;
    args.mode = mode;
    args.wait_ms = 60'000;
    return acquire(session, std::move(lock), args);
  }
  ApplyResult release(uint64_t session, std::string lock, uint64_t token) {
    return apply(release_cmd(session, ++sequence[session], std::move(lock), token));
  }
  ApplyResult cancel(uint64_t session, std::string lock) {
    return apply(cancel_cmd(session, ++sequence[session], std::move(lock)));
  }
  ApplyResult close(uint64_t session) { return apply(close_cmd(session, ++sequence[session])); }

  LockStateMachine sm;
  uint64_t index = 0;
  std::map<uint64_t, uint64_t> sequence;
  // Told of every command applied and its result, if set: for a test that
  // feeds what the state machine did to something else.
  std::function<void(const lockpb::Command&, const ApplyResult&)> on_applied;
};

}  // namespace fencelock::sm::testing
