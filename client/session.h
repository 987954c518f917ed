#pragma once
// Session and Lock: what an application holds.
//
// A Session is opened with a TTL and kept alive in the background. It knows
// a conservative safe-until time: the send time of the last acknowledged
// keepalive plus the TTL shortened by the clock-rate drift bound. The
// cluster cannot end the session before then (docs/client.md gives the
// argument), so until then every lock of the session is safely held. When
// safe-until passes without a new acknowledgement, the session is in
// jeopardy: every lock it holds is reported lost (on_lost callbacks,
// Lock::lost()) before the cluster could grant it to anyone else.
//
// The rules themselves (safe-until, jeopardy, keepalive schedule, which
// keepalive answers extend or end the session, sequence numbers) live in
// SessionState (client/session_state.h), pure code that the simulator runs
// too; Session adds the clock, the timers and the requests.
//
// Thread-safety: Session and Lock are thread-safe. Callbacks run on the
// client's I/O thread and must not block.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "client/client.h"
#include "client/session_state.h"

namespace fencelock::client {

struct SessionOptions {
  std::chrono::milliseconds ttl{10000};
  std::string client_name;
  // Bound on how much faster the cluster's clocks may run than ours: the
  // safe-until time is shortened by this fraction of the TTL.
  double clock_drift = 0.05;
  // Keepalives go out every ttl / keepalives_per_ttl.
  int keepalives_per_ttl = 4;
};

struct AcquireOptions {
  lockpb::LockMode mode = lockpb::EXCLUSIVE;
  // How long to wait in the lock's queue; zero = try once (try-acquire).
  std::chrono::milliseconds wait{0};
  // A counting semaphore of this many holders when the lock is created
  // (mode SHARED); 0 = plain exclusive/shared.
  uint32_t max_holders = 0;
  std::string value;  // at most 1 KiB, stored with the grant
  std::chrono::milliseconds lock_delay{0};
};

class Lock;

class Session : public std::enable_shared_from_this<Session> {
 public:
  using LostCallback = std::function<void()>;

  // Opens a session and starts its keepalives. Errors: INVALID_ARGUMENT
  // for a TTL outside 500 ms .. 10 min, TIMEOUT/UNAVAILABLE when no leader
  // answered.
  static Result<std::shared_ptr<Session>> open(std::shared_ptr<Client> client,
                                               SessionOptions options = {});
  // The asynchronous form of open(): `done` gets the session (keepalives
  // already started) or the error, once, on the client's I/O thread. Many
  // opens may be in flight on one client (fencelock-bench opens thousands).
  static void open_async(std::shared_ptr<Client> client, SessionOptions options,
                         std::function<void(Result<std::shared_ptr<Session>>)> done);

  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Fixed when the session opened: read without the lock.
  uint64_t id() const { return state_.session_id(); }
  std::chrono::milliseconds ttl() const { return state_.ttl(); }
  const std::shared_ptr<Client>& client() const { return client_; }

  // Until when the session is certainly alive on the cluster.
  Clock::time_point safe_until() const;
  // safe_until() has passed, the cluster said the session expired, or it
  // was closed. Reads the clock itself, so it never lags the jeopardy timer.
  bool lost() const;
  // Calls `callback` once when the session is lost (at once if it already
  // is), on the client's I/O thread.
  void on_lost(LostCallback callback);

  // Acquires `name`, waiting up to options.wait in the lock's FIFO queue.
  // Errors: TIMEOUT (not granted in time; for a try-acquire: held by someone
  // else), FAILED_PRECONDITION (held by this session in another mode),
  // SESSION_EXPIRED, INVALID_ARGUMENT, RESOURCE_EXHAUSTED.
  Result<std::unique_ptr<Lock>> acquire(const std::string& name, AcquireOptions options = {});
  // acquire() with no wait: TIMEOUT at once when the lock is held.
  Result<std::unique_ptr<Lock>> try_acquire(const std::string& name,
                                            lockpb::LockMode mode = lockpb::EXCLUSIVE);
  // The asynchronous form: `done` gets the sequencer or the error.
  void acquire_async(const std::string& name, const AcquireOptions& options,
                     std::function<void(Result<lockpb::Sequencer>)> done);
  // Cancels this session's wait for `name`, if it has one; fire and forget.
  // acquire_async() sends it itself when a wait times out on the client.
  void cancel_wait_async(const std::string& name);
  // Releases the grant named by `sequencer`.
  Status release(const lockpb::Sequencer& sequencer);
  void release_async(const lockpb::Sequencer& sequencer, std::function<void(Status)> done);

  // Ends the session: its locks are released and its waits cancelled.
  // Blocks until the cluster answers; the destructor closes without waiting.
  Status close();

 private:
  Session(std::shared_ptr<Client> client, SessionState state);
  // Sends a keepalive now (if still wanted) and the first jeopardy check.
  void start_keepalive();
  // Sends a keepalive if still wanted and schedules the next.
  void send_keepalive();
  // The answer `code` to the keepalive sent at `sent`.
  void keepalive_answered(Clock::time_point sent, lockpb::ErrorCode code);
  // Ends the session at safe-until, or checks again then.
  void check_jeopardy();
  // Ends the session for `why`; the first end runs the lost callbacks.
  void end(SessionEnd why);
  lockpb::RequestKey next_key();

  std::shared_ptr<Client> client_;
  mutable std::mutex mutex_;
  SessionState state_;                        // guarded by mutex_ (but for id and TTL)
  std::vector<LostCallback> lost_callbacks_;  // guarded by mutex_
};

// A held lock; released when destroyed (unless released already or lost).
// The destructor sends the release without waiting for it; call release()
// to know it happened.
class Lock {
 public:
  Lock(std::shared_ptr<Session> session, lockpb::Sequencer sequencer, std::string value = {});
  ~Lock();
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

  const lockpb::Sequencer& sequencer() const { return sequencer_; }
  uint64_t token() const { return sequencer_.token(); }
  const std::string& name() const { return sequencer_.lock(); }
  // The value stored with this grant (AcquireOptions::value).
  const std::string& value() const { return value_; }
  // The session is lost: the lock must be treated as no longer held.
  bool lost() const { return session_->lost(); }
  Clock::time_point safe_until() const { return session_->safe_until(); }
  Status release();

 private:
  std::shared_ptr<Session> session_;
  lockpb::Sequencer sequencer_;
  std::string value_;
  bool released_ = false;
};

}  // namespace fencelock::client
