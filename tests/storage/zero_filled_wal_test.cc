// Zero-filled WALs (storage/zero_filled_wal.h) against real RocksDB: what a
// crash leaves behind reopens with every synced write, a torn last record
// is trimmed away, and damage in the middle of the log is still refused.
#include "storage/zero_filled_wal.h"

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/options.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "tests/storage/temp_dir.h"

namespace fencelock::storage {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

constexpr int kKeys = 500;

std::string key_of(int i) {
  return "k" + std::to_string(i);
}
std::string value_of(int i) {
  return "value-" + std::to_string(i) + std::string(150, 'v');
}

rocksdb::Options options_for(rocksdb::Env* env) {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.paranoid_checks = true;
  options.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  options.env = env;
  return options;
}

std::unique_ptr<rocksdb::DB> open_db(const fs::path& dir, rocksdb::Env* env,
                                     rocksdb::Status* status = nullptr) {
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options_for(env), dir.string(), &raw);
  if (status != nullptr) *status = s;
  return std::unique_ptr<rocksdb::DB>(raw);
}

void put_synced(rocksdb::DB& db, const std::string& key, const std::string& value) {
  rocksdb::WriteOptions write_options;
  write_options.sync = true;
  REQUIRE(db.Put(write_options, key, value).ok());
}

// The files of a running DB as a crash would leave them (the page cache is
// what a restarted process reads).
fs::path crash_image(const fs::path& live, const fs::path& image) {
  fs::create_directories(image);
  for (const auto& file : fs::directory_iterator(live)) {
    if (file.path().filename() == "LOCK") continue;
    fs::copy_file(file.path(), image / file.path().filename());
  }
  return image;
}

fs::path wal_in(const fs::path& dir) {
  fs::path wal;
  for (const auto& file : fs::directory_iterator(dir)) {
    if (file.path().extension() == ".log" && (wal.empty() || file.path() > wal)) wal = file.path();
  }
  REQUIRE_FALSE(wal.empty());
  return wal;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

void require_keys(rocksdb::DB& db, int count) {
  for (int i = 0; i < count; ++i) {
    std::string value;
    INFO("key " << key_of(i));
    REQUIRE(db.Get(rocksdb::ReadOptions(), key_of(i), &value).ok());
    REQUIRE(value == value_of(i));
  }
}

struct Fixture {
  TempDir dir;
  std::unique_ptr<rocksdb::Env> env = make_zero_filled_wal_env();
  fs::path live = dir.path() / "live";
  std::unique_ptr<rocksdb::DB> db;

  Fixture() {
    db = open_db(live, env.get());
    REQUIRE(db);
    for (int i = 0; i < kKeys; ++i) put_synced(*db, key_of(i), value_of(i));
  }
};

TEST_CASE("RocksDB writes a zero-filled WAL from its start, and its crash image reopens whole",
          "[storage][wal]") {
  Fixture f;
  fs::path image = crash_image(f.live, f.dir.path() / "image");
  fs::path wal = wal_in(image);
  // The records are at the start, the zeros after them.
  CHECK(fs::file_size(wal) >= kWalZeroChunkBytes);
  auto tail = trim_torn_wal_tail(wal);
  REQUIRE(tail.ok());
  CHECK(tail.value().intact_bytes > uint64_t{kKeys} * 150);
  CHECK(tail.value().intact_bytes < fs::file_size(wal));
  CHECK(tail.value().trimmed_to == 0);
  auto db = open_db(image, f.env.get());
  REQUIRE(db);
  require_keys(*db, kKeys);
}

// Counts the syncs of WAL files, and whether any was opened for direct writes.
struct WalSyncs {
  std::atomic<int> syncs{0};
  std::atomic<bool> direct{false};
};

class CountingWalFile final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  CountingWalFile(std::unique_ptr<rocksdb::FSWritableFile> file, WalSyncs& counts)
      : FSWritableFileOwnerWrapper(std::move(file)), counts_(counts) {}
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    ++counts_.syncs;
    return target()->Sync(options, dbg);
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    ++counts_.syncs;
    return target()->Fsync(options, dbg);
  }

 private:
  WalSyncs& counts_;
};

class CountingFileSystem final : public rocksdb::FileSystemWrapper {
 public:
  explicit CountingFileSystem(WalSyncs& counts)
      : FileSystemWrapper(rocksdb::FileSystem::Default()), counts_(counts) {}
  const char* Name() const override { return "CountingFileSystem"; }
  rocksdb::IOStatus NewWritableFile(const std::string& name, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus status = target()->NewWritableFile(name, options, result, dbg);
    if (status.ok() && fs::path(name).extension() == ".log") {
      if (options.use_direct_writes) counts_.direct = true;
      *result = std::make_unique<CountingWalFile>(std::move(*result), counts_);
    }
    return status;
  }

 private:
  WalSyncs& counts_;
};

TEST_CASE("every synced write syncs the WAL file, which is not opened for direct writes",
          "[storage][wal]") {
  // RocksDB skips the WAL's Sync for direct writes; on a disk with a volatile
  // cache that loses acknowledged writes (zero_filled_wal.h).
  TempDir dir;
  WalSyncs counts;
  auto env = make_zero_filled_wal_env(kWalZeroChunkBytes, std::make_shared<CountingFileSystem>(counts));
  auto db = open_db(dir.path() / "live", env.get());
  REQUIRE(db);
  int before = counts.syncs;
  constexpr int kWrites = 50;
  for (int i = 0; i < kWrites; ++i) put_synced(*db, key_of(i), value_of(i));
  CHECK(counts.syncs - before >= kWrites);
  CHECK_FALSE(counts.direct);
}

