#include "server/backups.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "storage/backup_file.h"

namespace fencelock::server {

namespace {

// splitmix64: spreads a counter into well-mixed 64-bit ids.
uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

}  // namespace

Backups::Backups(uint64_t self_id, uint64_t seed, uint32_t max_frame_bytes, Responder& responder,
                 std::shared_ptr<spdlog::logger> logger)
    : self_id_(self_id),
      seed_(mix(seed ^ self_id)),
      max_chunk_bytes_(std::max<uint32_t>(1, std::min(kMaxChunkBytes, max_frame_bytes / 2))),
      responder_(responder),
      logger_(std::move(logger)) {}

uint64_t Backups::next_id(SteadyTime now) {
  // The clock too: a node restarted with the same --seed does not hand out
  // its old ids again.
  const auto ticks = static_cast<uint64_t>(now.time_since_epoch().count());
  uint64_t id = 0;
  while (id == 0 || held_.contains(id)) id = mix(seed_ ^ mix(ticks + ++counter_));
  return id;
}

void Backups::begin(const Caller& caller, SteadyTime now, const Source& source,
                    std::string snapshot) {
  while (held_.size() >= kMaxHeld) {
    auto oldest = std::min_element(held_.begin(), held_.end(), [](const auto& a, const auto& b) {
      return a.second.last_used < b.second.last_used;
    });
    logger_->info("{} dropped backup {:016x}: the least recently used of {} held", self_id_,
                  oldest->first, held_.size());
    held_.erase(oldest);
  }
  const uint64_t id = next_id(now);
  const storage::Sha256Digest digest = storage::sha256(snapshot);
  clientpb::Response response;
  clientpb::BackupInfo& info = *response.mutable_backup_info();
  info.set_backup_id(id);
  info.set_node_id(self_id_);
  info.set_index(source.index);
  info.set_term(source.term);
  info.set_size(snapshot.size());
  info.set_sha256(storage::to_bytes(digest));
  info.set_cluster_id(source.cluster_id);
  info.set_conf_state(source.conf_state.SerializeAsString());
  logger_->info("{} holds backup {:016x} at index {} term {}: {} bytes, sha256 {}", self_id_, id,
                source.index, source.term, snapshot.size(), storage::to_hex(digest));
  held_.emplace(id, Held{std::make_shared<const std::string>(std::move(snapshot)), now});
  responder_.respond(caller, std::move(response));
}

bool Backups::handles(const clientpb::Request& request) {
  return request.has_backup_chunk() || request.has_backup_end();
}

void Backups::serve(const Caller& caller, const clientpb::Request& request, SteadyTime now) {
  const uint64_t id = request.has_backup_chunk() ? request.backup_chunk().backup_id()
                                                 : request.backup_end().backup_id();
  auto it = held_.find(id);
  if (it == held_.end()) {
    responder_.error(
        caller, lockpb::NOT_FOUND,
        fmt::format("backup {:016x} is not held by node {}: it was taken on another "
                    "node, ended, or dropped (unused for {} s, or the least recently used of {}); "
                    "start the backup again",
                    id, self_id_, kIdleTimeout.count(), kMaxHeld));
    return;
  }
  if (request.has_backup_end()) {
    logger_->info("{} dropped backup {:016x}: ended by the client", self_id_, id);
    held_.erase(it);
    responder_.respond(caller, clientpb::Response());
    return;
  }
  it->second.last_used = now;
  const std::string& data = *it->second.data;
  const clientpb::BackupChunk& chunk = request.backup_chunk();
  if (chunk.offset() > data.size()) {
    responder_.error(caller, lockpb::INVALID_ARGUMENT,
                     fmt::format("offset {} is past the end of backup {:016x} ({} bytes)",
                                 chunk.offset(), id, data.size()));
    return;
  }
  uint32_t max_bytes =
      chunk.max_bytes() == 0 ? max_chunk_bytes_ : std::min(chunk.max_bytes(), max_chunk_bytes_);
  clientpb::Response response;
  clientpb::BackupData& out = *response.mutable_backup_data();
  out.set_offset(chunk.offset());
  out.set_data(data.substr(chunk.offset(), max_bytes));
  responder_.respond(caller, std::move(response));
}

void Backups::expire(SteadyTime now) {
  for (auto it = held_.begin(); it != held_.end();) {
    if (now - it->second.last_used < kIdleTimeout) {
      ++it;
      continue;
    }
    logger_->info("{} dropped backup {:016x}: unused for {} s", self_id_, it->first,
                  kIdleTimeout.count());
    it = held_.erase(it);
  }
}

}  // namespace fencelock::server
