// Fuzz target: recovery of the Raft log from a damaged data directory
// (storage::DiskLog::open), and the decoding of backup files
// (storage::read_backup_file), both from arbitrary bytes.
//
// Log mode: a valid data directory (entries 1..6, compacted to 2, a
// snapshot at 4, commit 5) is copied fresh for each input, the input's
// writes go straight into its RocksDB (the log's records, well-formed or
// not, entries anywhere, deletions) and its snapshot directory, then
// DiskLog::open() must either refuse the directory with INTERNAL or
// FAILED_PRECONDITION naming it, or give a consistent log: contiguous
// entries whose terms never decrease, a commit index inside the log, a
// snapshot between the compaction point and the log's end agreeing with
// the log's term at its index, and every read of the live range served
// (a missing entry would abort).
//
// Backup mode: the bytes as a backup file, optionally with its two SHA-256
// fixed up so that the decoding gets past them; read_backup_file() must
// refuse it or return a header that agrees with the data.
//
// Input: 1 byte of mode (bit 7: backup; bit 6: fix the backup's checksums),
// then for the log a list of operations [op, fields...].

#include <rocksdb/db.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/check.h"
#include "common/logging.h"
#include "fuzz/fuzz_input.h"
#include "storage/backup_file.h"
#include "storage/disk_log.h"
#include "storage/snapshot_file.h"

namespace fencelock::fuzz {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kClusterId = 7;
constexpr uint64_t kNodeId = 1;

fs::path g_template;
fs::path g_work;

std::string u64_be(uint64_t value) {
  std::string out;
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(value >> shift));
  return out;
}

storage::DiskLogOptions options_for(const fs::path& dir) {
  storage::DiskLogOptions options;
  options.dir = dir;
  options.cluster_id = kClusterId;
  options.node_id = kNodeId;
  options.initial_conf_state.add_voters(1);
  options.initial_conf_state.add_voters(2);
  options.initial_conf_state.add_voters(3);
  options.sync = false;
  options.cache_max_entries = 4;
  return options;
}

raftpb::Entry entry(uint64_t index, uint64_t term, std::string data) {
  raftpb::Entry e;
  e.set_index(index);
  e.set_term(term);
  e.set_data(std::move(data));
  return e;
}

void make_template() {
  auto log = storage::DiskLog::open(options_for(g_template));
  FL_CHECK(log.ok(), "template: {}", log.status().to_string());
  std::vector<raftpb::Entry> entries;
  for (uint64_t i = 1; i <= 6; ++i)
    entries.push_back(entry(i, i <= 3 ? 1 : 2, "e" + std::to_string(i)));
  raftpb::HardState hs;
  hs.set_term(2);
  hs.set_vote(1);
  hs.set_commit(5);
  FL_CHECK(log.value()->save(&hs, entries).ok(), "template: save");
  raftpb::ConfState conf;
  conf.add_voters(1);
  conf.add_voters(2);
  conf.add_voters(3);
  FL_CHECK(log.value()->create_snapshot(4, conf, "snapshot at 4").ok(), "template: snapshot");
  FL_CHECK(log.value()->compact(2).ok(), "template: compact");
}

