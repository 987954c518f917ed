#pragma once
// Restore: initializes a node's data directory from a backup file, for
// `fencelockd --restore FILE` (docs/operations.md "Backup and restore").
//
// Every node of the new cluster is started with the same FILE (and the same
// --restore-token-floor) on an empty data directory. Each reads and checks
// the file, restores the state machine from it, moves it into the next
// token epoch (sm::LockStateMachine::advance_token_epoch: every token the
// new cluster issues exceeds any the old one could), and initializes its
// directory with that state as the snapshot (storage::DiskLogOptions::
// initial_snapshot) at the backup's term and at the new epoch's first log
// index, e << 48 (or the backup's index, if higher), with its own flags'
// membership. Session ids are log indexes, so the new cluster's sessions
// never take an id the old cluster gave out after the backup. The state
// machine is deterministic, so every node gets the same snapshot bytes
// (logged with their SHA-256), the same log position, and they elect a
// leader as usual.
//
// A marker file (kRestoringMarker) in the directory while it is being
// initialized makes an interrupted restore visible: such a directory is
// never started as it is (check_no_unfinished_restore), and a new --restore
// clears it and starts over.
//
// Thread-safety: free functions; call before the node starts.

#include <cstdint>
#include <filesystem>
#include <string_view>

#include "common/status.h"
#include "statemachine/lock_state_machine.h"
#include "storage/disk_log.h"

namespace fencelock::server {

inline constexpr std::string_view kRestoringMarker = "RESTORING";

// Initializes `options.dir` (missing or empty, or left by an interrupted
// restore) from `backup_file` with `options`' identity, membership and sync
// setting; `token_floor` as in advance_token_epoch, `limits` the node's.
// Nothing is written unless the file checks out. Errors, each naming the
// file or directory:
//  - FAILED_PRECONDITION: the directory is not empty, or not a directory.
//  - INVALID_ARGUMENT: the file is not a backup, is damaged, truncated, of
//    another format version, or holds a state that does not restore; the
//    token floor leaves no token, or no token epoch is left.
//  - INTERNAL: the file or directory cannot be read or written.
Status restore_data_dir(const std::filesystem::path& backup_file, uint64_t token_floor,
                        const sm::Limits& limits, storage::DiskLogOptions options);

// FAILED_PRECONDITION when `dir` holds the marker of an unfinished restore.
Status check_no_unfinished_restore(const std::filesystem::path& dir);

}  // namespace fencelock::server
