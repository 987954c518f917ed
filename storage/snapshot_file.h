#pragma once
// Snapshot files: the state machine's snapshot bytes, one file per snapshot,
// written atomically and protected by a SHA-256 checksum.
//
// Format (integers big-endian), 64-byte header then the data:
//
//   offset  size  field
//        0     8  magic "FLSNAP01"
//        8     8  index       last log index the snapshot includes
//       16     8  term        term of that entry
//       24     8  data_bytes  length of the data that follows the header
//       32    32  SHA-256 over header bytes [0, 32) followed by the data
//       64     n  data
//
// The configuration (ConfState) is not in the file: it lives with the rest
// of the snapshot metadata in RocksDB (see disk_log.h), which names the file.
//
// Thread-safety: free functions without shared state; any thread.

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace fencelock::storage {

inline constexpr size_t kSnapshotHeaderBytes = 64;

// The file name of the snapshot at (term, index), e.g.
// "0000000000000003-000000000000002a.snap": fixed-width hex so names sort
// in log order.
std::string snapshot_file_name(uint64_t term, uint64_t index);

// True for names of the form snapshot_file_name() produces or of its
// temporary files (".snap.tmp"), i.e. the files this module owns in the
// snapshot directory.
bool is_snapshot_file_name(std::string_view name);

// Writes `data` as the snapshot at (index, term) to `path`: first to
// "<path>.tmp", then (when `sync`) fsync of the file, rename over `path`, and
// fsync of the directory, so after an OK return the file survives a crash
// and a crash before it leaves either no file or only a ".tmp" file.
// Returns INTERNAL with a message naming the path and the system error
// (e.g. "No space left on device") on failure, after removing the .tmp file.
Status write_snapshot_file(const std::filesystem::path& path, uint64_t index, uint64_t term,
                           std::string_view data, bool sync);

// Reads the snapshot file at `path` and returns its data. Checks the magic,
// that the header names (index, term), the length and the checksum; returns
// INTERNAL with a message naming the path and what is wrong ("checksum
// mismatch", "truncated", ...) otherwise. Never returns partial data.
Result<std::string> read_snapshot_file(const std::filesystem::path& path, uint64_t index,
                                       uint64_t term);

// fsyncs the directory `dir` so that a rename or unlink inside it is
// durable. Returns INTERNAL naming the directory on failure.
Status sync_directory(const std::filesystem::path& dir);

// Removes `files` (a missing one is no error), then syncs their
// directories when `sync`. A file that cannot be removed is logged and left
// (the log removes leftovers when it opens). Any thread.
void remove_files(const std::vector<std::string>& files, bool sync);

}  // namespace fencelock::storage
