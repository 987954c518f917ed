#include "statemachine/reads.h"

namespace fencelock::sm {
namespace {

// A varint field: tag and value.
constexpr size_t kVarintField = 2 + 10;
// A length-delimited field (bytes, string, nested message) before its bytes.
constexpr size_t kLengthField = 2 + 5;

size_t bound(const HolderView& holder) {
  // session_id, token, mode; value.
  return kLengthField + 3 * kVarintField + kLengthField + holder.value.size();
}

size_t bound(const WaiterView&) {
  // session_id, mode, wait_id, wait_ms.
  return kLengthField + 4 * kVarintField;
}

}  // namespace

size_t encoded_bytes_bound(const LockView& lock) {
  // name; max_holders, lock_delay_ms, in_lock_delay, lock_delay_id.
  size_t bytes = kLengthField + kLengthField + lock.name.size() + 4 * kVarintField;
  for (const HolderView& holder : lock.holders) bytes += bound(holder);
  for (const WaiterView& waiter : lock.waiters) bytes += bound(waiter);
  return bytes;
}

size_t encoded_bytes_bound(const SessionView& session) {
  // client_name, principal; session_id, ttl_ms, held_locks, waiting_locks.
  return kLengthField + kLengthField + session.client_name.size() + kLengthField +
         session.principal.size() + 4 * kVarintField;
}

size_t encoded_bytes_bound(const LockPage& page) {
  size_t bytes = kLengthField + page.next_start_after.size();
  for (const LockView& lock : page.locks) bytes += encoded_bytes_bound(lock);
  return bytes;
}

size_t encoded_bytes_bound(const SessionPage& page) {
  size_t bytes = kVarintField;
  for (const SessionView& session : page.sessions) bytes += encoded_bytes_bound(session);
  return bytes;
}

}  // namespace fencelock::sm
