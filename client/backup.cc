// Client::save_snapshot: BackupBegin, then BackupChunk until the end, into a
// backup file (server/backups.h has the node's side).

#include "client/client.h"
#include "common/logging.h"
#include "storage/backup_file.h"

namespace fencelock::client {

namespace {

constexpr int kAttempts = 3;
// The leader encodes and hashes the whole state before it answers
// BackupBegin: allow it more than an ordinary request.
constexpr std::chrono::milliseconds kBeginExtraTimeout{60'000};
constexpr uint32_t kMaxChunkBytes = 1u << 20;

// Room in a response frame beside a chunk's data.
constexpr uint32_t kFrameHeadroomBytes = 1024;

}  // namespace

Result<SavedSnapshot> Client::save_snapshot(const std::string& path) {
  auto logger = get_logger("fencelock-client");
  const uint32_t max_frame = options().max_frame_bytes;
  const uint32_t chunk_bytes = max_frame > 2 * kFrameHeadroomBytes
                                   ? std::min(kMaxChunkBytes, max_frame - kFrameHeadroomBytes)
                                   : max_frame / 2;
  Status last;
  for (int attempt = 1; attempt <= kAttempts; ++attempt) {
    clientpb::Request begin;
    begin.mutable_backup_begin();
    clientpb::Response begun = call(std::move(begin), kBeginExtraTimeout);
    if (begun.code() != lockpb::OK) return response_status(begun);
    if (!begun.has_backup_info()) {
      return Status(lockpb::INTERNAL, "the cluster answered BackupBegin without a BackupInfo");
    }
    const clientpb::BackupInfo& info = begun.backup_info();
    storage::BackupHeader header;
    header.index = info.index();
    header.term = info.term();
    header.cluster_id = info.cluster_id();
    header.conf_state = info.conf_state();
    header.data_bytes = info.size();
    if (!storage::from_bytes(info.sha256(), header.data_sha256)) {
      return Status(lockpb::INTERNAL, "the cluster's BackupInfo has no SHA-256");
    }
    auto writer = storage::BackupFileWriter::create(path, header);
    if (!writer.ok()) return writer.status();

    bool lost = false;
    while (writer.value()->written() < header.data_bytes) {
      clientpb::Request request;
      clientpb::BackupChunk& chunk = *request.mutable_backup_chunk();
      chunk.set_backup_id(info.backup_id());
      chunk.set_offset(writer.value()->written());
      chunk.set_max_bytes(chunk_bytes);
      clientpb::Response response = call(std::move(request));
      if (response.code() == lockpb::NOT_FOUND) {
        // Another node answered (the connection moved) or the backup was
        // dropped: take a new one.
        last = response_status(response);
        logger->warn("backup at index {} lost after {} of {} bytes ({}); starting again",
                     header.index, writer.value()->written(), header.data_bytes, last.to_string());
        lost = true;
        break;
      }
      if (response.code() != lockpb::OK) return response_status(response);
      const clientpb::BackupData& data = response.backup_data();
      if (data.offset() != writer.value()->written() || data.data().empty()) {
        return Status(lockpb::INTERNAL, "the cluster answered a backup chunk at offset " +
                                            std::to_string(writer.value()->written()) + " with " +
                                            std::to_string(data.data().size()) +
                                            " bytes at offset " + std::to_string(data.offset()));
      }
      if (Status status = writer.value()->append(data.data()); !status.ok()) return status;
    }
    if (lost) continue;

    // Frees the node's copy now rather than after its idle timeout.
    clientpb::Request end;
    end.mutable_backup_end()->set_backup_id(info.backup_id());
    call_async(std::move(end), [](clientpb::Response) {});

    if (Status status = writer.value()->commit(); !status.ok()) return status;
    SavedSnapshot saved;
    saved.index = info.index();
    saved.term = info.term();
    saved.size = info.size();
    saved.sha256 = storage::to_hex(header.data_sha256);
    saved.cluster_id = info.cluster_id();
    saved.node_id = info.node_id();
    return saved;
  }
  return Status(lockpb::UNAVAILABLE, "backup lost " + std::to_string(kAttempts) +
                                         " times in a row; last: " + last.to_string());
}

}  // namespace fencelock::client
