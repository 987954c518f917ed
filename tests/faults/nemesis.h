#pragma once
// Nemesis: carries out a fault schedule (schedule.h) against a running
// cluster: signals to node processes, cuts of directed peer links and of
// workers' client links. Overlapping faults compose: a link cut by two
// faults heals when both have ended.
//
// Thread-safety: not thread-safe; run() and heal_all() on one thread (the
// ProcessCluster it drives is not thread-safe either).

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/cluster/process_cluster.h"
#include "tests/cluster/tcp_proxy.h"
#include "tests/faults/history.h"
#include "tests/faults/schedule.h"
#include "tests/faults/worker.h"

namespace fencelock::faults {

class Nemesis {
 public:
  // `links` proxies every directed peer link; link_index(from, to) is the
  // proxy target of messages from `from` to `to`.
  Nemesis(testing::ProcessCluster& cluster, testing::TcpProxy& links,
          std::function<size_t(uint64_t, uint64_t)> link_index, std::vector<std::unique_ptr<Worker>>& workers,
          History& history);

  // Runs `schedule` until `run_ms` after `start_us` on the history clock
  // (or until `stop`), ending faults as they expire. Faults still active
  // at the end stay active for heal_all().
  void run(const std::vector<Fault>& schedule, int64_t run_ms, const std::atomic<bool>& stop);
  // Ends every active fault: restarts killed nodes, resumes paused ones,
  // heals every link.
  void heal_all();

  int applied() const { return applied_; }

 private:
  struct Active {
    int64_t end_us;
    std::function<void()> undo;
  };
  void start(const Fault& fault);
  uint64_t leader();
  uint64_t pick_node(const Fault& fault);
  void cut_link(uint64_t from, uint64_t to);
  void heal_link(uint64_t from, uint64_t to);
  // Cuts both directions between every node of `a` and every node of `b`;
  // returns the undo.
  std::function<void()> partition(const std::vector<uint64_t>& a, const std::vector<uint64_t>& b);
  void note(const Fault& fault, const std::string& resolved);

  testing::ProcessCluster& cluster_;
  testing::TcpProxy& links_;
  std::function<size_t(uint64_t, uint64_t)> link_index_;
  std::vector<std::unique_ptr<Worker>>& workers_;
  History& history_;
  std::map<std::pair<uint64_t, uint64_t>, int> link_cuts_;
  std::map<uint64_t, std::string> down_;  // node -> "killed" / "paused"
  std::vector<Active> active_;
  int applied_ = 0;
};

}  // namespace fencelock::faults
