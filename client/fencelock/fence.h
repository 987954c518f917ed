#pragma once
// fencelock/fence.h: the resource side of fencing, header-only.
//
// A resource protected by a fencelock lock keeps the highest token it has
// seen for each lock and refuses a request carrying a lower one: that
// request comes from a holder whose lock has since passed to someone else
// (its process was paused, its network cut, its session expired). Tokens
// only ever grow across the whole cluster (docs/locks.md "Sequencers"), so this
// one comparison is the whole check.
//
//   fencelock::Fence fence;                              // one per resource
//   if (!fence.admit(request.lock, request.token)) return reject("stale token");
//   ... perform the write ...
//
// admit() and the write should be atomic together (hold your own lock
// around both, or admit inside the transaction that writes), or a stale
// holder admitted just before a newer one could still write after it.
//
// Thread-safety: thread-safe.

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace fencelock {

class Fence {
 public:
  // Admits `token` for `lock` if it is at least the highest token admitted
  // for that lock so far (equal: the same holder again), and records it.
  // Returns false, recording nothing, for a lower token.
  bool admit(std::string_view lock, uint64_t token) {
    std::lock_guard guard(mutex_);
    auto it = highest_.find(lock);
    if (it == highest_.end()) {
      highest_.emplace(std::string(lock), token);
      return true;
    }
    if (token < it->second) return false;
    it->second = token;
    return true;
  }

  // admit(), and on success runs `action` while still holding the fence's
  // mutex, so no newer holder can be admitted between the check and the
  // action. Returns whether it ran.
  bool admit_and(std::string_view lock, uint64_t token, const std::function<void()>& action) {
    std::lock_guard guard(mutex_);
    auto it = highest_.find(lock);
    if (it != highest_.end() && token < it->second) return false;
    if (it == highest_.end()) {
      highest_.emplace(std::string(lock), token);
    } else {
      it->second = token;
    }
    action();
    return true;
  }

  // The highest token admitted for `lock`; 0 if none.
  uint64_t highest(std::string_view lock) const {
    std::lock_guard guard(mutex_);
    auto it = highest_.find(lock);
    return it == highest_.end() ? 0 : it->second;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, uint64_t, std::less<>> highest_;
};

}  // namespace fencelock
