// Propose-to-commit throughput of a 3-node in-memory cluster: the real core,
// MemoryStorage, synchronous message delivery, no I/O. Measures the core's
// own cost per committed entry at batch sizes 1, 16 and 256 (proposals made
// between two ready() calls, which go out as one append).
//
//   build/tests/bench/raft_bench
//
// Not run by ctest.
#include <benchmark/benchmark.h>

#include "tests/raft/test_cluster.h"

namespace fencelock::raft {
namespace {

void BM_ProposeToCommit(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0));
  testing::TestCluster c({1, 2, 3});
  c.start();
  c.campaign(1);
  if (c.node(1).role() != Role::kLeader) {
    state.SkipWithError("no leader");
    return;
  }
  const std::string payload(128, 'x');
  uint64_t committed_entries = 0;
  for (auto _ : state) {
    uint64_t last = 0;
    for (int i = 0; i < batch; ++i) last = c.node(1).propose(payload).value().index;
    c.stabilize();  // replicate, persist, acknowledge, commit on the leader
    if (c.node(1).commit_index() < last) {
      state.SkipWithError("batch did not commit");
      return;
    }
    committed_entries += static_cast<uint64_t>(batch);
    if (c.node(1).commit_index() % 4096 < static_cast<uint64_t>(batch)) {
      state.PauseTiming();
      for (uint64_t id : {1, 2, 3}) {
        uint64_t applied = c.node(id).applied_index();
        if (applied > c.storage(id).first_index()) c.storage(id).compact(applied - 1);
        c.clear_applied(id);
      }
      state.ResumeTiming();
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(committed_entries));
  state.counters["entries_per_batch"] = batch;
}

BENCHMARK(BM_ProposeToCommit)->Arg(1)->Arg(16)->Arg(256);

}  // namespace
}  // namespace fencelock::raft

BENCHMARK_MAIN();
