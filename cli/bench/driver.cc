#include "cli/bench/driver.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>

namespace fencelock::bench {

Outcome run_windowed(int count, int window, std::chrono::milliseconds timeout,
                     const std::function<void(int index, Completion done)>& start,
                     const std::string& verb, const std::string& noun) {
  // Shared with completions that may come after this returns.
  struct State {
    std::mutex mutex;
    std::condition_variable cv;
    int next = 0;
    int done = 0;
    bool stopped = false;
    std::string error;
    std::function<void(int, Completion)> start;
  };
  auto state = std::make_shared<State>();
  state->start = start;
  // Starts the next index, if any is left and the caller still waits.
  auto start_next = std::make_shared<std::function<void()>>();
  std::weak_ptr<std::function<void()>> weak_next = start_next;
  *start_next = [state, count, weak_next] {
    int index = 0;
    {
      std::lock_guard lock(state->mutex);
      if (state->stopped || state->next >= count) return;
      index = state->next++;
    }
    state->start(index, [state, weak_next](Outcome outcome) {
      {
        std::lock_guard lock(state->mutex);
        if (!outcome.ok() && state->error.empty()) state->error = outcome.error;
        ++state->done;
      }
      state->cv.notify_all();
      if (auto next = weak_next.lock()) (*next)();
    });
  };
  for (int i = 0; i < std::min(window, count); ++i) (*start_next)();
  std::unique_lock lock(state->mutex);
  state->cv.wait_for(lock, timeout, [&] { return state->done >= count; });
  state->stopped = true;
  if (!state->error.empty()) return {state->error};
  if (state->done < count) {
    return {verb + " " + std::to_string(state->done) + " of " + std::to_string(count) + " " + noun +
            " in time"};
  }
  return {};
}

}  // namespace fencelock::bench