TEST_CASE("a clean close trims the zeros", "[storage][wal]") {
  Fixture f;
  fs::path wal = wal_in(f.live);
  f.db.reset();
  auto tail = trim_torn_wal_tail(wal);
  REQUIRE(tail.ok());
  CHECK(tail.value().intact_bytes == fs::file_size(wal));
}

TEST_CASE("a torn last record in front of the zeros is trimmed, and recovery drops only it",
          "[storage][wal]") {
  Fixture f;
  fs::path image = crash_image(f.live, f.dir.path() / "image");
  fs::path wal = wal_in(image);
  uint64_t intact = trim_torn_wal_tail(wal).value().intact_bytes;
  // A FULL record's header claiming 100 bytes, of which 30 landed.
  std::string bytes = read_file(wal);
  std::string torn =
      std::string("\x11\x22\x33\x44", 4) + std::string("\x64\x00\x01", 3) + std::string(30, 'x');
  bytes.replace(intact, torn.size(), torn);
  write_file(wal, bytes);

  SECTION("RocksDB alone refuses it") {
    rocksdb::Status status;
    auto db = open_db(image, rocksdb::Env::Default(), &status);
    CHECK_FALSE(status.ok());
  }
  SECTION("trimmed, it opens with every complete write") {
    auto tail = trim_torn_wal_tail(wal);
    REQUIRE(tail.ok());
    CHECK(tail.value().intact_bytes == intact);
    CHECK(tail.value().trimmed_to == intact + torn.size());
    CHECK(fs::file_size(wal) == intact + torn.size());
    rocksdb::Status status;
    auto db = open_db(image, f.env.get(), &status);
    INFO(status.ToString());
    REQUIRE(db);
    require_keys(*db, kKeys);
  }
}

TEST_CASE("a record split over blocks whose last fragment never landed is trimmed",
          "[storage][wal]") {
  Fixture f;
  fs::path before = crash_image(f.live, f.dir.path() / "before");
  uint64_t intact = trim_torn_wal_tail(wal_in(before)).value().intact_bytes;
  put_synced(*f.db, "big", std::string(100'000, 'b'));  // spans four 32 KiB blocks
  fs::path image = crash_image(f.live, f.dir.path() / "image");
  fs::path wal = wal_in(image);
  uint64_t big_end = trim_torn_wal_tail(wal).value().intact_bytes;
  REQUIRE(big_end > intact + 100'000);
  // Zero the block holding the LAST fragment, as if it never reached the disk.
  std::string bytes = read_file(wal);
  uint64_t last_block = (big_end - 1) / 32768 * 32768;
  REQUIRE(last_block > intact);
  bytes.replace(last_block, 32768, std::string(32768, '\0'));
  write_file(wal, bytes);

  rocksdb::Status status;
  auto refused = open_db(image, rocksdb::Env::Default(), &status);
  CHECK_FALSE(status.ok());
  refused.reset();
  auto tail = trim_torn_wal_tail(wal);
  REQUIRE(tail.ok());
  CHECK(tail.value().intact_bytes == intact);
  CHECK(tail.value().trimmed_to == last_block);
  auto db = open_db(image, f.env.get(), &status);
  INFO(status.ToString());
  REQUIRE(db);
  require_keys(*db, kKeys);
  std::string value;
  CHECK(db->Get(rocksdb::ReadOptions(), "big", &value).IsNotFound());
}

TEST_CASE("damage in the middle of the log is left for RocksDB to refuse", "[storage][wal]") {
  Fixture f;
  fs::path image = crash_image(f.live, f.dir.path() / "image");
  fs::path wal = wal_in(image);
  std::string bytes = read_file(wal);
  bytes[1000] = static_cast<char>(bytes[1000] ^ 0x5a);  // inside an early record
  write_file(wal, bytes);
  auto tail = trim_torn_wal_tail(wal);
  REQUIRE(tail.ok());
  CHECK(tail.value().trimmed_to == 0);
  CHECK(fs::file_size(wal) == bytes.size());
  rocksdb::Status status;
  auto db = open_db(image, f.env.get(), &status);
  CHECK(status.IsCorruption());
}

TEST_CASE("a last record whose payload ends in zero bytes is kept whole", "[storage][wal]") {
  Fixture f;
  std::string value = "tail" + std::string(64, '\0');
  put_synced(*f.db, "zeros", value);
  fs::path image = crash_image(f.live, f.dir.path() / "image");
  auto tail = trim_torn_wal_tail(wal_in(image));
  REQUIRE(tail.ok());
  CHECK(tail.value().trimmed_to == 0);
  auto db = open_db(image, f.env.get());
  REQUIRE(db);
  std::string read;
  REQUIRE(db->Get(rocksdb::ReadOptions(), "zeros", &read).ok());
  CHECK(read == value);
  require_keys(*db, kKeys);
}

}  // namespace
}  // namespace fencelock::storage
