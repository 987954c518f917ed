// Property test: the same random sequence of writes goes to MemoryStorage
// (the model) and to DiskLog, and every read must agree, including after
// reopening DiskLog. Seeded by Catch::rngSeed(); replay a failure with
//   storage_test "DiskLog reads exactly what MemoryStorage reads" --rng-seed <seed>
#include <catch2/catch.hpp>
#include <random>

#include "common/logging.h"
#include "raft/memory_storage.h"
#include "storage/disk_log.h"
#include "tests/storage/temp_dir.h"

namespace fencelock::storage {
namespace {

using testing::TempDir;

class ModelCheck {
 public:
  ModelCheck(const raft::MemoryStorage& model, const DiskLog& log, std::mt19937_64& rng)
      : model_(model), log_(log), rng_(rng) {}

  void compare_everything() {
    REQUIRE(log_.first_index() == model_.first_index());
    REQUIRE(log_.last_index() == model_.last_index());
    for (uint64_t i = model_.first_index() - 1; i <= model_.last_index(); ++i) {
      INFO("term(" << i << ")");
      REQUIRE(log_.term(i) == model_.term(i));
    }
    REQUIRE(log_.snapshot().SerializeAsString() == model_.snapshot().SerializeAsString());
    raft::InitialState a = log_.initial_state();
    raft::InitialState b = model_.initial_state();
    REQUIRE(a.hard_state.SerializeAsString() == b.hard_state.SerializeAsString());
    REQUIRE(a.conf_state.SerializeAsString() == b.conf_state.SerializeAsString());
    for (int i = 0; i < 5; ++i) compare_random_range();
  }

 private:
  void compare_random_range() {
    uint64_t first = model_.first_index();
    uint64_t end = model_.last_index() + 1;
    uint64_t lo = std::uniform_int_distribution<uint64_t>(first, end)(rng_);
    uint64_t hi = std::uniform_int_distribution<uint64_t>(lo, end)(rng_);
    uint64_t max_bytes = std::uniform_int_distribution<int>(0, 3)(rng_) == 0
                             ? UINT64_MAX
                             : std::uniform_int_distribution<uint64_t>(0, 400)(rng_);
    INFO("entries(" << lo << ", " << hi << ", " << max_bytes << ")");
    auto got = log_.entries(lo, hi, max_bytes);
    auto want = model_.entries(lo, hi, max_bytes);
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      REQUIRE(got[i].SerializeAsString() == want[i].SerializeAsString());
    }
  }

