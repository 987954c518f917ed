#pragma once
// ProtectedResource: the thing the locks protect in fencelock-faults. One
// integer per lock name; a holder reads it and writes it back plus one (a
// read-modify-write), presenting its fencing token through fencelock::Fence
// (client/fencelock/fence.h) on every operation. Every operation, accepted
// or rejected, is recorded in arrival order for the checker.
//
// With fencing off (the driver's --no-fence proof run) every operation is
// accepted, as a resource that trusts its lock holders would.
//
// Thread-safety: thread-safe.

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "client/fencelock/fence.h"
#include "proto/command.pb.h"

namespace fencelock::faults {

struct ResourceOp {
  uint64_t seq = 0;  // arrival order
  int64_t t_us = 0;
  int worker = 0;
  std::string lock;
  uint64_t token = 0;
  lockpb::LockMode mode = lockpb::EXCLUSIVE;
  bool write = false;  // false: read
  bool accepted = false;
  int64_t value = 0;   // read: the value returned; write: the value written
};

class ProtectedResource {
 public:
  explicit ProtectedResource(bool fencing) : fencing_(fencing) {}

  struct Read {
    bool accepted = false;
    int64_t value = 0;
  };

  // Reads `lock`'s value for the holder of `token`.
  Read read(int64_t t_us, int worker, const std::string& lock, uint64_t token, lockpb::LockMode mode) {
    std::lock_guard guard(mutex_);
    Read out;
    auto apply = [&] {
      out.accepted = true;
      out.value = values_[lock];
    };
    if (fencing_) {
      fence_.admit_and(lock, token, apply);
    } else {
      apply();
    }
    record(t_us, worker, lock, token, mode, false, out.accepted, out.value);
    return out;
  }

  // Sets `lock`'s value to `value` for the holder of `token`. Returns
  // whether it was accepted.
  bool write(int64_t t_us, int worker, const std::string& lock, uint64_t token, lockpb::LockMode mode,
             int64_t value) {
    std::lock_guard guard(mutex_);
    bool accepted = false;
    auto apply = [&] {
      accepted = true;
      values_[lock] = value;
      if (token > highest_written_[lock]) highest_written_[lock] = token;
    };
    if (fencing_) {
      fence_.admit_and(lock, token, apply);
    } else {
      apply();
    }
    record(t_us, worker, lock, token, mode, true, accepted, value);
    return accepted;
  }

  // The highest token whose write was accepted for `lock` (0 if none).
  uint64_t highest_written(const std::string& lock) const {
    std::lock_guard guard(mutex_);
    auto it = highest_written_.find(lock);
    return it == highest_written_.end() ? 0 : it->second;
  }

  std::map<std::string, int64_t> values() const {
    std::lock_guard guard(mutex_);
    return values_;
  }
  std::vector<ResourceOp> ops() const {
    std::lock_guard guard(mutex_);
    return ops_;
  }
  bool fencing() const { return fencing_; }

 private:
  void record(int64_t t_us, int worker, const std::string& lock, uint64_t token, lockpb::LockMode mode,
              bool write, bool accepted, int64_t value) {
    ops_.push_back(ResourceOp{ops_.size() + 1, t_us, worker, lock, token, mode, write, accepted, value});
  }

  const bool fencing_;
  mutable std::mutex mutex_;
  Fence fence_;
  std::map<std::string, int64_t> values_;
  std::map<std::string, uint64_t> highest_written_;
  std::vector<ResourceOp> ops_;
};

}  // namespace fencelock::faults
