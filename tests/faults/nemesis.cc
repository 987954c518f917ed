#include "tests/faults/nemesis.h"

#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <thread>

namespace fencelock::faults {

using namespace std::chrono_literals;

Nemesis::Nemesis(testing::ProcessCluster& cluster, testing::TcpProxy& links,
                 std::function<size_t(uint64_t, uint64_t)> link_index,
                 std::vector<std::unique_ptr<Worker>>& workers, History& history)
    : cluster_(cluster), links_(links), link_index_(std::move(link_index)), workers_(workers), history_(history) {}

void Nemesis::run(const std::vector<Fault>& schedule, int64_t run_ms, const std::atomic<bool>& stop) {
  const int64_t end_us = run_ms * 1000;
  size_t next = 0;
  while (!stop && history_.now_us() < end_us) {
    int64_t now = history_.now_us();
    for (auto it = active_.begin(); it != active_.end();) {
      if (it->end_us <= now) {
        it->undo();
        it = active_.erase(it);
      } else {
        ++it;
      }
    }
    while (next < schedule.size() && schedule[next].start_ms * 1000 <= now) start(schedule[next++]);
    std::this_thread::sleep_for(10ms);
  }
}

void Nemesis::heal_all() {
  auto active = std::move(active_);
  active_.clear();
  for (auto& fault : active) fault.undo();
  for (auto& worker : workers_) worker->cancel_stall();
  history_.note("\"type\":\"healed\"");
}

uint64_t Nemesis::leader() {
  uint64_t best = 0;
  uint64_t best_term = 0;
  for (uint64_t id : cluster_.ids()) {
    if (down_.contains(id) || !cluster_.running(id)) continue;
    auto status = cluster_.status_of(id);
    if (!status) continue;
    for (const auto& member : status->members()) {
      if (member.id() == id && member.role() == "leader" && member.term() >= best_term) {
        best = id;
        best_term = member.term();
      }
    }
  }
  return best;
}

uint64_t Nemesis::pick_node(const Fault& fault) {
  if (fault.prefer_leader) {
    uint64_t l = leader();
    if (l != 0 && !down_.contains(l)) return l;
  }
  if (!down_.contains(fault.node)) return fault.node;
  for (uint64_t id : cluster_.ids()) {
    if (!down_.contains(id)) return id;
  }
  return 0;
}

void Nemesis::cut_link(uint64_t from, uint64_t to) {
  if (link_cuts_[{from, to}]++ == 0) links_.cut(link_index_(from, to));
}

void Nemesis::heal_link(uint64_t from, uint64_t to) {
  int& cuts = link_cuts_[{from, to}];
  if (cuts > 0 && --cuts == 0) links_.heal(link_index_(from, to));
}

std::function<void()> Nemesis::partition(const std::vector<uint64_t>& a, const std::vector<uint64_t>& b) {
  std::vector<std::pair<uint64_t, uint64_t>> cut;
  for (uint64_t x : a) {
    for (uint64_t y : b) {
      cut.emplace_back(x, y);
      cut.emplace_back(y, x);
    }
  }
  for (auto [from, to] : cut) cut_link(from, to);
  return [this, cut] {
    for (auto [from, to] : cut) heal_link(from, to);
  };
}

void Nemesis::note(const Fault& fault, const std::string& resolved) {
  std::fprintf(stderr, "fencelock-faults: %8.3fs %s: %s\n", history_.now_us() / 1e6, kind_name(fault.kind),
               resolved.c_str());
  history_.note("\"type\":\"fault\",\"kind\":\"" + std::string(kind_name(fault.kind)) + "\",\"target\":" +
                json_quote(resolved) + ",\"duration_ms\":" + std::to_string(fault.duration_ms));
}

void Nemesis::start(const Fault& fault) {
  const int64_t end_us = history_.now_us() + fault.duration_ms * 1000;
  auto ids = cluster_.ids();
  auto rest = [&](const std::vector<uint64_t>& group) {
    std::vector<uint64_t> out;
    for (uint64_t id : ids) {
      if (std::find(group.begin(), group.end(), id) == group.end()) out.push_back(id);
    }
    return out;
  };
  auto ended = [this, kind = fault.kind](std::string what) {
    history_.note("\"type\":\"fault-end\",\"kind\":\"" + std::string(kind_name(kind)) + "\",\"target\":" +
                  json_quote(what));
  };
  std::function<void()> undo;
  std::string resolved;
  switch (fault.kind) {
    case FaultKind::kKill:
    case FaultKind::kPause: {
      uint64_t node = pick_node(fault);
      if (node == 0) {
        note(fault, "skipped: every node is down");
        return;
      }
      bool kill = fault.kind == FaultKind::kKill;
      resolved = "n" + std::to_string(node);
      down_[node] = kill ? "killed" : "paused";
      cluster_.kill(node, kill ? SIGKILL : SIGSTOP);
      undo = [this, node, kill, ended, resolved] {
        if (kill) {
          cluster_.start(node);
        } else {
          cluster_.kill(node, SIGCONT);
        }
        down_.erase(node);
        ended(resolved);
      };
      break;
    }
    case FaultKind::kIsolateLeader: {
      uint64_t l = leader();
      if (l == 0) l = fault.node != 0 ? fault.node : ids.front();
      resolved = "n" + std::to_string(l) + " | rest";
      auto heal = partition({l}, rest({l}));
      undo = [heal, ended, resolved] {
        heal();
        ended(resolved);
      };
      break;
    }
    case FaultKind::kSplit:
    case FaultKind::kBridge: {
      std::vector<uint64_t> half = fault.group;
      std::vector<uint64_t> other = rest(half);
      if (fault.kind == FaultKind::kBridge) std::erase(other, fault.node);
      auto names = [](const std::vector<uint64_t>& group) {
        std::string out;
        for (uint64_t id : group) out += (out.empty() ? "n" : ",n") + std::to_string(id);
        return out;
      };
      resolved = names(half) + " | " + names(other);
      if (fault.kind == FaultKind::kBridge) resolved += ", bridged by n" + std::to_string(fault.node);
      auto heal = partition(half, other);
      undo = [heal, ended, resolved] {
        heal();
        ended(resolved);
      };
      break;
    }
    case FaultKind::kOneWay: {
      uint64_t from = fault.node;
      uint64_t to = fault.to;
      resolved = "n" + std::to_string(from) + " -/-> n" + std::to_string(to);
      cut_link(from, to);
      undo = [this, from, to, ended, resolved] {
        heal_link(from, to);
        ended(resolved);
      };
      break;
    }
    case FaultKind::kClientCut: {
      Worker* worker = workers_.at(static_cast<size_t>(fault.worker)).get();
      resolved = "worker " + std::to_string(fault.worker);
      worker->cut();
      undo = [worker, ended, resolved] {
        worker->heal();
        ended(resolved);
      };
      break;
    }
    case FaultKind::kWorkerStall: {
      Worker* worker = workers_.at(static_cast<size_t>(fault.worker)).get();
      resolved = "worker " + std::to_string(fault.worker);
      worker->request_stall();
      undo = [] {};  // the stall ends by itself (worker.h)
      break;
    }
  }
  ++applied_;
  note(fault, resolved);
  active_.push_back(Active{end_us, std::move(undo)});
}

}  // namespace fencelock::faults