  const raft::MemoryStorage& model_;
  const DiskLog& log_;
  std::mt19937_64& rng_;
};

// One run of 400 random steps from `seed`.
void run_model(uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto pick = [&](uint64_t lo, uint64_t hi) {
    return std::uniform_int_distribution<uint64_t>(lo, hi)(rng);
  };

  TempDir dir;
  DiskLogOptions options;
  options.dir = dir.path() / "node";
  options.cluster_id = 1;
  options.node_id = 1;
  options.initial_conf_state.add_voters(1);
  options.sync = false;  // the model test is about semantics, not durability
  options.cache_max_entries = pick(0, 12);
  options.cache_max_bytes = pick(0, 1) == 0 ? 600 : UINT64_MAX;

  raft::MemoryStorage model(options.initial_conf_state);
  auto opened = DiskLog::open(options);
  REQUIRE(opened.ok());
  std::unique_ptr<DiskLog> log = std::move(opened).value();
  raftpb::HardState hard_state;
  uint64_t term = 1;
  int snapshot_count = 0;

  for (int step = 0; step < 400; ++step) {
    INFO("step " << step);
    uint64_t first = model.first_index();
    uint64_t last = model.last_index();
    uint64_t op = pick(0, 99);
    if (op < 60) {
      // save: a Ready with entries (possibly overwriting a suffix, possibly
      // starting below the compaction point) and maybe a hard state.
      if (pick(0, 4) == 0) ++term;
      // Raft never truncates a committed entry (§5.3 only replaces
      // uncommitted ones), and open() checks that the log reaches the commit.
      uint64_t commit = model.initial_state().hard_state.commit();
      uint64_t start = pick(std::max(commit + 1, first > 3 ? first - 3 : 1), last + 1);
      uint64_t count = pick(0, 12);
      std::vector<raftpb::Entry> entries;
      for (uint64_t i = 0; i < count; ++i) {
        raftpb::Entry entry;
        entry.set_index(start + i);
        entry.set_term(term);
        entry.set_type(pick(0, 9) == 0 ? raftpb::ENTRY_CONF_CHANGE : raftpb::ENTRY_NORMAL);
        entry.set_data(std::string(pick(0, 80), static_cast<char>('a' + pick(0, 25))));
        entries.push_back(std::move(entry));
      }
      bool with_hard_state = pick(0, 1) == 0;
      raft::MemoryStorage probe = model;
      probe.append(entries);
      if (with_hard_state) {
        hard_state.set_term(term);
        hard_state.set_vote(pick(0, 3));
        hard_state.set_commit(pick(0, probe.last_index()));
        model.set_hard_state(hard_state);
      }
      model.append(entries);
      REQUIRE(log->save(with_hard_state ? &hard_state : nullptr, entries).ok());
    } else if (op < 70) {
      uint64_t snap_index = model.snapshot().metadata().index();
      uint64_t lo = std::max(snap_index + 1, first - 1);
      if (lo <= last) {
        uint64_t index = pick(lo, last);
        raftpb::ConfState conf;
        conf.add_voters(pick(1, 5));
        std::string data = "sm-state-" + std::to_string(++snapshot_count);
        model.create_snapshot(index, conf, data);
        REQUIRE(log->create_snapshot(index, conf, data).ok());
      }
    } else if (op < 80) {
      if (first <= last) {
        uint64_t index = pick(first, last);
        model.compact(index);
        REQUIRE(log->compact(index).ok());
      }
    } else if (op < 85) {
      // A snapshot from the leader, newer than anything committed here.
      raftpb::Snapshot snapshot;
      uint64_t floor = std::max(
          {model.snapshot().metadata().index(), model.initial_state().hard_state.commit(), last});
      snapshot.mutable_metadata()->set_index(floor + pick(1, 5));
      snapshot.mutable_metadata()->set_term(++term);
      snapshot.mutable_metadata()->mutable_conf_state()->add_voters(pick(1, 5));
      snapshot.set_data("leader-state-" + std::to_string(++snapshot_count));
      model.apply_snapshot(snapshot);
      REQUIRE(log->apply_snapshot(snapshot).ok());
    } else if (op < 90) {
      log.reset();
      auto reopened = DiskLog::open(options);
      INFO(reopened.status().to_string());
      REQUIRE(reopened.ok());
      log = std::move(reopened).value();
    }
    ModelCheck(model, *log, rng).compare_everything();
  }
}

TEST_CASE("DiskLog reads exactly what MemoryStorage reads", "[storage][model]") {
  uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed
               << "; replay: storage_test \"DiskLog reads exactly what MemoryStorage "
                  "reads\" --rng-seed "
               << seed);
  run_model(seed);
}

// Hidden: storage_test "[sweep]" runs 500 seeds from the given one.
TEST_CASE("DiskLog matches MemoryStorage over many seeds", "[.][sweep]") {
  set_log_level("error");  // every reopen would log the no-fsync warning
  for (uint64_t seed = Catch::rngSeed(); seed < Catch::rngSeed() + 500; ++seed) {
    INFO("seed " << seed
                 << "; replay: storage_test \"DiskLog reads exactly what MemoryStorage "
                    "reads\" --rng-seed "
                 << seed);
    run_model(seed);
  }
}

}  // namespace
}  // namespace fencelock::storage