// One write into the directory, chosen by the input.
void apply_op(FuzzInput& in, rocksdb::DB& db) {
  rocksdb::WriteOptions write;
  static const char* const kKeys[] = {"v", "i", "h", "s", "b"};
  switch (in.u8() % 10) {
    case 0:  // a log record, any bytes
    {
      // Every read of the input in its own statement: the order in which a
      // call's arguments are evaluated differs between gcc and clang, and
      // the replay build must read the same values as the fuzzer.
      const char* key = kKeys[in.below(5)];
      db.Put(write, key, in.short_bytes(40));
      break;
    }
    case 1: {  // an entry record, any bytes
      std::string key = "e" + u64_be(in.u8() % 12);
      db.Put(write, key, in.short_bytes(40));
      break;
    }
    case 2: {  // a well-formed entry, anywhere
      uint64_t key_index = in.u8() % 12;
      uint64_t index = in.u8() < 200 ? key_index : in.u8();
      uint64_t term = in.u8() % 5;
      std::string data = in.short_bytes(8);
      db.Put(write, "e" + u64_be(key_index), entry(index, term, data).SerializeAsString());
      break;
    }
    case 3:  // a deletion
      if (in.boolean()) {
        db.Delete(write, kKeys[in.below(5)]);
      } else {
        db.Delete(write, "e" + u64_be(in.u8() % 12));
      }
      break;
    case 4: {  // a well-formed hard state
      raftpb::HardState hs;
      hs.set_term(in.u8() % 5);
      hs.set_vote(in.u8() % 4);
      hs.set_commit(in.u8() % 12);
      db.Put(write, "h", hs.SerializeAsString());
      break;
    }
    case 5: {  // a well-formed log base
      uint64_t index = in.u8() % 12;
      uint64_t term = in.u8() % 5;
      db.Put(write, "b", u64_be(index) + u64_be(term));
      break;
    }
    case 6: {  // well-formed snapshot metadata
      raftpb::SnapshotMetadata metadata;
      metadata.set_index(in.u8() % 12);
      metadata.set_term(in.u8() % 5);
      uint8_t voters = in.u8() % 4;
      for (uint8_t v = 1; v <= voters; ++v) metadata.mutable_conf_state()->add_voters(v);
      db.Put(write, "s", metadata.SerializeAsString());
      break;
    }
    case 7: {  // any key
      std::string key = in.short_bytes(12);
      db.Put(write, key, in.short_bytes(24));
      break;
    }
    case 8: {  // a valid snapshot file
      uint64_t index = in.u8() % 12;
      uint64_t term = in.u8() % 5;
      fs::path path = g_work / "snap" / storage::snapshot_file_name(term, index);
      (void)storage::write_snapshot_file(path, index, term, in.short_bytes(16), false);
      break;
    }
    case 9: {  // a snapshot file of any bytes
      uint64_t index = in.u8() % 12;
      uint64_t term = in.u8() % 5;
      std::ofstream(g_work / "snap" / storage::snapshot_file_name(term, index),
                    std::ios::binary | std::ios::trunc)
          << in.short_bytes(120);
      break;
    }
  }
}

void check_consistent(const storage::DiskLog& log) {
  const uint64_t first = log.first_index();
  const uint64_t last = log.last_index();
  FL_CHECK(first >= 1 && last + 1 >= first, "log [{}, {}]", first, last);
  const raftpb::HardState hs = log.initial_state().hard_state;
  FL_CHECK(hs.commit() <= last, "commit {} past the log's end {}", hs.commit(), last);
  // The compaction point's term may exceed the hard state's: a follower
  // installs a leader's snapshot before it saves the term it learned with
  // it (server/node.cc write()), and may crash in between.
  uint64_t previous_term = log.term(first - 1);
  std::vector<raftpb::Entry> entries = log.entries(first, last + 1, UINT64_MAX);
  FL_CHECK(entries.size() == last + 1 - first, "{} entries in [{}, {}]", entries.size(), first,
           last);
  for (uint64_t i = first; i <= last; ++i) {
    const raftpb::Entry& e = entries[i - first];
    FL_CHECK(e.index() == i, "entry {} at index {}", e.index(), i);
    FL_CHECK(log.term(i) == e.term(), "term({}) {} but the entry says {}", i, log.term(i),
             e.term());
    // Raft §5.3: a log's terms never decrease. (Not checked: that none is
    // above the hard state's term; DiskLog takes entries without a hard
    // state, as its tests write them.)
    FL_CHECK(e.term() >= previous_term, "entry {} of term {} after term {}", i, e.term(),
             previous_term);
    previous_term = e.term();
  }
  const raftpb::SnapshotMetadata snapshot = log.snapshot_metadata();
  if (snapshot.index() > 0) {
    FL_CHECK(snapshot.index() + 1 >= first, "snapshot at {} below the compaction point {}",
             snapshot.index(), first - 1);
    // Not bounded by the commit index, for the same reason.
    FL_CHECK(snapshot.index() <= last, "snapshot at {} past the log's end {}", snapshot.index(),
             last);
    FL_CHECK(log.term(snapshot.index()) == snapshot.term(),
             "snapshot at {} of term {}, the log's term there is {}", snapshot.index(),
             snapshot.term(), log.term(snapshot.index()));
    FL_CHECK(log.snapshot_data() != nullptr, "a snapshot without data");
  }
}

