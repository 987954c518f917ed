#include "storage/snapshot_file.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <spdlog/fmt/fmt.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <memory>
#include <set>
#include <utility>

#include "common/logging.h"

#include "storage/posix_file.h"

namespace fencelock::storage {
namespace {

constexpr std::string_view kMagic = "FLSNAP01";
constexpr size_t kChecksumOffset = 32;
constexpr size_t kChecksumBytes = 32;
constexpr std::string_view kSuffix = ".snap";
constexpr std::string_view kTmpSuffix = ".snap.tmp";

void put_u64(char* out, uint64_t value) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<char>(value & 0xff);
    value >>= 8;
  }
}

uint64_t get_u64(const char* in) {
  uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value = (value << 8) | static_cast<unsigned char>(in[i]);
  return value;
}

// SHA-256 of header[0, 32) followed by data.
std::array<unsigned char, kChecksumBytes> checksum(std::string_view header_prefix,
                                                   std::string_view data) {
  std::array<unsigned char, kChecksumBytes> digest{};
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  unsigned int digest_bytes = 0;
  bool ok = ctx != nullptr && EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) == 1 &&
            EVP_DigestUpdate(ctx.get(), header_prefix.data(), header_prefix.size()) == 1 &&
            EVP_DigestUpdate(ctx.get(), data.data(), data.size()) == 1 &&
            EVP_DigestFinal_ex(ctx.get(), digest.data(), &digest_bytes) == 1;
  if (!ok || digest_bytes != kChecksumBytes) digest.fill(0);  // never matches a real file
  return digest;
}

Status io_error(const std::string& what, const std::filesystem::path& path) {
  return Status(lockpb::INTERNAL, fmt::format("{} {}: {}", what, path.string(), system_error()));
}

// Bytes written between two write-back requests of a synced snapshot file.
constexpr size_t kWriteBackBytes = 8u << 20;

Status write_all(int fd, const char* data, size_t size, const std::filesystem::path& path) {
  while (size > 0) {
    ssize_t written = ::write(fd, data, size);
    if (written < 0) {
      if (errno == EINTR) continue;
      return io_error("cannot write snapshot file", path);
    }
    data += written;
    size -= static_cast<size_t>(written);
  }
  return Status::ok_status();
}

}  // namespace

std::string snapshot_file_name(uint64_t term, uint64_t index) {
  return fmt::format("{:016x}-{:016x}{}", term, index, kSuffix);
}

bool is_snapshot_file_name(std::string_view name) {
  return name.ends_with(kSuffix) || name.ends_with(kTmpSuffix);
}

Status sync_directory(const std::filesystem::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return io_error("cannot open directory", dir);
  int rc = ::fsync(fd);
  Status status = rc == 0 ? Status::ok_status() : io_error("cannot fsync directory", dir);
  ::close(fd);
  return status;
}

void remove_files(const std::vector<std::string>& files, bool sync) {
  std::set<std::filesystem::path> dirs;
  for (const std::string& file : files) {
    std::filesystem::path path(file);
    std::error_code ec;
    std::filesystem::remove(path, ec);
    if (ec) {
      get_logger("storage")->warn("cannot remove {}: {}", file, ec.message());
      continue;
    }
    dirs.insert(path.parent_path());
  }
  if (!sync) return;
  for (const auto& dir : dirs) (void)sync_directory(dir);
}

Status write_snapshot_file(const std::filesystem::path& path, uint64_t index, uint64_t term,
                           std::string_view data, bool sync) {
  std::array<char, kSnapshotHeaderBytes> header{};
  std::memcpy(header.data(), kMagic.data(), kMagic.size());
  put_u64(header.data() + 8, index);
  put_u64(header.data() + 16, term);
  put_u64(header.data() + 24, data.size());
  auto digest = checksum(std::string_view(header.data(), kChecksumOffset), data);
  std::memcpy(header.data() + kChecksumOffset, digest.data(), digest.size());

  std::filesystem::path tmp = path;
  tmp += ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return io_error("cannot create snapshot file", tmp);
  Status status = write_all(fd, header.data(), header.size(), tmp);
  // A synced file is written back as it is written, a few MiB at a time,
  // rather than all at the fsync: hundreds of MiB of dirty pages flushed
  // at once hold up every other fsync on the disk meanwhile (the Raft
  // log's, which each commit waits for). At most two pieces are dirty.
  for (size_t at = 0; status.ok() && at < data.size(); at += kWriteBackBytes) {
    const size_t bytes = std::min(kWriteBackBytes, data.size() - at);
    status = write_all(fd, data.data() + at, bytes, tmp);
    if (!status.ok() || !sync) continue;
    const off64_t offset = static_cast<off64_t>(kSnapshotHeaderBytes + at);
    ::sync_file_range(fd, offset, static_cast<off64_t>(bytes), SYNC_FILE_RANGE_WRITE);
    if (at >= kWriteBackBytes) {
      ::sync_file_range(fd, offset - static_cast<off64_t>(kWriteBackBytes),
                        static_cast<off64_t>(kWriteBackBytes),
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                            SYNC_FILE_RANGE_WAIT_AFTER);
    }
  }
  if (status.ok() && sync && ::fsync(fd) != 0) status = io_error("cannot fsync snapshot file", tmp);
  if (::close(fd) != 0 && status.ok()) status = io_error("cannot close snapshot file", tmp);
  if (status.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    status = io_error("cannot rename snapshot file to", path);
  }
  if (!status.ok()) {
    ::unlink(tmp.c_str());
    return status;
  }
  if (sync) return sync_directory(path.parent_path());
  return Status::ok_status();
}

Result<std::string> read_snapshot_file(const std::filesystem::path& path, uint64_t index,
                                       uint64_t term) {
  auto damaged = [&](const std::string& what) {
    return Status(lockpb::INTERNAL,
                  fmt::format("snapshot file {} is damaged: {}", path.string(), what));
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_error("cannot open snapshot file", path);
  auto read = read_to_end(fd, "snapshot file", path);
  ::close(fd);
  if (!read.ok()) return read.status();
  std::string contents = std::move(read).value();

  if (contents.size() < kSnapshotHeaderBytes) {
    return damaged(fmt::format("truncated header ({} bytes)", contents.size()));
  }
  if (std::string_view(contents).substr(0, kMagic.size()) != kMagic) return damaged("bad magic");
  uint64_t file_index = get_u64(contents.data() + 8);
  uint64_t file_term = get_u64(contents.data() + 16);
  uint64_t data_bytes = get_u64(contents.data() + 24);
  if (data_bytes != contents.size() - kSnapshotHeaderBytes) {
    return damaged(fmt::format("header says {} data bytes, file holds {}", data_bytes,
                               contents.size() - kSnapshotHeaderBytes));
  }
  std::string_view data = std::string_view(contents).substr(kSnapshotHeaderBytes);
  auto digest = checksum(std::string_view(contents.data(), kChecksumOffset), data);
  if (std::memcmp(digest.data(), contents.data() + kChecksumOffset, digest.size()) != 0) {
    return damaged("checksum mismatch");
  }
  if (file_index != index || file_term != term) {
    return damaged(fmt::format("holds index {} term {}, expected index {} term {}", file_index,
                               file_term, index, term));
  }
  return std::string(data);
}

}  // namespace fencelock::storage
