#include "storage/zero_filled_wal.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <unistd.h>

#include <boost/crc.hpp>
#include <cerrno>
#include <string>
#include <vector>

#include "common/logging.h"
#include "storage/posix_file.h"

namespace fencelock::storage {

namespace {

using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

bool is_wal(const std::string& name) {
  return name.size() > 4 && name.compare(name.size() - 4, 4, ".log") == 0;
}

// The WAL file RocksDB writes, with zeros kept ahead of its end. RocksDB
// writes sequentially from offset 0 through the file it opened; this
// wrapper writes the zeros through a descriptor of its own, always beyond
// every byte RocksDB has written, so the two never overlap.
class ZeroFilledFile final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  ZeroFilledFile(std::unique_ptr<rocksdb::FSWritableFile> target, std::string path, int fd,
                 uint64_t chunk_bytes)
      : FSWritableFileOwnerWrapper(std::move(target)),
        path_(std::move(path)),
        fd_(fd),
        chunk_bytes_(chunk_bytes) {}

  ~ZeroFilledFile() override {
    if (fd_ >= 0) ::close(fd_);
  }

  // Zero-fills [0, bytes) rounded up to whole chunks.
  IOStatus fill_to(uint64_t bytes) {
    static const std::vector<char> zeros(kWalZeroChunkBytes, 0);
    if (bytes <= zeroed_) return IOStatus::OK();
    while (zeroed_ < bytes) {
      uint64_t end = zeroed_ + chunk_bytes_;
      for (uint64_t at = zeroed_; at < end;) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(end - at, zeros.size()));
        ssize_t written = ::pwrite(fd_, zeros.data(), n, static_cast<off_t>(at));
        if (written < 0) {
          if (errno == EINTR) continue;
          return IOStatus::IOError("zero-filling " + path_ + ": " + system_error());
        }
        at += static_cast<uint64_t>(written);
      }
      zeroed_ = end;
    }
    // Durable before RocksDB's bytes land in the region, so a later
    // fdatasync of RocksDB's has no size or extent change to write.
    if (::fdatasync(fd_) != 0) {
      return IOStatus::IOError("syncing zeros of " + path_ + ": " + system_error());
    }
    return IOStatus::OK();
  }

  IOStatus Append(const Slice& data, const IOOptions& options, IODebugContext* dbg) override {
    IOStatus status = fill_to(written_ + data.size());
    if (!status.ok()) return status;
    status = target()->Append(data, options, dbg);
    if (status.ok()) written_ += data.size();
    return status;
  }

  IOStatus Append(const Slice& data, const IOOptions& options,
                  const rocksdb::DataVerificationInfo& verification_info,
                  IODebugContext* dbg) override {
    IOStatus status = fill_to(written_ + data.size());
    if (!status.ok()) return status;
    status = target()->Append(data, options, verification_info, dbg);
    if (status.ok()) written_ += data.size();
    return status;
  }

  // RocksDB writes WALs sequentially; positioned writes are not expected
  // (PosixWritableFile does not support them either).
  IOStatus PositionedAppend(const Slice&, uint64_t, const IOOptions&, IODebugContext*) override {
    return IOStatus::NotSupported("positioned append to a zero-filled WAL");
  }
  IOStatus PositionedAppend(const Slice&, uint64_t, const IOOptions&,
                            const rocksdb::DataVerificationInfo&, IODebugContext*) override {
    return IOStatus::NotSupported("positioned append to a zero-filled WAL");
  }

  IOStatus Truncate(uint64_t size, const IOOptions& options, IODebugContext* dbg) override {
    IOStatus status = target()->Truncate(size, options, dbg);
    if (status.ok()) {
      written_ = size;
      zeroed_ = std::min(zeroed_, size);
    }
    return status;
  }

  IOStatus Close(const IOOptions& options, IODebugContext* dbg) override {
    IOStatus status = target()->Close(options, dbg);
    if (fd_ >= 0) {
      // RocksDB trims what it preallocated; the zeros beyond are ours.
      if (status.ok() && ::ftruncate(fd_, static_cast<off_t>(written_)) != 0) {
        status = IOStatus::IOError("trimming zeros of " + path_ + ": " + system_error());
      }
      ::close(fd_);
      fd_ = -1;
    }
    return status;
  }

 private:
  std::string path_;
  int fd_;
  uint64_t chunk_bytes_;
  uint64_t written_ = 0;  // bytes RocksDB has appended
  uint64_t zeroed_ = 0;   // [0, zeroed_) is zero-filled or holds RocksDB's bytes
};

class ZeroFilledWalFileSystem final : public rocksdb::FileSystemWrapper {
 public:
  ZeroFilledWalFileSystem(const std::shared_ptr<rocksdb::FileSystem>& target, uint64_t chunk_bytes)
      : FileSystemWrapper(target), chunk_bytes_(chunk_bytes) {}

  const char* Name() const override { return "FencelockZeroFilledWal"; }

