// Group commit benchmark: entries per second appended with sync at batch
// sizes 1, 16 and 256, next to the raw fdatasync rate of the same directory
// (the physical limit on synced writes per second). Built, not run by ctest:
//
//   FENCELOCK_BENCH_DIR=/path/on/the/data/disk build/tests/storage_bench
//
// The directory defaults to $TMPDIR, then /tmp. Compare BM_Append's
// entries_per_second with BM_Fdatasync's syncs_per_second: with one fsync per
// save(), batch 256 should reach at least 100 times the fsync rate.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "common/logging.h"
#include "storage/disk_log.h"

namespace fencelock::storage {
namespace {

// A fresh directory inside the benchmark directory, removed afterwards.
class BenchDir {
 public:
  BenchDir() {
    const char* base = std::getenv("FENCELOCK_BENCH_DIR");
    if (base == nullptr || *base == '\0') base = std::getenv("TMPDIR");
    std::string pattern =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/fencelock-bench-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    path_ = pattern;
  }
  ~BenchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

constexpr size_t kEntryDataBytes = 100;

void BM_Fdatasync(benchmark::State& state) {
  BenchDir dir;
  std::string path = (dir.path() / "probe").string();
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    state.SkipWithError("cannot create the probe file");
    return;
  }
  std::string record(kEntryDataBytes, 'x');
  for (auto _ : state) {
    if (::write(fd, record.data(), record.size()) != static_cast<ssize_t>(record.size()) ||
        ::fdatasync(fd) != 0) {
      state.SkipWithError("write or fdatasync failed");
      break;
    }
  }
  ::close(fd);
  state.counters["syncs_per_second"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Fdatasync)->UseRealTime()->MinTime(2.0);

void BM_Append(benchmark::State& state) {
  set_log_level("warn");
  BenchDir dir;
  DiskLogOptions options;
  options.dir = dir.path() / "node";
  options.cluster_id = 1;
  options.node_id = 1;
  options.initial_conf_state.add_voters(1);
  auto opened = DiskLog::open(options);
  if (!opened.ok()) {
    state.SkipWithError(opened.status().to_string().c_str());
    return;
  }
  std::unique_ptr<DiskLog> log = std::move(opened).value();
  const uint64_t batch = static_cast<uint64_t>(state.range(0));
  std::vector<raftpb::Entry> entries(batch);
  for (auto& entry : entries) {
    entry.set_term(1);
    entry.set_data(std::string(kEntryDataBytes, 'x'));
  }
  raftpb::HardState hard_state;
  hard_state.set_term(1);
  hard_state.set_vote(1);
  uint64_t next = 1;
  for (auto _ : state) {
    for (auto& entry : entries) entry.set_index(next++);
    hard_state.set_commit(next - 1 - batch);
    Status status = log->save(&hard_state, entries);
    if (!status.ok()) {
      state.SkipWithError(status.to_string().c_str());
      break;
    }
  }
  double entries_written = static_cast<double>(state.iterations() * batch);
  state.SetItemsProcessed(static_cast<int64_t>(entries_written));
  state.counters["entries_per_second"] =
      benchmark::Counter(entries_written, benchmark::Counter::kIsRate);
  state.counters["syncs_per_second"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Append)->Arg(1)->Arg(16)->Arg(256)->UseRealTime()->MinTime(2.0);

}  // namespace
}  // namespace fencelock::storage

BENCHMARK_MAIN();
