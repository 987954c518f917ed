#include "server/wire.h"

namespace fencelock::server {

lockpb::ErrorCode to_wire(sm::Code code) {
  switch (code) {
    case sm::Code::kOk:
      return lockpb::OK;
    case sm::Code::kInvalidArgument:
      return lockpb::INVALID_ARGUMENT;
    case sm::Code::kNotFound:
      return lockpb::NOT_FOUND;
    case sm::Code::kSessionExpired:
      return lockpb::SESSION_EXPIRED;
    case sm::Code::kLockNotHeld:
      return lockpb::LOCK_NOT_HELD;
    case sm::Code::kTimeout:
      return lockpb::TIMEOUT;
    case sm::Code::kCancelled:
      return lockpb::CANCELLED;
    case sm::Code::kResourceExhausted:
      return lockpb::RESOURCE_EXHAUSTED;
    case sm::Code::kFailedPrecondition:
      return lockpb::FAILED_PRECONDITION;
    case sm::Code::kStaleSequence:
      return lockpb::STALE_SEQUENCE;
    case sm::Code::kPermissionDenied:
      return lockpb::PERMISSION_DENIED;
  }
  // Not reachable with a valid sm::Code; a corrupted one is a server bug
  // the client should see as such rather than as success.
  return lockpb::INTERNAL;
}

Status to_wire(const sm::Status& status) {
  if (status.ok()) return Status();
  return Status(to_wire(status.code()), status.message());
}

clientpb::LockInfo to_wire(const sm::LockView& lock) {
  clientpb::LockInfo info;
  info.set_name(lock.name);
  for (const sm::HolderView& holder : lock.holders) {
    clientpb::Holder* out = info.add_holders();
    out->set_session_id(holder.session_id);
    out->set_token(holder.token);
    out->set_mode(holder.mode);
    out->set_value(holder.value);
  }
  for (const sm::WaiterView& waiter : lock.waiters) {
    clientpb::Waiter* out = info.add_waiters();
    out->set_session_id(waiter.session_id);
    out->set_mode(waiter.mode);
    out->set_wait_id(waiter.wait_id);
    out->set_wait_ms(waiter.wait_ms);
  }
  info.set_max_holders(lock.max_holders);
  info.set_lock_delay_ms(lock.lock_delay_ms);
  info.set_in_lock_delay(lock.in_lock_delay);
  info.set_lock_delay_id(lock.lock_delay_id);
  return info;
}

clientpb::LockList to_wire(const sm::LockPage& page) {
  clientpb::LockList list;
  for (const sm::LockView& lock : page.locks) *list.add_locks() = to_wire(lock);
  list.set_next_start_after(page.next_start_after);
  return list;
}

clientpb::SequencerStatus to_wire(const sm::SequencerStatus& status) {
  clientpb::SequencerStatus out;
  out.set_current(status.current);
  return out;
}

clientpb::SessionInfo to_wire(const sm::SessionView& session) {
  clientpb::SessionInfo info;
  info.set_session_id(session.session_id);
  info.set_client_name(session.client_name);
  info.set_ttl_ms(session.ttl_ms);
  info.set_held_locks(session.held_locks);
  info.set_waiting_locks(session.waiting_locks);
  info.set_principal(session.principal);
  return info;
}

clientpb::SessionList to_wire(const sm::SessionPage& page) {
  clientpb::SessionList list;
  for (const sm::SessionView& session : page.sessions) *list.add_sessions() = to_wire(session);
  list.set_next_start_after(page.next_start_after);
  return list;
}

}  // namespace fencelock::server
