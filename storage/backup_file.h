#pragma once
// Backup files: a consistent snapshot of a whole cluster, as `fencelock
// snapshot save` writes it and `fencelockd --restore` reads it
// (docs/operations.md "Backup and restore"). A small header, then the state
// machine's snapshot bytes exactly as the cluster produced them.
//
// Format (integers big-endian):
//
//   offset  size  field
//        0     8  magic "FLBACKUP"
//        8     4  format version (kBackupFormatVersion)
//       12     4  header_bytes: the length of the whole header, this table
//                 through the header checksum
//       16     8  index       the last log index the snapshot includes
//       24     8  term        the term of that entry
//       32     8  data_bytes  the length of the data after the header
//       40    32  SHA-256 of the data
//       72     4  n, then n bytes: the cluster id (its --cluster-id)
//        .     4  m, then m bytes: the configuration, a serialized
//                 raftpb.ConfState (informational: a restored cluster takes
//                 its members from its own flags)
//        .    32  SHA-256 of the header bytes before it
//   header_bytes  data_bytes  the data
//
// The data's SHA-256 is the checksum the cluster reported for the snapshot
// (BackupInfo.sha256): a writer checks what it received against it before
// the file becomes visible, and a reader checks it again.
//
// Files are written to "<path>.tmp", fsynced, renamed over `path`, and the
// directory fsynced: a crash leaves either no file, the old one, or a .tmp.
//
// Thread-safety: free functions and value types; BackupFileWriter is used
// by one thread at a time.

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace fencelock::storage {

inline constexpr std::string_view kBackupMagic = "FLBACKUP";
inline constexpr uint32_t kBackupFormatVersion = 1;
// Bounds a reader accepts, far above anything real.
inline constexpr size_t kMaxBackupHeaderBytes = 1 << 20;

using Sha256Digest = std::array<unsigned char, 32>;

// SHA-256 (OpenSSL 3 EVP), fed piece by piece.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(std::string_view bytes);
  // The digest of everything fed; the object is spent afterwards.
  Sha256Digest finish();

 private:
  struct Context;
  std::unique_ptr<Context> context_;
};

// SHA-256 of `bytes` in one call.
Sha256Digest sha256(std::string_view bytes);
// Lower-case hex, 64 characters.
std::string to_hex(const Sha256Digest& digest);
// The digest as raw bytes (the wire's `bytes sha256`), and back: false when
// `raw` is not 32 bytes long.
std::string to_bytes(const Sha256Digest& digest);
bool from_bytes(std::string_view raw, Sha256Digest& digest);

struct BackupHeader {
  uint64_t index = 0;
  uint64_t term = 0;
  std::string cluster_id;
  std::string conf_state;  // a serialized raftpb::ConfState
  uint64_t data_bytes = 0;
  Sha256Digest data_sha256{};
};

struct Backup {
  BackupHeader header;
  std::string data;
};

// Writes a backup file piece by piece: create() writes the header to
// "<path>.tmp", append() the data as it arrives, commit() checks that
// exactly header.data_bytes arrived with header.data_sha256, then fsyncs
// and renames. A writer destroyed without a successful commit() removes
// the .tmp file, so a failed transfer never leaves a file at `path`.
class BackupFileWriter {
 public:
  // INTERNAL naming the path and the system error when the file cannot be
  // created or written.
  static Result<std::unique_ptr<BackupFileWriter>> create(const std::filesystem::path& path,
                                                          const BackupHeader& header);
  ~BackupFileWriter();
  BackupFileWriter(const BackupFileWriter&) = delete;
  BackupFileWriter& operator=(const BackupFileWriter&) = delete;

  // INVALID_ARGUMENT (nothing written) when the data would exceed
  // header.data_bytes; INTERNAL on a failed write.
  Status append(std::string_view data);
  uint64_t written() const { return written_; }
  // INTERNAL, with the .tmp file removed and nothing at `path`, when the
  // data is short ("received N of M bytes"), does not hash to the reported
  // checksum ("checksum mismatch: ..."), or cannot be synced or renamed.
  Status commit();

 private:
  BackupFileWriter(std::filesystem::path path, BackupHeader header, int fd);
  void abandon();

  std::filesystem::path path_;
  std::filesystem::path tmp_;
  BackupHeader header_;
  int fd_ = -1;
  uint64_t written_ = 0;
  Sha256 hash_;
};

// Writes `data` as a backup with `header`'s index, term, cluster id and
// configuration (data_bytes and data_sha256 are computed from `data`).
Status write_backup_file(const std::filesystem::path& path, BackupHeader header,
                         std::string_view data);

// Reads and checks a backup file: magic, format version, header checksum,
// length and data checksum. INVALID_ARGUMENT whose message names the path
// and what is wrong ("not a fencelock backup (bad magic)", "truncated: ...",
// "checksum mismatch ..."), or INTERNAL when it cannot be read. Never
// returns partial data.
Result<Backup> read_backup_file(const std::filesystem::path& path);

}  // namespace fencelock::storage
