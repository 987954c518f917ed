#pragma once
// Zero-filled write-ahead logs: RocksDB's WAL written over blocks that are
// already allocated and written, so the fdatasync of every synced write
// flushes the record alone.
//
// Why: RocksDB appends its WAL. On ext4 an append moves the file size and
// (with RocksDB's fallocate preallocation) turns unwritten extents into
// written ones, so each fdatasync writes the data, then the inode, then
// flushes: three device operations in a row on the commit path of every
// node. Writing over zeros that are already on disk leaves the inode alone:
// data and flush. Measured on the development machine (docs/benchmark.md),
// three processes each doing synced 200-byte RocksDB writes at once: p50
// 260-280 us appending, 200-225 us over zeros. RocksDB's own answer,
// recycle_log_file_num, is refused with the recovery mode we need
// (kTolerateCorruptedTailRecords), so the zeros come from the file system.
//
// Two halves:
//  - make_zero_filled_wal_env(): an Env whose file system fills each new
//    "*.log" file with zeros ahead of RocksDB's writes, `chunk_bytes` at a
//    time (written and fdatasynced before RocksDB's bytes go there). RocksDB
//    writes its file from offset 0 and, on a clean close, truncates it to
//    what it wrote. A crash leaves the zeros after the last record; RocksDB's
//    reader skips zero-filled blocks (as it does for preallocated regions).
//  - trim_torn_wal_tail(): run on every WAL before RocksDB opens the
//    directory. A crash in the middle of a write can leave a torn last
//    record followed by zeros. Appended, such a record would end the file
//    and RocksDB would drop it as an unfinished write; followed by zeros it
//    looks like corruption and RocksDB refuses to open. So when what follows
//    the last intact record is one unfinished record and then only zeros,
//    the file is cut after that record's last non-zero byte, which gives
//    RocksDB exactly the appended case. Anything else after the last intact
//    record (another intact record, i.e. damage in the middle of the log)
//    is left alone for RocksDB to report.
//
// The record format read by trim_torn_wal_tail() is RocksDB's log format
// (db/log_format.h): 32 KiB blocks of records, each with a 7-byte header
// (masked CRC32C of type and payload, 2-byte little-endian length, type),
// no record across a block boundary, fewer than 7 leftover bytes of a block
// zero-padded. The recyclable format (11-byte headers) is never written
// here: recycle_log_file_num stays 0.
//
// Not direct I/O: with use_direct_writes RocksDB's writer never calls the
// WAL's Sync (it takes O_DIRECT writes as durable), which on a disk with a
// volatile write cache leaves acknowledged writes in that cache. Measured on
// 2026-12-02: no fdatasync at all under load, and a flush-less 4 KiB write
// takes 59 us against 140 us with the flush.
//
// Thread-safety: the Env is RocksDB's to use from its threads (each file is
// used by one writer at a time, as RocksDB does); trim_torn_wal_tail() is a
// free function without shared state.

#include <cstdint>
#include <filesystem>
#include <memory>

#include "common/status.h"

namespace rocksdb {
class Env;
class FileSystem;
}

namespace fencelock::storage {

inline constexpr uint64_t kWalZeroChunkBytes = 1 << 20;

// A new Env on `base` (the default file system when null) whose WAL files
// are zero-filled ahead of the writer. It must outlive every DB opened with it.
std::unique_ptr<rocksdb::Env> make_zero_filled_wal_env(
    uint64_t chunk_bytes = kWalZeroChunkBytes, std::shared_ptr<rocksdb::FileSystem> base = nullptr);

// What trim_torn_wal_tail() found and did.
struct WalTail {
  uint64_t file_bytes = 0;
  uint64_t intact_bytes = 0;  // end of the last intact record
  uint64_t trimmed_to = 0;    // the new size when trimmed, else 0
};

// Cuts a torn last record's zero padding off the WAL at `path` (see above),
// fsyncing the file when it does. Returns INTERNAL when the file cannot be
// read or truncated; a WAL that is fine, or damaged in a way RocksDB must
// judge, is left as it is (OK).
Result<WalTail> trim_torn_wal_tail(const std::filesystem::path& path);

}  // namespace fencelock::storage
