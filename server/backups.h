#pragma once
// Backups: the snapshots a node keeps for `fencelock snapshot save`
// (docs/operations.md "Backup and restore").
//
// A BackupBegin is a linearizable read: the node's Reads answer it on the
// leader after a ReadIndex round, once the state machine has applied the
// read index, by calling begin() with the state machine's snapshot at the
// node's applied index. That snapshot can be hundreds of MiB while a client
// frame is at most a few, so the node keeps the immutable bytes and the
// client fetches them with BackupChunk requests of at most 1 MiB, which
// this node answers whether it still leads or not (the bytes are fixed).
// A backup is dropped by BackupEnd, after kIdleTimeout without a request,
// or, the least recently used, when a new one would make more than
// kMaxHeld; a chunk of a dropped or unknown backup gets NOT_FOUND saying
// so, and the client starts again.
//
// Thread-safety: not thread-safe; the node's loop only.

#include <spdlog/logger.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "proto/client.pb.h"
#include "proto/raft.pb.h"
#include "server/env.h"
#include "server/responder.h"

namespace fencelock::server {

class Backups {
 public:
  static constexpr size_t kMaxHeld = 4;
  static constexpr std::chrono::seconds kIdleTimeout{60};
  static constexpr uint32_t kMaxChunkBytes = 1u << 20;

  // What a backup is of: the state after applying log index `index`.
  struct Source {
    uint64_t index = 0;
    uint64_t term = 0;  // of the entry at `index`
    std::string cluster_id;
    raftpb::ConfState conf_state;
  };

  // `max_frame_bytes`: the node's client frame limit; a chunk is at most
  // half of it (and kMaxChunkBytes). `seed` makes backup ids differ between
  // nodes and runs.
  Backups(uint64_t self_id, uint64_t seed, uint32_t max_frame_bytes, Responder& responder,
          std::shared_ptr<spdlog::logger> logger);

  // Keeps `snapshot` (the state machine's bytes at source.index) as a new
  // backup, computes its SHA-256, and answers `caller` with its
  // BackupInfo. Drops the least recently used backups beyond kMaxHeld.
  void begin(const Caller& caller, SteadyTime now, const Source& source, std::string snapshot);

  // Whether `request` is a BackupChunk or BackupEnd, which serve() answers
  // on any node, leader or not.
  static bool handles(const clientpb::Request& request);
  // Answers a BackupChunk (BackupData from the requested offset) or a
  // BackupEnd (OK; the backup is dropped). An unknown or dropped backup:
  // NOT_FOUND; an offset past the end: INVALID_ARGUMENT.
  void serve(const Caller& caller, const clientpb::Request& request, SteadyTime now);

  // Drops backups unused for kIdleTimeout.
  void expire(SteadyTime now);

  size_t held() const { return held_.size(); }

 private:
  struct Held {
    std::shared_ptr<const std::string> data;
    SteadyTime last_used;
  };
  uint64_t next_id(SteadyTime now);

  uint64_t self_id_;
  uint64_t seed_;
  uint64_t counter_ = 0;
  uint32_t max_chunk_bytes_;
  Responder& responder_;
  std::shared_ptr<spdlog::logger> logger_;
  std::map<uint64_t, Held> held_;  // by backup id
};

}  // namespace fencelock::server