  IOStatus NewWritableFile(const std::string& name, const rocksdb::FileOptions& options,
                           std::unique_ptr<rocksdb::FSWritableFile>* result,
                           IODebugContext* dbg) override {
    IOStatus status = target()->NewWritableFile(name, options, result, dbg);
    if (!status.ok() || !is_wal(name) || options.use_direct_writes) return status;
    int fd = ::open(name.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return IOStatus::IOError("opening " + name + " to zero-fill: " + system_error());
    auto file = std::make_unique<ZeroFilledFile>(std::move(*result), name, fd, chunk_bytes_);
    status = file->fill_to(1);
    if (!status.ok()) return status;
    *result = std::move(file);
    return status;
  }

 private:
  uint64_t chunk_bytes_;
};

// --- RocksDB's log format (db/log_format.h) ----------------------------------

constexpr uint64_t kBlockBytes = 32768;
constexpr uint64_t kHeaderBytes = 7;
constexpr uint32_t kMaskDelta = 0xa282ead8u;

uint32_t unmask_crc(uint32_t masked) {
  uint32_t rot = masked - kMaskDelta;
  return (rot >> 17) | (rot << 15);
}

// CRC-32C (Castagnoli), as RocksDB's crc32c::Value.
uint32_t crc32c(const char* data, size_t n) {
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
  crc.process_bytes(data, n);
  return crc.checksum();
}

uint32_t fixed32(const char* p) {
  return static_cast<uint32_t>(static_cast<unsigned char>(p[0])) |
         (static_cast<uint32_t>(static_cast<unsigned char>(p[1])) << 8) |
         (static_cast<uint32_t>(static_cast<unsigned char>(p[2])) << 16) |
         (static_cast<uint32_t>(static_cast<unsigned char>(p[3])) << 24);
}

// RocksDB's record types of the legacy format (db/log_format.h).
enum RecordType : unsigned char { kFullType = 1, kFirstType = 2, kMiddleType = 3, kLastType = 4 };

// The record at `at` is intact: a non-zero type, a length inside its
// block and a matching checksum. Sets *end past it and *type.
bool intact_record(const std::string& file, uint64_t at, uint64_t* end, unsigned char* type) {
  uint64_t block_end = std::min<uint64_t>((at / kBlockBytes + 1) * kBlockBytes, file.size());
  if (at + kHeaderBytes > block_end) return false;
  const char* header = file.data() + at;
  uint64_t length = static_cast<unsigned char>(header[4]) |
                    (static_cast<uint64_t>(static_cast<unsigned char>(header[5])) << 8);
  *type = static_cast<unsigned char>(header[6]);
  if (*type == 0 || at + kHeaderBytes + length > block_end) return false;
  if (crc32c(header + 6, 1 + length) != unmask_crc(fixed32(header))) return false;
  *end = at + kHeaderBytes + length;
  return true;
}

// Where the next record would start after `at`: the next block when fewer
// than a header's bytes remain in this one (the writer zero-pads them).
uint64_t next_record_start(uint64_t at) {
  uint64_t left = kBlockBytes - at % kBlockBytes;
  return left < kHeaderBytes ? at + left : at;
}

}  // namespace

std::unique_ptr<rocksdb::Env> make_zero_filled_wal_env(uint64_t chunk_bytes,
                                                       std::shared_ptr<rocksdb::FileSystem> base) {
  if (!base) base = rocksdb::FileSystem::Default();
  auto fs = std::make_shared<ZeroFilledWalFileSystem>(base, chunk_bytes);
  return rocksdb::NewCompositeEnv(fs);
}

Result<WalTail> trim_torn_wal_tail(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    return Status(lockpb::INTERNAL,
                  fmt::format("cannot open write-ahead log {}: {}", path.string(), system_error()));
  }
  auto read = read_to_end(fd, "write-ahead log", path);
  if (!read.ok()) {
    ::close(fd);
    return read.status();
  }
  const std::string file = std::move(read).value();

  // Walk the intact records. A logical record larger than what is left of
  // a block is split into FIRST, MIDDLE... and LAST fragments; it is whole
  // only with its LAST, so `complete` stays at the end of the last whole
  // record while the walk is inside a split one.
  WalTail tail;
  tail.file_bytes = file.size();
  uint64_t at = 0;
  uint64_t complete = 0;
  bool in_fragments = false;
  while (true) {
    at = next_record_start(at);
    uint64_t end = 0;
    unsigned char type = 0;
    if (at >= file.size() || !intact_record(file, at, &end, &type)) break;
    bool continues = type == kMiddleType || type == kLastType;
    if (continues != in_fragments) break;  // out of sequence: RocksDB's to judge
    in_fragments = type == kFirstType || type == kMiddleType;
    at = end;
    if (!in_fragments) complete = end;
  }
  uint64_t stop = std::min<uint64_t>(at, file.size());
  tail.intact_bytes = complete;

  // The last non-zero byte after the last whole record.
  uint64_t data_end = file.size();
  while (data_end > complete && file[data_end - 1] == '\0') --data_end;
  bool only_zeros_follow = data_end == complete;
  bool ends_in_zeros = data_end < file.size();
  // An intact record in a block after the one where the walk stopped means
  // damage in the middle of the log (RocksDB resynchronizes at block
  // starts too): RocksDB's to report, not a torn tail.
  bool intact_later = false;
  for (uint64_t block = (stop / kBlockBytes + 1) * kBlockBytes; !intact_later && block < data_end;
       block += kBlockBytes) {
    uint64_t end = 0;
    unsigned char type = 0;
    intact_later = intact_record(file, block, &end, &type);
  }
  if (!only_zeros_follow && ends_in_zeros && !intact_later) {
    if (::ftruncate(fd, static_cast<off_t>(data_end)) != 0 || ::fsync(fd) != 0) {
      std::string error = system_error();
      ::close(fd);
      return Status(lockpb::INTERNAL,
                    fmt::format("cannot trim the torn tail of {}: {}", path.string(), error));
    }
    tail.trimmed_to = data_end;
    get_logger("storage")->warn(
        "{}: torn last record after {} intact bytes; trimmed its zero padding ({} -> {} bytes) "
        "so that recovery drops it as an unfinished write",
        path.string(), tail.intact_bytes, tail.file_bytes, data_end);
  }
  ::close(fd);
  return tail;
}

}  // namespace fencelock::storage
