#include "tests/cluster/fill.h"

#include <condition_variable>
#include <mutex>

namespace fencelock::testing {

std::string fill_lock_name(uint64_t i) {
  char name[32];
  std::snprintf(name, sizeof name, "fill/%08llu", static_cast<unsigned long long>(i));
  return name;
}

std::string fill_value(uint64_t i, size_t value_bytes) {
  std::string value = "value-" + std::to_string(i) + ":";
  value.reserve(value_bytes);
  for (size_t k = value.size(); k < value_bytes; ++k) {
    value.push_back(static_cast<char>('a' + (i * 31 + k) % 26));
  }
  value.resize(value_bytes);
  return value;
}

FillResult fill_locks(const std::shared_ptr<client::Client>& client, const FillOptions& options) {
  auto started = std::chrono::steady_clock::now();
  FillResult result;
  struct Shared {
    std::mutex mutex;
    std::condition_variable cv;
    uint64_t next = 0;
    uint64_t done = 0;
    size_t in_flight = 0;
    std::string error;
  };
  auto shared = std::make_shared<Shared>();
  uint64_t session_count = (options.locks + options.locks_per_session - 1) / options.locks_per_session;
  for (uint64_t s = 0; s < session_count; ++s) {
    client::SessionOptions session_options;
    session_options.ttl = options.session_ttl;
    session_options.client_name = "fill-" + std::to_string(s);
    auto session = client::Session::open(client, session_options);
    if (!session.ok()) {
      result.error = "open session: " + session.status().to_string();
      return result;
    }
    result.sessions.push_back(std::move(session).value());
  }
  auto deadline = started + options.timeout;
  std::unique_lock lock(shared->mutex);
  while (shared->done < options.locks && shared->error.empty()) {
    while (shared->in_flight < options.in_flight && shared->next < options.locks) {
      uint64_t i = shared->next++;
      ++shared->in_flight;
      client::AcquireOptions acquire;
      acquire.value = fill_value(i, options.value_bytes);
      auto& session = result.sessions[i / options.locks_per_session];
      lock.unlock();
      session->acquire_async(fill_lock_name(i), acquire,
                             [shared, i](Result<lockpb::Sequencer> granted) {
                               std::lock_guard guard(shared->mutex);
                               --shared->in_flight;
                               ++shared->done;
                               if (!granted.ok() && shared->error.empty()) {
                                 shared->error = "acquire " + fill_lock_name(i) + ": " +
                                                 granted.status().to_string();
                               }
                               shared->cv.notify_all();
                             });
      lock.lock();
    }
    if (!shared->cv.wait_until(lock, deadline, [&] {
          return !shared->error.empty() || shared->done == options.locks ||
                 (shared->in_flight < options.in_flight / 2 && shared->next < options.locks);
        })) {
      shared->error = "timed out after " + std::to_string(shared->done) + " of " +
                      std::to_string(options.locks) + " locks";
    }
  }
  // Let the acquires still in flight answer before the caller goes on.
  shared->cv.wait_until(lock, deadline + std::chrono::seconds(10), [&] { return shared->in_flight == 0; });
  result.error = shared->error;
  result.ok = result.error.empty();
  result.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  return result;
}

}  // namespace fencelock::testing
