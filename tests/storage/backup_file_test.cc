// Backup files (storage/backup_file.h): what is written reads back, and a
// file that is truncated, has a flipped byte, or is no backup at all is
// refused with a message that says so.

#include "storage/backup_file.h"

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "tests/storage/temp_dir.h"

namespace fencelock::storage {
namespace {

using testing::TempDir;

std::string read_all(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_all(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

BackupHeader sample_header() {
  BackupHeader header;
  header.index = 4242;
  header.term = 7;
  header.cluster_id = "prod-eu";
  header.conf_state = std::string("\x08\x01\x08\x02\x08\x03", 6);
  return header;
}

std::string sample_data() {
  std::string data;
  for (int i = 0; i < 5000; ++i) data.push_back(static_cast<char>(i * 31 + 7));
  return data;
}

}  // namespace

TEST_CASE("a backup file reads back with its header and data", "[storage][backup]") {
  TempDir dir;
  const auto path = dir.path() / "b.flbackup";
  const std::string data = sample_data();
  REQUIRE(write_backup_file(path, sample_header(), data).ok());
  CHECK_FALSE(std::filesystem::exists(path.string() + ".tmp"));
  CHECK(read_all(path).starts_with("FLBACKUP"));

  auto backup = read_backup_file(path);
  REQUIRE(backup.ok());
  const BackupHeader& header = backup.value().header;
  CHECK(header.index == 4242);
  CHECK(header.term == 7);
  CHECK(header.cluster_id == "prod-eu");
  CHECK(header.conf_state == sample_header().conf_state);
  CHECK(header.data_bytes == data.size());
  CHECK(header.data_sha256 == sha256(data));
  CHECK(backup.value().data == data);

  // An empty state and empty strings are fine too.
  BackupHeader bare;
  bare.index = 1;
  bare.term = 1;
  REQUIRE(write_backup_file(path, bare, "").ok());
  auto empty = read_backup_file(path);
  REQUIRE(empty.ok());
  CHECK(empty.value().data.empty());
  CHECK(empty.value().header.cluster_id.empty());
}

TEST_CASE("SHA-256 is the standard one", "[storage][backup]") {
  CHECK(to_hex(sha256("")) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(to_hex(sha256("abc")) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256 pieces;
  pieces.update("a");
  pieces.update("");
  pieces.update("bc");
  CHECK(pieces.finish() == sha256("abc"));
  Sha256Digest digest{};
  CHECK(from_bytes(to_bytes(sha256("abc")), digest));
  CHECK(digest == sha256("abc"));
  CHECK_FALSE(from_bytes("short", digest));
}

TEST_CASE("a truncated backup file is refused, at every length", "[storage][backup]") {
  TempDir dir;
  const auto path = dir.path() / "b";
  REQUIRE(write_backup_file(path, sample_header(), sample_data()).ok());
  const std::string good = read_all(path);
  const auto truncated = dir.path() / "t";
  for (size_t n = 0; n < good.size(); n += (n < 200 ? 1 : 97)) {
    INFO("length " << n);
    write_all(truncated, good.substr(0, n));
    auto backup = read_backup_file(truncated);
    REQUIRE_FALSE(backup.ok());
    CHECK(backup.code() == lockpb::INVALID_ARGUMENT);
    CHECK(backup.status().message().find(truncated.string()) != std::string::npos);
    if (n >= 8) CHECK(backup.status().message().find("truncated") != std::string::npos);
  }
  write_all(truncated, good + "x");
  auto longer = read_backup_file(truncated);
  REQUIRE_FALSE(longer.ok());
  CHECK(longer.status().message().find("trailing bytes") != std::string::npos);
}

TEST_CASE("a backup file with any byte flipped is refused", "[storage][backup]") {
  TempDir dir;
  const auto path = dir.path() / "b";
  REQUIRE(write_backup_file(path, sample_header(), sample_data()).ok());
  const std::string good = read_all(path);
  const auto flipped = dir.path() / "f";
  for (size_t i = 0; i < good.size(); i += (i < 200 ? 1 : 13)) {
    INFO("byte " << i);
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    write_all(flipped, bad);
    auto backup = read_backup_file(flipped);
    REQUIRE_FALSE(backup.ok());
    CHECK(backup.code() == lockpb::INVALID_ARGUMENT);
  }
  // In the data: the checksum says so, with both digests.
  std::string bad = good;
  bad[good.size() - 10] ^= 0x40;
  write_all(flipped, bad);
  auto backup = read_backup_file(flipped);
  REQUIRE_FALSE(backup.ok());
  CHECK(backup.status().message().find("checksum mismatch") != std::string::npos);
  CHECK(backup.status().message().find(to_hex(sha256(sample_data()))) != std::string::npos);
}

TEST_CASE("a file without the magic is not a backup; a missing one cannot be opened",
          "[storage][backup]") {
  TempDir dir;
  const auto path = dir.path() / "b";
  REQUIRE(write_backup_file(path, sample_header(), sample_data()).ok());
  std::string other = read_all(path);
  other.replace(0, 8, "FLSNAP01");
  write_all(path, other);
  auto backup = read_backup_file(path);
  REQUIRE_FALSE(backup.ok());
  CHECK(backup.status().message().find("not a fencelock backup (bad magic)") != std::string::npos);
  write_all(path, "hello\n");
  CHECK(read_backup_file(path).status().message().find("bad magic") != std::string::npos);

  auto missing = read_backup_file(dir.path() / "nope");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.code() == lockpb::INTERNAL);
  CHECK(missing.status().message().find("nope") != std::string::npos);
}

TEST_CASE("a streamed backup becomes visible only when all of it arrived with its checksum",
          "[storage][backup]") {
  TempDir dir;
  const auto path = dir.path() / "b";
  const auto tmp = dir.path() / "b.tmp";
  const std::string data = sample_data();
  BackupHeader header = sample_header();
  header.data_bytes = data.size();
  header.data_sha256 = sha256(data);
  write_all(path, "an older file");

  SECTION("in pieces, complete") {
    auto writer = BackupFileWriter::create(path, header);
    REQUIRE(writer.ok());
    for (size_t at = 0; at < data.size(); at += 1000) {
      REQUIRE(writer.value()->append(std::string_view(data).substr(at, 1000)).ok());
    }
    CHECK(std::filesystem::exists(tmp));
    CHECK(read_all(path) == "an older file");
    REQUIRE(writer.value()->commit().ok());
    CHECK_FALSE(std::filesystem::exists(tmp));
    REQUIRE(read_backup_file(path).ok());
    CHECK(read_backup_file(path).value().data == data);
  }
  SECTION("a different byte arrived: checksum mismatch, nothing replaced") {
    auto writer = BackupFileWriter::create(path, header);
    REQUIRE(writer.ok());
    std::string changed = data;
    changed[100] ^= 1;
    REQUIRE(writer.value()->append(changed).ok());
    Status status = writer.value()->commit();
    CHECK(status.code() == lockpb::INTERNAL);
    CHECK(status.message().find("checksum mismatch") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(tmp));
    CHECK(read_all(path) == "an older file");
  }
  SECTION("too little or too much") {
    auto writer = BackupFileWriter::create(path, header);
    REQUIRE(writer.ok());
    REQUIRE(writer.value()->append(std::string_view(data).substr(0, 10)).ok());
    CHECK(writer.value()->append(data).code() == lockpb::INVALID_ARGUMENT);
    Status status = writer.value()->commit();
    CHECK(status.message().find("received 10 of 5000 bytes") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(tmp));
    CHECK(read_all(path) == "an older file");
  }
  SECTION("abandoned") {
    {
      auto writer = BackupFileWriter::create(path, header);
      REQUIRE(writer.ok());
      REQUIRE(writer.value()->append(data).ok());
    }
    CHECK_FALSE(std::filesystem::exists(tmp));
    CHECK(read_all(path) == "an older file");
  }
}

}  // namespace fencelock::storage
