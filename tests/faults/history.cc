#include "tests/faults/history.h"

#include <algorithm>
#include <cstdio>

namespace fencelock::faults {

const char* mode_name(lockpb::LockMode mode) { return mode == lockpb::SHARED ? "shared" : "exclusive"; }

const char* outcome_name(ReleaseOutcome outcome) {
  switch (outcome) {
    case ReleaseOutcome::kOk: return "ok";
    case ReleaseOutcome::kFailed: return "failed";
    case ReleaseOutcome::kIndeterminate: return "indeterminate";
    case ReleaseOutcome::kNotSent: return "abandoned";
  }
  return "?";
}

void History::grant(Grant grant) {
  std::lock_guard guard(mutex_);
  grants_.push_back(std::move(grant));
}

void History::release(Release release) {
  std::lock_guard guard(mutex_);
  releases_.push_back(std::move(release));
}

void History::note(const std::string& json) {
  int64_t t = now_us();
  std::lock_guard guard(mutex_);
  notes_.push_back(Line{t, json});
}

std::vector<Grant> History::grants() const {
  std::lock_guard guard(mutex_);
  return grants_;
}

std::vector<Release> History::releases() const {
  std::lock_guard guard(mutex_);
  return releases_;
}

void History::write(std::ostream& out, const std::vector<ResourceOp>& ops) const {
  std::vector<Line> lines;
  {
    std::lock_guard guard(mutex_);
    lines = notes_;
    for (const auto& g : grants_) {
      lines.push_back(Line{g.acked_us, "\"type\":\"grant\",\"worker\":" + std::to_string(g.worker) +
                                           ",\"session\":" + std::to_string(g.session) +
                                           ",\"lock\":" + json_quote(g.lock) + ",\"mode\":\"" +
                                           mode_name(g.mode) + "\",\"token\":" + std::to_string(g.token) +
                                           ",\"sent_us\":" + std::to_string(g.sent_us)});
    }
    for (const auto& r : releases_) {
      lines.push_back(Line{r.acked_us, "\"type\":\"release\",\"worker\":" + std::to_string(r.worker) +
                                           ",\"session\":" + std::to_string(r.session) +
                                           ",\"lock\":" + json_quote(r.lock) +
                                           ",\"token\":" + std::to_string(r.token) + ",\"outcome\":\"" +
                                           outcome_name(r.outcome) + "\",\"detail\":" +
                                           json_quote(r.detail) + ",\"sent_us\":" +
                                           std::to_string(r.sent_us)});
    }
  }
  for (const auto& op : ops) {
    lines.push_back(Line{op.t_us, "\"type\":\"" + std::string(op.write ? "write" : "read") +
                                      "\",\"seq\":" + std::to_string(op.seq) +
                                      ",\"worker\":" + std::to_string(op.worker) +
                                      ",\"lock\":" + json_quote(op.lock) +
                                      ",\"token\":" + std::to_string(op.token) + ",\"mode\":\"" +
                                      mode_name(op.mode) + "\",\"accepted\":" +
                                      (op.accepted ? "true" : "false") +
                                      ",\"value\":" + std::to_string(op.value)});
  }
  std::stable_sort(lines.begin(), lines.end(), [](const Line& a, const Line& b) { return a.t_us < b.t_us; });
  for (const auto& line : lines) out << "{\"t_us\":" << line.t_us << "," << line.json << "}\n";
}

}  // namespace fencelock::faults
