#pragma once
// Fills a cluster with many locks, each holding a value, as fast as the
// client API allows: many sessions (a session may hold at most
// sm::Limits::max_locks_per_session locks) and many acquires in flight at
// once on one client connection, so the leader batches them into large
// appends and few fsyncs. Used by the snapshot catch-up test and the
// snapshot stall bench.
//
// Thread-safety: call from one thread; the callbacks run on the client's
// I/O thread and only touch the shared counters.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "client/session.h"

namespace fencelock::testing {

// The lock `i` of a fill and the value it holds: `value_bytes` bytes that
// start with the lock's number, so a sample can be checked byte for byte.
std::string fill_lock_name(uint64_t i);
std::string fill_value(uint64_t i, size_t value_bytes);

struct FillOptions {
  uint64_t locks = 0;
  size_t value_bytes = 1024;
  uint64_t locks_per_session = 10'000;  // sm::Limits::max_locks_per_session
  size_t in_flight = 2000;
  std::chrono::milliseconds session_ttl{60'000};
  std::chrono::seconds timeout{120};
};

struct FillResult {
  bool ok = false;
  std::string error;  // the first failure, when !ok
  std::vector<std::shared_ptr<client::Session>> sessions;  // kept open by the caller
  std::chrono::milliseconds elapsed{0};
};

// Acquires fill_lock_name(i) with fill_value(i) for i in [0, locks).
FillResult fill_locks(const std::shared_ptr<client::Client>& client, const FillOptions& options);

}  // namespace fencelock::testing
