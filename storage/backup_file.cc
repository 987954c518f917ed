#include "storage/backup_file.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <spdlog/fmt/fmt.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "storage/posix_file.h"

namespace fencelock::storage {
namespace {

// Offsets of the fixed part of the header (backup_file.h).
constexpr size_t kFixedHeaderBytes = 72;
constexpr size_t kDigestBytes = 32;

void put_u32(std::string& out, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(value >> shift));
}

void put_u64(std::string& out, uint64_t value) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(value >> shift));
}

uint32_t get_u32(std::string_view in) {
  uint32_t value = 0;
  for (size_t i = 0; i < 4; ++i) value = (value << 8) | static_cast<unsigned char>(in[i]);
  return value;
}

uint64_t get_u64(std::string_view in) {
  uint64_t value = 0;
  for (size_t i = 0; i < 8; ++i) value = (value << 8) | static_cast<unsigned char>(in[i]);
  return value;
}

std::string encode_header(const BackupHeader& header) {
  std::string out(kBackupMagic);
  put_u32(out, kBackupFormatVersion);
  const size_t total = kFixedHeaderBytes + 4 + header.cluster_id.size() + 4 +
                       header.conf_state.size() + kDigestBytes;
  put_u32(out, static_cast<uint32_t>(total));
  put_u64(out, header.index);
  put_u64(out, header.term);
  put_u64(out, header.data_bytes);
  out.append(reinterpret_cast<const char*>(header.data_sha256.data()), kDigestBytes);
  put_u32(out, static_cast<uint32_t>(header.cluster_id.size()));
  out.append(header.cluster_id);
  put_u32(out, static_cast<uint32_t>(header.conf_state.size()));
  out.append(header.conf_state);
  out.append(to_bytes(sha256(out)));
  return out;
}

Status io_error(const std::string& what, const std::filesystem::path& path) {
  return Status(lockpb::INTERNAL, fmt::format("{} {}: {}", what, path.string(), system_error()));
}

Status write_all(int fd, std::string_view data, const std::filesystem::path& path) {
  while (!data.empty()) {
    ssize_t written = ::write(fd, data.data(), data.size());
    if (written < 0) {
      if (errno == EINTR) continue;
      return io_error("cannot write backup file", path);
    }
    data.remove_prefix(static_cast<size_t>(written));
  }
  return Status::ok_status();
}

Status sync_dir(const std::filesystem::path& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return io_error("cannot open directory", dir);
  Status status = ::fsync(fd) == 0 ? Status::ok_status() : io_error("cannot fsync directory", dir);
  ::close(fd);
  return status;
}

}  // namespace

// --- SHA-256 ---------------------------------------------------------------------

struct Sha256::Context {
  EVP_MD_CTX* ctx = nullptr;
  bool ok = false;
};

Sha256::Sha256() : context_(std::make_unique<Context>()) {
  context_->ctx = EVP_MD_CTX_new();
  context_->ok =
      context_->ctx != nullptr && EVP_DigestInit_ex(context_->ctx, EVP_sha256(), nullptr) == 1;
}

Sha256::~Sha256() {
  EVP_MD_CTX_free(context_->ctx);
}

void Sha256::update(std::string_view bytes) {
  if (context_->ok && !bytes.empty()) {
    context_->ok = EVP_DigestUpdate(context_->ctx, bytes.data(), bytes.size()) == 1;
  }
}

Sha256Digest Sha256::finish() {
  Sha256Digest digest{};
  unsigned int digest_bytes = 0;
  bool ok = context_->ok && EVP_DigestFinal_ex(context_->ctx, digest.data(), &digest_bytes) == 1 &&
            digest_bytes == digest.size();
  context_->ok = false;
  // All zeros never matches real data's digest, so a failure of OpenSSL
  // shows as a checksum mismatch rather than passing unnoticed.
  if (!ok) digest.fill(0);
  return digest;
}

Sha256Digest sha256(std::string_view bytes) {
  Sha256 hash;
  hash.update(bytes);
  return hash.finish();
}

std::string to_hex(const Sha256Digest& digest) {
  std::string out;
  out.reserve(2 * digest.size());
  for (unsigned char byte : digest) out += fmt::format("{:02x}", byte);
  return out;
}

std::string to_bytes(const Sha256Digest& digest) {
  return std::string(reinterpret_cast<const char*>(digest.data()), digest.size());
}

bool from_bytes(std::string_view raw, Sha256Digest& digest) {
  if (raw.size() != digest.size()) return false;
  std::memcpy(digest.data(), raw.data(), digest.size());
  return true;
}

// --- Writing -----------------------------------------------------------------------

BackupFileWriter::BackupFileWriter(std::filesystem::path path, BackupHeader header, int fd)
    : path_(std::move(path)), tmp_(path_), header_(std::move(header)), fd_(fd) {
  tmp_ += ".tmp";
}

Result<std::unique_ptr<BackupFileWriter>> BackupFileWriter::create(
    const std::filesystem::path& path, const BackupHeader& header) {
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return io_error("cannot create backup file", tmp);
  std::unique_ptr<BackupFileWriter> writer(new BackupFileWriter(path, header, fd));
  Status status = write_all(fd, encode_header(header), tmp);
  if (!status.ok()) return status;  // the destructor removes the .tmp file
  return writer;
}

BackupFileWriter::~BackupFileWriter() {
  abandon();
}

void BackupFileWriter::abandon() {
  if (fd_ < 0) return;
  ::close(fd_);
  fd_ = -1;
  ::unlink(tmp_.c_str());
}

