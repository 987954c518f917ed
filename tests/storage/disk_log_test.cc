#include "storage/disk_log.h"

#include <catch2/catch.hpp>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <thread>

#include "storage/snapshot_file.h"
#include "tests/storage/temp_dir.h"

namespace fencelock::storage {
namespace {

using testing::TempDir;

raftpb::Entry make_entry(uint64_t index, uint64_t term, std::string data = {}) {
  raftpb::Entry entry;
  entry.set_index(index);
  entry.set_term(term);
  entry.set_data(data.empty() ? "cmd-" + std::to_string(index) + "-" + std::to_string(term)
                              : std::move(data));
  return entry;
}

std::vector<raftpb::Entry> make_entries(uint64_t lo, uint64_t hi, uint64_t term) {
  std::vector<raftpb::Entry> out;
  for (uint64_t i = lo; i < hi; ++i) out.push_back(make_entry(i, term));
  return out;
}

raftpb::HardState make_hard_state(uint64_t term, uint64_t vote, uint64_t commit) {
  raftpb::HardState hs;
  hs.set_term(term);
  hs.set_vote(vote);
  hs.set_commit(commit);
  return hs;
}

const raftpb::HardState* ptr(const raftpb::HardState& hard_state) {
  return &hard_state;
}

DiskLogOptions options_for(const TempDir& dir) {
  DiskLogOptions options;
  options.dir = dir.path() / "node";
  options.cluster_id = 7;
  options.node_id = 2;
  options.initial_conf_state.add_voters(1);
  options.initial_conf_state.add_voters(2);
  options.initial_conf_state.add_voters(3);
  return options;
}

std::unique_ptr<DiskLog> open_or_fail(const DiskLogOptions& options) {
  auto log = DiskLog::open(options);
  INFO(log.status().to_string());
  REQUIRE(log.ok());
  return std::move(log).value();
}

void require_terms(const DiskLog& log, uint64_t lo, uint64_t hi, uint64_t term) {
  for (uint64_t i = lo; i < hi; ++i) {
    INFO("index " << i);
    REQUIRE(log.term(i) == term);
  }
}

TEST_CASE("a fresh directory starts with an empty log and the initial configuration", "[storage]") {
  TempDir dir;
  auto log = open_or_fail(options_for(dir));
  CHECK(log->first_index() == 1);
  CHECK(log->last_index() == 0);
  CHECK(log->term(0) == 0);
  CHECK(log->snapshot().metadata().index() == 0);
  raft::InitialState state = log->initial_state();
  CHECK(state.hard_state.term() == 0);
  REQUIRE(state.conf_state.voters_size() == 3);
  CHECK(state.conf_state.voters(2) == 3);
  CHECK(std::filesystem::is_directory(dir.path() / "node" / "db"));
  CHECK(std::filesystem::is_directory(dir.path() / "node" / "snap"));
}

TEST_CASE("a fresh directory with an initial snapshot starts its log after the snapshot",
          "[storage]") {
  TempDir dir;
  DiskLogOptions options = options_for(dir);
  options.initial_snapshot.mutable_metadata()->set_index(40);
  options.initial_snapshot.mutable_metadata()->set_term(6);
  options.initial_snapshot.mutable_metadata()->mutable_conf_state()->add_voters(9);  // ignored
  options.initial_snapshot.set_data("restored state");
  for (int open = 0; open < 2; ++open) {
    INFO("open " << open);
    auto log = open_or_fail(options);
    CHECK(log->first_index() == 41);
    CHECK(log->last_index() == (open == 0 ? 40 : 42));
    CHECK(log->term(40) == 6);
    CHECK(log->snapshot().metadata().index() == 40);
    CHECK(log->snapshot().metadata().term() == 6);
    CHECK(log->snapshot().data() == "restored state");
    raft::InitialState state = log->initial_state();
    CHECK(state.hard_state.term() == 6);
    CHECK(state.hard_state.vote() == 0);
    CHECK(state.hard_state.commit() == 40);
    REQUIRE(state.conf_state.voters_size() == 3);
    CHECK(state.conf_state.voters(0) == 1);
    // The log goes on after the snapshot.
    if (open == 0) REQUIRE(log->save(nullptr, make_entries(41, 43, 7)).ok());
    CHECK(log->last_index() == 42);
    // A later open ignores the option: the directory holds a log.
    options.initial_snapshot.set_data("something else");
  }
  CHECK(std::filesystem::exists(dir.path() / "node" / "snap" / snapshot_file_name(6, 40)));
}

TEST_CASE("appended entries and hard state survive a reopen", "[storage]") {
  TempDir dir;
  DiskLogOptions options = options_for(dir);
  {
    auto log = open_or_fail(options);
    raftpb::HardState hs = make_hard_state(1, 2, 0);
    REQUIRE(log->save(&hs, make_entries(1, 11, 1)).ok());
    hs.set_commit(8);
    REQUIRE(log->save(&hs, {}).ok());
    REQUIRE(log->save(nullptr, make_entries(11, 21, 2)).ok());
    CHECK(log->last_index() == 20);
  }
  auto log = open_or_fail(options);
  CHECK(log->first_index() == 1);
  CHECK(log->last_index() == 20);
  require_terms(*log, 1, 11, 1);
  require_terms(*log, 11, 21, 2);
  auto entries = log->entries(5, 15, UINT64_MAX);
  REQUIRE(entries.size() == 10);
  CHECK(entries[0].data() == "cmd-5-1");
  CHECK(entries[9].data() == "cmd-14-2");
  raftpb::HardState hs = log->initial_state().hard_state;
  CHECK(hs.term() == 1);
  CHECK(hs.vote() == 2);
  CHECK(hs.commit() == 8);
}

TEST_CASE("a save without sync is written all the same: a process crash keeps it", "[storage]") {
  TempDir dir;
  DiskLogOptions options = options_for(dir);
  auto log = open_or_fail(options);
  REQUIRE(log->save(ptr(make_hard_state(1, 2, 0)), make_entries(1, 6, 1)).ok());
  raftpb::HardState commit_only = make_hard_state(1, 2, 5);
  REQUIRE(log->save(&commit_only, {}, /*sync=*/false).ok());
  log.reset();
  log = open_or_fail(options);
  CHECK(log->initial_state().hard_state.commit() == 5);
  CHECK(log->last_index() == 5);
}

TEST_CASE("an append at an existing index replaces the conflicting suffix (§5.3)", "[storage]") {
  TempDir dir;
  DiskLogOptions options = options_for(dir);
  uint64_t tail = GENERATE(10, 200);  // point deletes and DeleteRange
  {
    auto log = open_or_fail(options);
    REQUIRE(log->save(nullptr, make_entries(1, tail + 1, 1)).ok());
    REQUIRE(log->save(nullptr, make_entries(4, 6, 3)).ok());
    CHECK(log->last_index() == 5);
    require_terms(*log, 1, 4, 1);
    require_terms(*log, 4, 6, 3);
    REQUIRE(log->save(nullptr, make_entries(6, 8, 3)).ok());
  }
  auto log = open_or_fail(options);
  CHECK(log->last_index() == 7);
  require_terms(*log, 1, 4, 1);
  require_terms(*log, 4, 8, 3);
  CHECK(log->entries(1, 8, UINT64_MAX).back().data() == "cmd-7-3");
}

TEST_CASE("save rejects gaps and non-contiguous entries and writes nothing", "[storage]") {
  TempDir dir;
  auto log = open_or_fail(options_for(dir));
  REQUIRE(log->save(nullptr, make_entries(1, 4, 1)).ok());
  Status gap = log->save(nullptr, make_entries(6, 8, 1));
  CHECK(gap.code() == lockpb::INVALID_ARGUMENT);
  std::vector<raftpb::Entry> holes = {make_entry(4, 1), make_entry(6, 1)};
  raftpb::HardState hs = make_hard_state(9, 9, 1);
  CHECK(log->save(&hs, holes).code() == lockpb::INVALID_ARGUMENT);
  CHECK(log->last_index() == 3);
  CHECK(log->initial_state().hard_state.term() == 0);
}

TEST_CASE("entries honours max_bytes from RocksDB and from the cache alike", "[storage]") {
  TempDir dir;
  DiskLogOptions options = options_for(dir);
  options.cache_max_entries = 5;
  auto log = open_or_fail(options);
  REQUIRE(log->save(nullptr, make_entries(1, 21, 1)).ok());
  uint64_t small = make_entry(1, 1).ByteSizeLong();    // indices 1..9
  uint64_t large = make_entry(10, 1).ByteSizeLong();   // indices 10..99
  CHECK(log->entries(1, 21, 0).size() == 1);           // at least one entry
  CHECK(log->entries(1, 21, 3 * small).size() == 3);   // all from RocksDB
  CHECK(log->entries(14, 21, 4 * large).size() == 4);  // across the cache boundary
  CHECK(log->entries(17, 21, 2 * large).size() == 2);  // all from the cache
  CHECK(log->entries(3, 3, 100).empty());
  auto all = log->entries(1, 21, UINT64_MAX);
  REQUIRE(all.size() == 20);
  for (uint64_t i = 0; i < 20; ++i) CHECK(all[i].index() == i + 1);
}

TEST_CASE("a local snapshot is durable and replaces the previous snapshot file", "[storage]") {
  TempDir dir;
  DiskLogOptions options = options_for(dir);
  raftpb::ConfState conf;
  conf.add_voters(2);
  conf.add_learners(4);
  {
    auto log = open_or_fail(options);
    REQUIRE(log->save(nullptr, make_entries(1, 6, 1)).ok());
    REQUIRE(log->save(nullptr, make_entries(6, 11, 2)).ok());
    REQUIRE(log->create_snapshot(4, conf, "state-at-4").ok());
    REQUIRE(log->create_snapshot(8, conf, "state-at-8").ok());
    CHECK(log->create_snapshot(7, conf, "older").ok());  // ignored
    CHECK(log->create_snapshot(11, conf, "x").code() == lockpb::INVALID_ARGUMENT);
    CHECK(log->first_index() == 1);  // entries are kept until compaction
  }
  std::vector<std::string> files;
  for (const auto& f : std::filesystem::directory_iterator(options.dir / "snap")) {
    files.push_back(f.path().filename().string());
  }
  REQUIRE(files == std::vector<std::string>{snapshot_file_name(2, 8)});

  auto log = open_or_fail(options);
  raftpb::Snapshot snapshot = log->snapshot();
  CHECK(snapshot.metadata().index() == 8);
  CHECK(snapshot.metadata().term() == 2);
  CHECK(snapshot.data() == "state-at-8");
  CHECK(log->initial_state().conf_state.learners_size() == 1);
  CHECK(log->first_index() == 1);
  CHECK(log->last_index() == 10);
}

TEST_CASE("a snapshot from the leader replaces the whole log", "[storage]") {
  TempDir dir;
  DiskLogOptions options = options_for(dir);
  {
    auto log = open_or_fail(options);
    REQUIRE(log->save(nullptr, make_entries(1, 31, 1)).ok());
    raftpb::Snapshot snapshot;
    snapshot.mutable_metadata()->set_index(20);
    snapshot.mutable_metadata()->set_term(4);
    snapshot.mutable_metadata()->mutable_conf_state()->add_voters(9);
    snapshot.set_data("leader-state");
    REQUIRE(log->apply_snapshot(snapshot).ok());
    CHECK(log->first_index() == 21);
    CHECK(log->last_index() == 20);
    CHECK(log->term(20) == 4);
    raftpb::HardState hs = make_hard_state(4, 0, 20);
    REQUIRE(log->save(&hs, make_entries(21, 23, 4)).ok());
  }
  auto log = open_or_fail(options);
  CHECK(log->first_index() == 21);
  CHECK(log->last_index() == 22);
  CHECK(log->term(20) == 4);
  require_terms(*log, 21, 23, 4);
  CHECK(log->snapshot().data() == "leader-state");
  CHECK(log->initial_state().conf_state.voters(0) == 9);
}

std::vector<std::string> snapshot_files(const DiskLogOptions& options) {
  std::vector<std::string> files;
  for (const auto& f : std::filesystem::directory_iterator(options.dir / "snap")) {
    files.push_back(f.path().filename().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

TEST_CASE("a snapshot taken in steps is written off the loop and recorded on it", "[storage]") {
  TempDir dir;
  DiskLogOptions options = options_for(dir);
  raftpb::ConfState conf = options.initial_conf_state;
  {
    auto log = open_or_fail(options);
    REQUIRE(log->save(nullptr, make_entries(1, 11, 1)).ok());
    REQUIRE(log->save(nullptr, make_entries(11, 21, 2)).ok());
    REQUIRE(log->create_snapshot(5, conf, "state-at-5").ok());
    CHECK(log->begin_snapshot(5).code() == lockpb::INVALID_ARGUMENT);   // not newer
    CHECK(log->begin_snapshot(21).code() == lockpb::INVALID_ARGUMENT);  // beyond the log
    auto ticket = log->begin_snapshot(15);
    REQUIRE(ticket.ok());
    CHECK(ticket.value().term == 2);
    auto data = std::make_shared<const std::string>(std::string(300000, 's'));
    // Step 2 on another thread, while the loop goes on appending.
    Status written;
    std::thread writer([&] { written = log->write_snapshot(ticket.value(), *data); });
    REQUIRE(log->save(nullptr, make_entries(21, 41, 2)).ok());
    writer.join();
    REQUIRE(written.ok());
    CHECK(log->snapshot_metadata().index() == 5);  // not recorded yet
    REQUIRE(log->finish_snapshot(ticket.value(), conf, data).ok());
    CHECK(log->snapshot_metadata().index() == 15);
    CHECK(log->snapshot_data().get() == data.get());  // shared, not copied
    raftpb::Snapshot to_send = log->snapshot_to_send();
    CHECK(to_send.metadata().index() == 15);
    CHECK(to_send.metadata().term() == 2);
    CHECK(to_send.data().empty());
    // The previous file is left for the caller to remove off the loop.
    auto obsolete = log->obsolete_snapshot_files();
    CHECK(obsolete == std::vector<std::string>{(options.dir / "snap" / snapshot_file_name(1, 5)).string()});
    remove_files(obsolete, true);
    CHECK(snapshot_files(options) == std::vector<std::string>{snapshot_file_name(2, 15)});
    CHECK(log->obsolete_snapshot_files().empty());
  }
  auto log = open_or_fail(options);
  CHECK(log->snapshot_metadata().index() == 15);
  CHECK(*log->snapshot_data() == std::string(300000, 's'));
}

TEST_CASE("a crash before a snapshot taken in steps is recorded leaves the previous one",
          "[storage]") {
  TempDir dir;
  DiskLogOptions options = options_for(dir);
  {
    auto log = open_or_fail(options);
    REQUIRE(log->save(nullptr, make_entries(1, 11, 1)).ok());
    REQUIRE(log->create_snapshot(4, {}, "state-at-4").ok());
    auto ticket = log->begin_snapshot(9);
    REQUIRE(ticket.ok());
    REQUIRE(log->write_snapshot(ticket.value(), "state-at-9").ok());
    // The process dies here: the file is written, RocksDB does not name it.
  }
  auto log = open_or_fail(options);
  CHECK(log->snapshot_metadata().index() == 4);
  CHECK(*log->snapshot_data() == "state-at-4");
  CHECK(snapshot_files(options) == std::vector<std::string>{snapshot_file_name(1, 4)});
}

TEST_CASE("a previous snapshot's file left by a crash after the new one was recorded is removed "
          "on open",
          "[storage]") {
  TempDir dir;
  DiskLogOptions options = options_for(dir);
  {
    auto log = open_or_fail(options);
    REQUIRE(log->save(nullptr, make_entries(1, 11, 1)).ok());
    REQUIRE(log->create_snapshot(4, {}, "state-at-4").ok());
    auto ticket = log->begin_snapshot(9);
    REQUIRE(ticket.ok());
    REQUIRE(log->write_snapshot(ticket.value(), "state-at-9").ok());
    REQUIRE(log->finish_snapshot(ticket.value(), {}, std::make_shared<const std::string>("state-at-9"))
                .ok());
    CHECK(snapshot_files(options) ==
          std::vector<std::string>{snapshot_file_name(1, 4), snapshot_file_name(1, 9)});
  }
  auto log = open_or_fail(options);
  CHECK(*log->snapshot_data() == "state-at-9");
  CHECK(snapshot_files(options) == std::vector<std::string>{snapshot_file_name(1, 9)});
}

TEST_CASE("a snapshot installed while one is being taken wins; the other is abandoned",
          "[storage]") {
  TempDir dir;
  DiskLogOptions options = options_for(dir);
  auto log = open_or_fail(options);
  REQUIRE(log->save(nullptr, make_entries(1, 11, 1)).ok());
  auto ticket = log->begin_snapshot(8);
  REQUIRE(ticket.ok());
  REQUIRE(log->write_snapshot(ticket.value(), "state-at-8").ok());
  raftpb::Snapshot installed;
  installed.mutable_metadata()->set_index(30);
  installed.mutable_metadata()->set_term(3);
  installed.set_data("leader-state");
  REQUIRE(log->apply_snapshot(installed).ok());
  // The install removed old files, not the one being taken.
  CHECK(snapshot_files(options) ==
        std::vector<std::string>{snapshot_file_name(1, 8), snapshot_file_name(3, 30)});
  auto data = std::make_shared<const std::string>("state-at-8");
  CHECK(log->finish_snapshot(ticket.value(), {}, data).code() == lockpb::INVALID_ARGUMENT);
  log->abandon_snapshot(ticket.value());
  CHECK(snapshot_files(options) == std::vector<std::string>{snapshot_file_name(3, 30)});
  CHECK(log->snapshot_metadata().index() == 30);
  CHECK(*log->snapshot_data() == "leader-state");
}

TEST_CASE("compaction discards the prefix and keeps the compaction point's term", "[storage]") {
  TempDir dir;
  DiskLogOptions options = options_for(dir);
  options.keep_entries_after_snapshot = 5;
  options.cache_max_entries = 8;
  {
    auto log = open_or_fail(options);
    REQUIRE(log->save(nullptr, make_entries(1, 51, 1)).ok());
    REQUIRE(log->save(nullptr, make_entries(51, 101, 2)).ok());
    REQUIRE(log->compact(10).ok());
    CHECK(log->first_index() == 11);
    CHECK(log->term(10) == 1);
    CHECK(log->compact(5).ok());  // no-op
    CHECK(log->compact(101).code() == lockpb::INVALID_ARGUMENT);
    REQUIRE(log->create_snapshot(60, {}, "s60").ok());
    REQUIRE(log->compact_to_snapshot().ok());
    CHECK(log->first_index() == 56);
    CHECK(log->term(55) == 2);
  }
  auto log = open_or_fail(options);
  CHECK(log->first_index() == 56);
  CHECK(log->last_index() == 100);
  CHECK(log->term(55) == 2);
  auto entries = log->entries(56, 101, UINT64_MAX);
  REQUIRE(entries.size() == 45);
  CHECK(entries.front().index() == 56);
}

TEST_CASE("opening a directory with another cluster or node id is a clear error", "[storage]") {
  TempDir dir;
  DiskLogOptions options = options_for(dir);
  { open_or_fail(options); }
  options.node_id = 3;
  auto log = DiskLog::open(options);
  REQUIRE_FALSE(log.ok());
  CHECK(log.code() == lockpb::FAILED_PRECONDITION);
  const std::string& message = log.status().message();
  CHECK_THAT(message, Catch::Contains((dir.path() / "node").string()));
  CHECK_THAT(message, Catch::Contains("cluster 7 node 2"));
  CHECK_THAT(message, Catch::Contains("cluster 7 node 3"));
}

TEST_CASE("a data directory that cannot be created is a clear error", "[storage]") {
  TempDir dir;
  std::ofstream(dir.path() / "file") << "not a directory";
  DiskLogOptions options = options_for(dir);
  options.dir = dir.path() / "file" / "node";
  auto log = DiskLog::open(options);
  REQUIRE_FALSE(log.ok());
  CHECK(log.code() == lockpb::INTERNAL);
  CHECK_THAT(log.status().message(), Catch::Contains("cannot create data directory"));
  CHECK_THAT(log.status().message(), Catch::Contains(options.dir.string()));
}

TEST_CASE("a directory is opened by one DiskLog at a time", "[storage]") {
  TempDir dir;
  auto first = open_or_fail(options_for(dir));
  auto second = DiskLog::open(options_for(dir));
  REQUIRE_FALSE(second.ok());
  CHECK(second.code() == lockpb::INTERNAL);
}

TEST_CASE("leftover temporary snapshot files are removed on open", "[storage]") {
  TempDir dir;
  DiskLogOptions options = options_for(dir);
  { open_or_fail(options); }
  std::filesystem::path stray = options.dir / "snap" / (snapshot_file_name(1, 5) + ".tmp");
  std::ofstream(stray) << "half";
  std::filesystem::path keep = options.dir / "snap" / "README";
  std::ofstream(keep) << "not ours";
  open_or_fail(options);
  CHECK_FALSE(std::filesystem::exists(stray));
  CHECK(std::filesystem::exists(keep));
}

TEST_CASE("sync = false still persists across a clean reopen", "[storage]") {
  TempDir dir;
  DiskLogOptions options = options_for(dir);
  options.sync = false;
  {
    auto log = open_or_fail(options);
    REQUIRE(log->save(nullptr, make_entries(1, 4, 1)).ok());
    REQUIRE(log->create_snapshot(2, {}, "two").ok());
  }
  auto log = open_or_fail(options);
  CHECK(log->last_index() == 3);
  CHECK(log->snapshot().data() == "two");
}

TEST_CASE("snapshot files round-trip and reject a wrong index", "[storage]") {
  TempDir dir;
  std::filesystem::path path = dir.path() / snapshot_file_name(3, 9);
  std::string data(100000, 'x');
  REQUIRE(write_snapshot_file(path, 9, 3, data, true).ok());
  auto read = read_snapshot_file(path, 9, 3);
  REQUIRE(read.ok());
  CHECK(read.value() == data);
  auto wrong = read_snapshot_file(path, 10, 3);
  REQUIRE_FALSE(wrong.ok());
  CHECK_THAT(wrong.status().message(), Catch::Contains("expected index 10"));
  CHECK(snapshot_file_name(3, 42) == "0000000000000003-000000000000002a.snap");
}

}  // namespace
}  // namespace fencelock::storage