void recover_log(FuzzInput& in) {
  std::error_code ec;
  fs::remove_all(g_work, ec);
  fs::copy(g_template, g_work, fs::copy_options::recursive);
  {
    rocksdb::Options db_options;
    rocksdb::DB* raw = nullptr;
    rocksdb::Status status = rocksdb::DB::Open(db_options, (g_work / "db").string(), &raw);
    FL_CHECK(status.ok(), "cannot open the copy: {}", status.ToString());
    std::unique_ptr<rocksdb::DB> db(raw);
    // Bounded: each operation takes at least one byte.
    for (int op = 0; !in.empty() && op < 64; ++op) apply_op(in, *db);
  }
  auto log = storage::DiskLog::open(options_for(g_work));
  if (!log.ok()) {
    const Status& status = log.status();
    FL_CHECK(status.code() == lockpb::INTERNAL || status.code() == lockpb::FAILED_PRECONDITION,
             "open failed with {}", status.to_string());
    FL_CHECK(status.message().find(g_work.string()) != std::string::npos,
             "the error does not name the directory: {}", status.to_string());
    return;
  }
  check_consistent(*log.value());
}

void read_backup(FuzzInput& in, bool fix_checksums) {
  std::string bytes = in.rest();
  // Header layout (storage/backup_file.h): header_bytes at 12, data_bytes at
  // 32, the data's SHA-256 at 40, the header's in its last 32 bytes.
  if (fix_checksums && bytes.size() >= 72) {
    auto get_u32 = [&](size_t at) {
      uint32_t v = 0;
      for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(bytes[at + i]);
      return v;
    };
    size_t header_bytes = get_u32(12);
    if (header_bytes >= 72 + 32 && header_bytes <= bytes.size()) {
      std::string data_bytes = u64_be(bytes.size() - header_bytes);
      bytes.replace(32, 8, data_bytes);
      bytes.replace(
          40, 32, storage::to_bytes(storage::sha256(std::string_view(bytes).substr(header_bytes))));
      bytes.replace(
          header_bytes - 32, 32,
          storage::to_bytes(storage::sha256(std::string_view(bytes).substr(0, header_bytes - 32))));
    }
  }
  fs::path path = g_work.string() + ".backup";
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  Result<storage::Backup> backup = storage::read_backup_file(path);
  if (!backup.ok()) {
    FL_CHECK(backup.status().code() == lockpb::INVALID_ARGUMENT, "read failed with {}",
             backup.status().to_string());
    return;
  }
  const storage::BackupHeader& header = backup.value().header;
  FL_CHECK(backup.value().data.size() == header.data_bytes, "{} data bytes, the header says {}",
           backup.value().data.size(), header.data_bytes);
  FL_CHECK(storage::sha256(backup.value().data) == header.data_sha256, "data checksum mismatch");
}

}  // namespace
}  // namespace fencelock::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  using namespace fencelock::fuzz;
  fencelock::set_log_level("critical");  // FL_CHECK's message
  const char* tmp = std::getenv("TMPDIR");
  fs::path base = fs::path(tmp != nullptr ? tmp : "/tmp") /
                  ("fencelock-log-recovery-fuzz." + std::to_string(::getpid()));
  fs::remove_all(base);
  fs::create_directories(base);
  g_template = base / "template";
  g_work = base / "work";
  make_template();
  // Removed at exit; a crash leaves it for the post-mortem.
  std::atexit([] { fs::remove_all(g_template.parent_path()); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fencelock::fuzz::FuzzInput in(data, size);
  uint8_t mode = in.u8();
  if (mode & 0x80) {
    fencelock::fuzz::read_backup(in, (mode & 0x40) != 0);
  } else {
    fencelock::fuzz::recover_log(in);
  }
  return 0;
}