Status BackupFileWriter::append(std::string_view data) {
  if (fd_ < 0) return Status(lockpb::FAILED_PRECONDITION, "backup file already finished");
  if (data.size() > header_.data_bytes - written_) {
    return Status(lockpb::INVALID_ARGUMENT,
                  fmt::format("backup data exceeds the announced {} bytes", header_.data_bytes));
  }
  Status status = write_all(fd_, data, tmp_);
  if (!status.ok()) return status;
  hash_.update(data);
  written_ += data.size();
  return Status::ok_status();
}

Status BackupFileWriter::commit() {
  if (fd_ < 0) return Status(lockpb::FAILED_PRECONDITION, "backup file already finished");
  Status status = Status::ok_status();
  if (written_ != header_.data_bytes) {
    status = Status(lockpb::INTERNAL,
                    fmt::format("received {} of {} bytes", written_, header_.data_bytes));
  } else if (Sha256Digest got = hash_.finish(); got != header_.data_sha256) {
    status = Status(lockpb::INTERNAL,
                    fmt::format("checksum mismatch: the cluster reported sha256 {}, the received "
                                "data hashes to {}",
                                to_hex(header_.data_sha256), to_hex(got)));
  } else if (::fsync(fd_) != 0) {
    status = io_error("cannot fsync backup file", tmp_);
  }
  if (!status.ok()) {
    abandon();
    return status;
  }
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    status = io_error("cannot close backup file", tmp_);
  } else if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    status = io_error("cannot rename the backup file to", path_);
  }
  if (!status.ok()) {
    ::unlink(tmp_.c_str());
    return status;
  }
  return sync_dir(path_.parent_path());
}

Status write_backup_file(const std::filesystem::path& path, BackupHeader header,
                         std::string_view data) {
  header.data_bytes = data.size();
  header.data_sha256 = sha256(data);
  auto writer = BackupFileWriter::create(path, header);
  if (!writer.ok()) return writer.status();
  Status status = writer.value()->append(data);
  if (!status.ok()) return status;
  return writer.value()->commit();
}

// --- Reading -------------------------------------------------------------------------

namespace {

// Checks and splits the whole contents of the backup file at `path`
// (moving the data out of `contents`).
Result<Backup> parse_backup_file(const std::filesystem::path& path, std::string& contents) {
  auto bad = [&](const std::string& what) {
    return Status(lockpb::INVALID_ARGUMENT, fmt::format("backup file {} {}", path.string(), what));
  };
  auto damaged = [&](const std::string& what) { return bad("is damaged: " + what); };
  std::string_view in = contents;

  if (in.size() < kBackupMagic.size() || in.substr(0, kBackupMagic.size()) != kBackupMagic) {
    return bad("is not a fencelock backup (bad magic)");
  }
  if (in.size() < kFixedHeaderBytes) {
    return damaged(fmt::format("truncated header ({} bytes)", in.size()));
  }
  const uint32_t header_bytes = get_u32(in.substr(12));
  if (header_bytes < kFixedHeaderBytes + 8 + kDigestBytes || header_bytes > kMaxBackupHeaderBytes) {
    return damaged(fmt::format("bad header length {}", header_bytes));
  }
  if (in.size() < header_bytes) {
    return damaged(fmt::format("truncated header ({} of {} bytes)", in.size(), header_bytes));
  }
  const std::string_view header_in = in.substr(0, header_bytes);
  Sha256Digest header_digest{};
  from_bytes(header_in.substr(header_bytes - kDigestBytes), header_digest);
  if (sha256(header_in.substr(0, header_bytes - kDigestBytes)) != header_digest) {
    return damaged("header checksum mismatch");
  }
  const uint32_t version = get_u32(in.substr(8));
  if (version != kBackupFormatVersion) {
    return bad(
        fmt::format("has format version {}, this build reads {}", version, kBackupFormatVersion));
  }

  Backup backup;
  BackupHeader& header = backup.header;
  header.index = get_u64(in.substr(16));
  header.term = get_u64(in.substr(24));
  header.data_bytes = get_u64(in.substr(32));
  from_bytes(in.substr(40, kDigestBytes), header.data_sha256);
  // The two length-prefixed strings must fill the header exactly.
  size_t pos = kFixedHeaderBytes;
  const size_t end = header_bytes - kDigestBytes;
  for (std::string* field : {&header.cluster_id, &header.conf_state}) {
    if (end - pos < 4) return damaged("bad header layout");
    const uint32_t length = get_u32(in.substr(pos));
    pos += 4;
    if (end - pos < length) return damaged("bad header layout");
    field->assign(in.substr(pos, length));
    pos += length;
  }
  if (pos != end) return damaged("bad header layout");

  const uint64_t data_in_file = in.size() - header_bytes;
  if (data_in_file != header.data_bytes) {
    return damaged(fmt::format("{}: the header says {} data bytes, the file holds {}",
                               data_in_file < header.data_bytes ? "truncated" : "trailing bytes",
                               header.data_bytes, data_in_file));
  }
  const std::string_view data = in.substr(header_bytes);
  if (Sha256Digest got = sha256(data); got != header.data_sha256) {
    return damaged(
        fmt::format("checksum mismatch: the header says sha256 {}, the data hashes to {}",
                    to_hex(header.data_sha256), to_hex(got)));
  }
  contents.erase(0, header_bytes);
  backup.data = std::move(contents);
  return backup;
}

}  // namespace

Result<Backup> read_backup_file(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_error("cannot open backup file", path);
  auto read = read_to_end(fd, "backup file", path);
  ::close(fd);
  if (!read.ok()) return read.status();
  return parse_backup_file(path, read.value());
}

}  // namespace fencelock::storage
