// Benchmarks of the lock state machine (built, not run by ctest):
//   statemachine_bench                       all of them
//   statemachine_bench --benchmark_filter=Memory
// Targets (issue #4): >= 1,000,000 applied commands/s on one core, and
// <= 400 bytes per session holding one lock.
//
// Memory is measured two ways: the RSS delta (what the process really pays,
// malloc overhead included) and the live heap bytes counted by a replaced
// global operator new (malloc_usable_size of every live block).

#include <benchmark/benchmark.h>
#include <malloc.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "statemachine/lock_state_machine.h"
#include "tests/statemachine/sm_test_util.h"

namespace {
std::atomic<int64_t> g_live_heap_bytes{0};
}  // namespace

void* operator new(size_t size) {
  void* p = std::malloc(size == 0 ? 1 : size);
  if (p == nullptr) throw std::bad_alloc();
  g_live_heap_bytes.fetch_add(static_cast<int64_t>(malloc_usable_size(p)),
                              std::memory_order_relaxed);
  return p;
}
void operator delete(void* p) noexcept {
  if (p == nullptr) return;
  g_live_heap_bytes.fetch_sub(static_cast<int64_t>(malloc_usable_size(p)),
                              std::memory_order_relaxed);
  std::free(p);
}
void operator delete(void* p, size_t) noexcept {
  operator delete(p);
}

namespace fencelock::sm {
namespace {

using testing::acquire_cmd;
using testing::open_cmd;
using testing::release_cmd;

int64_t rss_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  long pages = 0, resident = 0;
  if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
  std::fclose(f);
  return static_cast<int64_t>(resident) * sysconf(_SC_PAGESIZE);
}

std::string lock_name(uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "locks/%07llu", static_cast<unsigned long long>(i));
  return buf;
}

