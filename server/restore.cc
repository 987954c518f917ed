#include "server/restore.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/logging.h"
#include "storage/backup_file.h"
#include "storage/snapshot_file.h"

namespace fencelock::server {

namespace {

std::shared_ptr<spdlog::logger> logger() {
  static std::shared_ptr<spdlog::logger> instance = get_logger("restore");
  return instance;
}

Status failed(const std::string& message) {
  return Status(lockpb::FAILED_PRECONDITION, message);
}

// The directory's first entry ("" when it is empty or missing), or an error.
Result<std::string> first_entry(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) {
    if (ec) return Status(lockpb::INTERNAL, "cannot read " + dir.string() + ": " + ec.message());
    return std::string();
  }
  if (!std::filesystem::is_directory(dir, ec)) {
    return failed("--data-dir " + dir.string() + " is not a directory");
  }
  std::filesystem::directory_iterator it(dir, ec);
  if (ec) return Status(lockpb::INTERNAL, "cannot list " + dir.string() + ": " + ec.message());
  if (it == std::filesystem::directory_iterator()) return std::string();
  return it->path().filename().string();
}

// Creates the marker durably: after a crash it is there whenever anything
// else of the restore is.
Status write_marker(const std::filesystem::path& dir) {
  std::filesystem::path marker = dir / kRestoringMarker;
  int fd = ::open(marker.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || ::fsync(fd) != 0) {
    std::string error = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return Status(lockpb::INTERNAL, "cannot create " + marker.string() + ": " + error);
  }
  ::close(fd);
  return storage::sync_directory(dir);
}

}  // namespace

Status check_no_unfinished_restore(const std::filesystem::path& dir) {
  std::error_code ec;
  if (std::filesystem::exists(dir / kRestoringMarker, ec)) {
    return failed("data directory " + dir.string() + " holds an unfinished restore (" +
                  std::string(kRestoringMarker) +
                  "): start the node with --restore again, or empty the directory");
  }
  return Status();
}

Status restore_data_dir(const std::filesystem::path& backup_file, uint64_t token_floor,
                        const sm::Limits& limits, storage::DiskLogOptions options) {
  const std::filesystem::path dir = options.dir;
  std::error_code ec;
  const bool unfinished = std::filesystem::exists(dir / kRestoringMarker, ec);
  if (!unfinished) {
    auto entry = first_entry(dir);
    if (!entry.ok()) return entry.status();
    if (!entry.value().empty()) {
      return failed("--restore needs an empty data directory, but " + dir.string() + " holds " +
                    entry.value() + " (a node restored before starts again without --restore)");
    }
  }

  auto backup = storage::read_backup_file(backup_file);
  if (!backup.ok()) return backup.status();
  const storage::BackupHeader& header = backup.value().header;
  auto invalid = [&](const std::string& what) {
    return Status(lockpb::INVALID_ARGUMENT, "backup file " + backup_file.string() + " " + what);
  };
  if (header.index == 0 || header.term == 0) return invalid("holds no log index or term");
  sm::LockStateMachine state(limits);
  if (sm::Status status = state.restore(backup.value().data); !status.ok()) {
    return invalid("does not restore: " + status.message());
  }
  if (state.applied_index() > header.index) {
    return invalid("holds a state at index " + std::to_string(state.applied_index()) +
                   " beyond its header's index " + std::to_string(header.index));
  }
  const uint64_t old_epoch = state.token_epoch();
  if (sm::Status status = state.advance_token_epoch(token_floor); !status.ok()) {
    return invalid("cannot start a new token epoch: " + status.message());
  }
  // The new log starts at the new epoch's first index too. A session's id is
  // the index of its OpenSession, so every session the new cluster opens
  // gets an id the old cluster never gave out, after the backup included:
  // a client whose session the backup does not know is told
  // SESSION_EXPIRED, and never shares another client's session.
  const uint64_t index = std::max(header.index, state.token_epoch() << sm::kTokenEpochBits);
  raftpb::Snapshot& snapshot = options.initial_snapshot;
  snapshot.mutable_metadata()->set_index(index);
  snapshot.mutable_metadata()->set_term(header.term);
  snapshot.set_data(state.snapshot());
  const std::string state_sha256 = storage::to_hex(storage::sha256(snapshot.data()));

  if (unfinished) {
    logger()->warn("{} holds an unfinished restore: removing what it wrote", dir.string());
    for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().filename() == kRestoringMarker) continue;
      std::filesystem::remove_all(it->path(), ec);
      if (ec) break;
    }
    if (ec) return Status(lockpb::INTERNAL, "cannot empty " + dir.string() + ": " + ec.message());
  }
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return Status(lockpb::INTERNAL,
                  "cannot create data directory " + dir.string() + ": " + ec.message());
  }
  if (Status status = write_marker(dir); !status.ok()) return status;
  {
    auto log = storage::DiskLog::open(options);
    if (!log.ok()) return log.status();
  }
  if (!std::filesystem::remove(dir / kRestoringMarker, ec) || ec) {
    return Status(lockpb::INTERNAL, "cannot remove " + (dir / kRestoringMarker).string() + ": " +
                                        (ec ? ec.message() : "it is gone"));
  }
  if (Status status = storage::sync_directory(dir); !status.ok()) return status;
  logger()->info(
      "restored {} into {}: backup of cluster {} at index {} term {}, {} sessions, {} locks; "
      "token epoch {} -> {}, next token {}; the log goes on after index {}; state sha256 {} "
      "(the same on every node restored from this file)",
      backup_file.string(), dir.string(), header.cluster_id, header.index, header.term,
      state.session_count(), state.lock_count(), old_epoch, state.token_epoch(), state.next_token(),
      index, state_sha256);
  return Status();
}

}  // namespace fencelock::server
