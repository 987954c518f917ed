#pragma once
// History: what the clients of fencelock-faults saw, for the checker and
// for the history file (JSON lines, docs/faults.md "Reading the history").
//
// Thread-safety: thread-safe.

#include <chrono>
#include <cstdint>
#include <mutex>
#include <ostream>
#include <string>
#include <vector>

#include "common/text.h"  // json_quote, for the history lines
#include "proto/command.pb.h"
#include "tests/faults/resource.h"

namespace fencelock::faults {

// An acquire the cluster acknowledged with a grant.
struct Grant {
  int worker = 0;
  uint64_t session = 0;
  std::string lock;
  lockpb::LockMode mode = lockpb::EXCLUSIVE;
  uint64_t token = 0;
  int64_t sent_us = 0;  // when the acquire was sent
  int64_t acked_us = 0;
};

enum class ReleaseOutcome {
  kOk,             // acknowledged: the grant ended
  kFailed,         // a definite error (LOCK_NOT_HELD, SESSION_EXPIRED): not held then
  kIndeterminate,  // no answer in time: may or may not have applied
  kNotSent,        // the worker abandoned the grant (session lost, stall)
};

struct Release {
  int worker = 0;
  uint64_t session = 0;
  std::string lock;
  uint64_t token = 0;
  ReleaseOutcome outcome = ReleaseOutcome::kOk;
  std::string detail;
  int64_t sent_us = 0;
  int64_t acked_us = 0;
};

class History {
 public:
  History() : start_(std::chrono::steady_clock::now()) {}

  // Microseconds since the run started (the history's clock).
  int64_t now_us() const {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start_)
        .count();
  }

  void grant(Grant grant);
  void release(Release release);
  // Any other line: `json` is a JSON object's members without braces, e.g.
  // "\"type\":\"fault\",\"kind\":\"kill\"". The time is added.
  void note(const std::string& json);

  std::vector<Grant> grants() const;
  std::vector<Release> releases() const;

  // Every record and the resource's operations as JSON lines, by time.
  void write(std::ostream& out, const std::vector<ResourceOp>& ops) const;

 private:
  struct Line {
    int64_t t_us;
    std::string json;
  };
  const std::chrono::steady_clock::time_point start_;
  mutable std::mutex mutex_;
  std::vector<Grant> grants_;
  std::vector<Release> releases_;
  std::vector<Line> notes_;
};

const char* mode_name(lockpb::LockMode mode);
const char* outcome_name(ReleaseOutcome outcome);

}  // namespace fencelock::faults
