#pragma once
// fencelock::client::Client: the connection to a fencelock cluster.
//
// Takes a list of endpoints, finds the leader (following NOT_LEADER hints),
// reconnects, and retries. Every request is asynchronous and pipelined
// underneath (thousands may be in flight on one connection); the blocking
// methods wait for the asynchronous ones.
//
// Retries are safe: every mutating request carries (session, sequence), so
// the cluster answers a retried one with the recorded result instead of
// applying it twice (docs/locks.md "Exactly once"). OpenSession has no
// session yet; a retried one may open a second session, which expires unused.
//
// Thread-safety: thread-safe. The client runs its own I/O thread; callbacks
// of the asynchronous methods run on it and must not block. The blocking
// methods must not be called from a callback.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "client/client_options.h"
#include "common/status.h"
#include "proto/client.pb.h"

namespace fencelock::net {
class TlsContext;
}

namespace fencelock::client {

namespace detail {
class Core;
}

// What Client::save_snapshot() wrote.
struct SavedSnapshot {
  uint64_t index = 0;  // the snapshot includes the log up to this index
  uint64_t term = 0;
  uint64_t size = 0;   // bytes of state machine snapshot (the file adds a header)
  std::string sha256;  // of those bytes, lower-case hex
  std::string cluster_id;
  uint64_t node_id = 0;  // the member that took it
};

class Client {
 public:
  using Callback = std::function<void(clientpb::Response response)>;

  // Starts the I/O thread; connects lazily, on the first request.
  // INVALID_ARGUMENT when no endpoint is given or one is not host:port.
  static Result<std::shared_ptr<Client>> connect(ClientOptions options);

  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends `request` (its id is assigned here) to the leader and calls `done`
  // once with the final response: success, a definite error, or TIMEOUT /
  // UNAVAILABLE when no leader answered within the deadline. NOT_LEADER,
  // lost connections and lost proposals are retried inside. `extra_timeout`
  // extends the deadline (an acquire's wait).
  void call_async(clientpb::Request request, Callback done,
                  std::chrono::milliseconds extra_timeout = std::chrono::milliseconds(0));

  // call_async, waiting for the answer.
  clientpb::Response call(clientpb::Request request,
                          std::chrono::milliseconds extra_timeout = std::chrono::milliseconds(0));

  // Runs `fn` on the I/O thread after `delay` (used by sessions for keepalives).
  void schedule(std::chrono::milliseconds delay, std::function<void()> fn);

  // The endpoint currently believed to be the leader.
  std::string current_endpoint() const;

  // Reads, answered linearizably by the leader.
  Result<clientpb::LockInfo> describe(const std::string& lock);
  Result<clientpb::LockList> list(const std::string& prefix, const std::string& start_after = "",
                                  uint32_t limit = 0);
  Result<bool> check_sequencer(const lockpb::Sequencer& sequencer);
  Result<clientpb::SessionList> list_sessions(uint64_t start_after = 0, uint32_t limit = 0);
  // The lock statistics of the member this client is connected to, for
  // the locks under `prefix` (LockStats; docs/operations.md).
  Result<clientpb::LockStatsResult> lock_stats(const std::string& prefix);
  // Operator: releases every holder of `lock` (they are not told).
  Status force_release(const std::string& lock);
  // Membership, answered by the leader (docs/operations.md "Membership").
  // Each change answers with the members once it is committed. add: a new
  // node joins as a learner; promote: a caught-up learner becomes a voter
  // (FAILED_PRECONDITION while it is not caught up); remove: a voter or
  // learner leaves (the leader hands leadership over first).
  Result<clientpb::MemberListResult> member_list();
  Result<clientpb::MemberListResult> member_add(uint64_t id, const std::string& peer_address,
                                                const std::string& client_address);
  Result<clientpb::MemberListResult> member_promote(uint64_t id);
  Result<clientpb::MemberListResult> member_remove(uint64_t id);
  // Operator: saves a consistent snapshot of the cluster to the backup file
  // `path` (storage/backup_file.h; docs/operations.md "Backup and
  // restore"). The leader takes it after a ReadIndex round, so it includes
  // everything committed before the call; the client fetches it in chunks
  // of at most 1 MiB, checks it against the SHA-256 the leader reported,
  // and writes "<path>.tmp", fsyncs it and renames it over `path`. When the
  // node holding it is lost midway, it starts again (3 attempts in all).
  // Errors: the cluster's (TIMEOUT, UNAVAILABLE, ...); INTERNAL for a
  // checksum mismatch or a file that cannot be written. On error nothing
  // new is at `path`.
  Result<SavedSnapshot> save_snapshot(const std::string& path);

  // Status of the member at `endpoint` as it sees itself and its peers (not
  // redirected to the leader).
  Result<clientpb::ClusterStatusResult> member_status(const std::string& endpoint);

 private:
  Client(ClientOptions options, std::shared_ptr<net::TlsContext> tls);
  const ClientOptions& options() const;
  std::shared_ptr<detail::Core> core_;
};

// The Status of a response: OK or its code and message.
Status response_status(const clientpb::Response& response);

// The token in `path`: its first line, without surrounding whitespace.
// INVALID_ARGUMENT naming the file when it cannot be read or is empty.
Result<std::string> read_token_file(const std::string& path);

}  // namespace fencelock::client