// Acquire/release pairs: `sessions` sessions each take and release their
// own lock, round robin. Every command creates or erases a lock.
void BM_AcquireRelease(benchmark::State& state) {
  const uint64_t session_count = static_cast<uint64_t>(state.range(0));
  Limits limits;
  limits.max_sessions = session_count;
  limits.max_sessions_per_principal = session_count;  // every session is principal ""
  LockStateMachine sm(limits);
  uint64_t index = 0;
  std::vector<uint64_t> sessions;
  std::vector<lockpb::Command> acquires, releases;
  for (uint64_t i = 0; i < session_count; ++i) {
    sessions.push_back(sm.apply(++index, open_cmd()).session_id);
    acquires.push_back(acquire_cmd(sessions.back(), 0, lock_name(i)));
    releases.push_back(release_cmd(sessions.back(), 0, lock_name(i), 0));
  }
  uint64_t sequence = 0;
  uint64_t i = 0;
  for (auto _ : state) {
    ++sequence;
    lockpb::Command& acquire = acquires[i];
    acquire.mutable_acquire()->mutable_key()->set_sequence(2 * sequence);
    ApplyResult granted = sm.apply(++index, acquire);
    lockpb::Command& release = releases[i];
    release.mutable_release()->mutable_key()->set_sequence(2 * sequence + 1);
    release.mutable_release()->set_token(granted.granted->token());
    ApplyResult released = sm.apply(++index, release);
    benchmark::DoNotOptimize(released);
    if (++i == session_count) i = 0;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * 2);
  state.counters["commands_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * 2, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_AcquireRelease)->Arg(1000)->Arg(100'000);

// The same pairs as raw log entry bytes: serialize (the leader's proposal),
// then parse and apply (what every node does with a committed entry).
void BM_AcquireReleaseSerializeParseApply(benchmark::State& state) {
  Limits limits;
  LockStateMachine sm(limits);
  uint64_t index = 0;
  const uint64_t session = sm.apply(++index, open_cmd()).session_id;
  uint64_t sequence = 0;
  std::string acquire_bytes, release_bytes;
  lockpb::Command acquire = acquire_cmd(session, 0, "locks/hot");
  lockpb::Command release = release_cmd(session, 0, "locks/hot", 0);
  for (auto _ : state) {
    acquire.mutable_acquire()->mutable_key()->set_sequence(++sequence);
    acquire.SerializeToString(&acquire_bytes);
    ApplyResult granted = sm.apply(++index, std::string_view(acquire_bytes));
    release.mutable_release()->mutable_key()->set_sequence(++sequence);
    release.mutable_release()->set_token(granted.granted->token());
    release.SerializeToString(&release_bytes);
    benchmark::DoNotOptimize(sm.apply(++index, std::string_view(release_bytes)));
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * 2);
}
BENCHMARK(BM_AcquireReleaseSerializeParseApply);

// A contended lock: one holder, one waiter per release is granted next.
void BM_ContendedHandOff(benchmark::State& state) {
  LockStateMachine sm;
  uint64_t index = 0;
  const uint64_t a = sm.apply(++index, open_cmd()).session_id;
  const uint64_t b = sm.apply(++index, open_cmd()).session_id;
  uint64_t seq_a = 0, seq_b = 0;
  testing::AcquireArgs wait;
  wait.wait_ms = 10'000;
  uint64_t holder = a,
           token = sm.apply(++index, acquire_cmd(a, ++seq_a, "hot", wait)).granted->token();
  for (auto _ : state) {
    // The other session queues; the holder releases, which grants it.
    uint64_t other = holder == a ? b : a;
    uint64_t& other_seq = holder == a ? seq_b : seq_a;
    uint64_t& holder_seq = holder == a ? seq_a : seq_b;
    sm.apply(++index, acquire_cmd(other, ++other_seq, "hot", wait));
    ApplyResult r = sm.apply(++index, release_cmd(holder, ++holder_seq, "hot", token));
    token = r.grants.front().sequencer.token();
    holder = other;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * 2);
}
BENCHMARK(BM_ContendedHandOff);

// Snapshot and restore of `sessions` sessions each holding one lock.
void BM_SnapshotRestore(benchmark::State& state) {
  const uint64_t n = static_cast<uint64_t>(state.range(0));
  Limits limits;
  limits.max_sessions = n;
  limits.max_sessions_per_principal = n;  // every session is principal ""
  LockStateMachine sm(limits);
  uint64_t index = 0;
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t session = sm.apply(++index, open_cmd()).session_id;
    sm.apply(++index, acquire_cmd(session, 1, lock_name(i)));
  }
  size_t bytes = 0;
  for (auto _ : state) {
    std::string snapshot = sm.snapshot();
    bytes = snapshot.size();
    LockStateMachine copy(limits);
    if (!copy.restore(snapshot).ok()) state.SkipWithError("restore failed");
    state.PauseTiming();
    { LockStateMachine discard = std::move(copy); }
    state.ResumeTiming();
  }
  state.counters["snapshot_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_SnapshotRestore)->Arg(100'000)->Unit(benchmark::kMillisecond);

// A state like the one a snapshot stall is measured on: `locks` locks held
// by sessions of 10,000 locks each, each grant with a 1 KiB value.
std::unique_ptr<LockStateMachine> state_with_values(uint64_t locks) {
  Limits limits;
  limits.max_locks = locks;
  auto sm = std::make_unique<LockStateMachine>(limits);
  uint64_t index = 0;
  testing::AcquireArgs args;
  args.value = std::string(kMaxValueBytes, 'v');
  uint64_t session = 0;
  for (uint64_t i = 0; i < locks; ++i) {
    if (i % limits.max_locks_per_session == 0) session = sm->apply(++index, open_cmd()).session_id;
    sm->apply(++index, acquire_cmd(session, i + 1, lock_name(i), args));
  }
  return sm;
}

// What a snapshot costs the node's loop: taking an image (the records are
// shared, not copied) against encoding the whole state, which now runs on
// a background thread (server::Daemon) and once ran on the loop.
void BM_SnapshotImage(benchmark::State& state) {
  auto sm = state_with_values(static_cast<uint64_t>(state.range(0)));
  for (auto _ : state) {
    LockStateMachine::Image image = sm->image();
    benchmark::DoNotOptimize(image);
  }
}
BENCHMARK(BM_SnapshotImage)->Arg(200'000)->Unit(benchmark::kMillisecond);

void BM_SnapshotEncode(benchmark::State& state) {
  auto sm = state_with_values(static_cast<uint64_t>(state.range(0)));
  size_t bytes = 0;
  for (auto _ : state) {
    std::string snapshot = sm->snapshot();
    bytes = snapshot.size();
  }
  state.counters["snapshot_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_SnapshotEncode)->Arg(200'000)->Unit(benchmark::kMillisecond);

// Memory per session holding one lock, with 1,000,000 of them. The second
// argument is the lock name length: 13 bytes fits std::string's inline
// buffer, 27 bytes ("jobs/nightly-report/0000001") needs a heap block.
void BM_MemoryPerSessionWithLock(benchmark::State& state) {
  const uint64_t n = static_cast<uint64_t>(state.range(0));
  const bool long_names = state.range(1) > 15;
  for (auto _ : state) {
    malloc_trim(0);
    const int64_t rss_before = rss_bytes();
    const int64_t heap_before = g_live_heap_bytes.load();
    Limits limits;
    limits.max_sessions = n;
    limits.max_sessions_per_principal = n;  // every session is principal ""
    limits.max_locks = n;
    auto sm = std::make_unique<LockStateMachine>(limits);
    uint64_t index = 0;
    {
      lockpb::Command open = open_cmd(0, "worker");
      lockpb::Command acquire = acquire_cmd(0, 1, "");
      for (uint64_t i = 0; i < n; ++i) {
        const uint64_t session = sm->apply(++index, open).session_id;
        acquire.mutable_acquire()->mutable_key()->set_session_id(session);
        acquire.mutable_acquire()->set_lock(
            long_names ? "jobs/nightly-report/" + lock_name(i).substr(6) : lock_name(i));
        ApplyResult r = sm->apply(++index, acquire);
        if (!r.granted) state.SkipWithError("acquire failed");
      }
    }
    const int64_t heap = g_live_heap_bytes.load() - heap_before;
    const int64_t rss = rss_bytes() - rss_before;
    state.counters["sessions"] = static_cast<double>(sm->session_count());
    state.counters["heap_bytes_per_session_lock"] = static_cast<double>(heap) / n;
    state.counters["rss_bytes_per_session_lock"] = static_cast<double>(rss) / n;
    state.PauseTiming();
    sm.reset();
    state.ResumeTiming();
  }
}
BENCHMARK(BM_MemoryPerSessionWithLock)
    ->Args({1'000'000, 13})
    ->Args({1'000'000, 27})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace fencelock::sm

BENCHMARK_MAIN();
