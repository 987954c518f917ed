// A damaged store stops the node with a message naming the problem and the
// path: open() returns an error, never a partially recovered log.
#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "storage/disk_log.h"
#include "storage/snapshot_file.h"
#include "tests/storage/temp_dir.h"

namespace fencelock::storage {
namespace {

using testing::TempDir;

DiskLogOptions options_for(const TempDir& dir) {
  DiskLogOptions options;
  options.dir = dir.path() / "node";
  options.cluster_id = 1;
  options.node_id = 1;
  options.initial_conf_state.add_voters(1);
  return options;
}

// A log with entries 1..40 (term 1), commit 30, and a snapshot at 30.
void build_log(const DiskLogOptions& options) {
  auto log = DiskLog::open(options);
  REQUIRE(log.ok());
  std::vector<raftpb::Entry> entries;
  for (uint64_t i = 1; i <= 40; ++i) {
    raftpb::Entry entry;
    entry.set_index(i);
    entry.set_term(1);
    entry.set_data(std::string(200, static_cast<char>('a' + i % 26)));
    entries.push_back(entry);
  }
  raftpb::HardState hs;
  hs.set_term(1);
  hs.set_commit(30);
  REQUIRE(log.value()->save(&hs, entries).ok());
  REQUIRE(
      log.value()->create_snapshot(30, options.initial_conf_state, std::string(5000, 's')).ok());
}

// Runs `change` on the raw RocksDB of the log (the log must be closed).
template <typename Change>
void with_raw_db(const DiskLogOptions& options, Change change) {
  rocksdb::DB* raw = nullptr;
  rocksdb::Options db_options;
  REQUIRE(rocksdb::DB::Open(db_options, (options.dir / "db").string(), &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  change(*db);
  REQUIRE(db->Close().ok());
}

std::string entry_key(uint64_t index) {
  std::string key(1, 'e');
  for (int shift = 56; shift >= 0; shift -= 8) key.push_back(static_cast<char>(index >> shift));
  return key;
}

void require_open_fails(const DiskLogOptions& options, const std::string& path_part,
                        const std::string& problem) {
  auto log = DiskLog::open(options);
  REQUIRE_FALSE(log.ok());
  INFO(log.status().to_string());
  CHECK(log.code() == lockpb::INTERNAL);
  CHECK_THAT(log.status().message(), Catch::Contains(path_part));
  CHECK_THAT(log.status().message(), Catch::Contains(problem));
}

std::filesystem::path snapshot_path(const DiskLogOptions& options) {
  return options.dir / "snap" / snapshot_file_name(1, 30);
}

TEST_CASE("a flipped byte in the snapshot file is reported as a checksum mismatch",
          "[storage][corruption]") {
  TempDir dir;
  DiskLogOptions options = options_for(dir);
  build_log(options);
  std::filesystem::path path = snapshot_path(options);
  auto offset = GENERATE(as<std::streamoff>{}, 40, kSnapshotHeaderBytes, 3000, 5063);
  {
    std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(offset);
    char byte = 0;
    file.read(&byte, 1);
    file.seekp(offset);
    byte = static_cast<char>(byte ^ 0x10);
    file.write(&byte, 1);
  }
  require_open_fails(options, path.string(), "checksum mismatch");
}

TEST_CASE("a truncated or missing snapshot file is a clear error", "[storage][corruption]") {
  TempDir dir;
  DiskLogOptions options = options_for(dir);
  build_log(options);
  std::filesystem::path path = snapshot_path(options);
  SECTION("truncated data") {
    std::filesystem::resize_file(path, 1000);
    require_open_fails(options, path.string(), "data bytes");
  }
  SECTION("truncated header") {
    std::filesystem::resize_file(path, 10);
    require_open_fails(options, path.string(), "truncated header");
  }
  SECTION("missing") {
    std::filesystem::remove(path);
    require_open_fails(options, path.string(), "No such file");
  }
}

TEST_CASE("a truncated RocksDB table file is reported by open", "[storage][corruption]") {
  TempDir dir;
  DiskLogOptions options = options_for(dir);
  build_log(options);
  with_raw_db(options, [](rocksdb::DB& db) { REQUIRE(db.Flush(rocksdb::FlushOptions()).ok()); });
  std::filesystem::path newest;
  for (const auto& file : std::filesystem::directory_iterator(options.dir / "db")) {
    if (file.path().extension() == ".sst" && file.path().filename() > newest.filename()) {
      newest = file.path();
    }
  }
  REQUIRE_FALSE(newest.empty());
  std::filesystem::resize_file(newest, std::filesystem::file_size(newest) / 2);
  require_open_fails(options, (options.dir / "db").string(), "Corruption");
}

TEST_CASE("a damaged record in the middle of the RocksDB WAL is reported by open",
          "[storage][corruption]") {
  TempDir dir;
  DiskLogOptions options = options_for(dir);
  {
    // 60 synced batches, one WAL record each, never flushed to a table.
    auto log = DiskLog::open(options);
    REQUIRE(log.ok());
    for (uint64_t i = 1; i <= 60; ++i) {
      raftpb::Entry entry;
      entry.set_index(i);
      entry.set_term(1);
      entry.set_data(std::string(200, 'w'));
      REQUIRE(log.value()->save(nullptr, {entry}).ok());
    }
  }
  std::filesystem::path wal;
  for (const auto& file : std::filesystem::directory_iterator(options.dir / "db")) {
    if (file.path().extension() == ".log" && std::filesystem::file_size(file.path()) > 10000) {
      wal = file.path();
    }
  }
  REQUIRE_FALSE(wal.empty());
  {
    std::fstream file(wal, std::ios::in | std::ios::out | std::ios::binary);
    auto middle = static_cast<std::streamoff>(std::filesystem::file_size(wal) / 2);
    file.seekp(middle);
    file.write("\xde\xad\xbe\xef", 4);
  }
  require_open_fails(options, (options.dir / "db").string(), "Corruption");
}

TEST_CASE("an entry missing inside the live range is reported by open", "[storage][corruption]") {
  TempDir dir;
  DiskLogOptions options = options_for(dir);
  build_log(options);
  with_raw_db(options, [](rocksdb::DB& db) {
    REQUIRE(db.Delete(rocksdb::WriteOptions(), entry_key(17)).ok());
  });
  require_open_fails(options, options.dir.string(), "entry 17 is missing");
}

TEST_CASE("a log that ends before the committed index is reported by open",
          "[storage][corruption]") {
  TempDir dir;
  DiskLogOptions options = options_for(dir);
  build_log(options);
  with_raw_db(options, [](rocksdb::DB& db) {
    REQUIRE(db.DeleteRange(rocksdb::WriteOptions(), db.DefaultColumnFamily(), entry_key(21),
                           entry_key(41))
                .ok());
  });
  require_open_fails(options, options.dir.string(), "commits index 30 but the log ends at 20");
}

TEST_CASE("a store that lost its CURRENT file is refused", "[storage][corruption]") {
  TempDir dir;
  DiskLogOptions options = options_for(dir);
  build_log(options);
  std::filesystem::remove(options.dir / "db" / "CURRENT");
  require_open_fails(options, (options.dir / "db").string(), "no CURRENT file");
}

TEST_CASE("a store whose creation was interrupted is created again", "[storage][corruption]") {
  TempDir dir;
  DiskLogOptions options = options_for(dir);
  std::filesystem::create_directories(options.dir / "db");
  std::ofstream(options.dir / "db" / "MANIFEST-000001") << "partial";
  std::ofstream(options.dir / "db" / "IDENTITY") << "partial";
  auto log = DiskLog::open(options);
  INFO(log.status().to_string());
  REQUIRE(log.ok());
  CHECK(log.value()->last_index() == 0);
}

TEST_CASE("a RocksDB store without our identity is refused", "[storage][corruption]") {
  TempDir dir;
  DiskLogOptions options = options_for(dir);
  build_log(options);
  with_raw_db(options,
              [](rocksdb::DB& db) { REQUIRE(db.Delete(rocksdb::WriteOptions(), "i").ok()); });
  require_open_fails(options, options.dir.string(), "no identity");
}

}  // namespace
}  // namespace fencelock::storage
