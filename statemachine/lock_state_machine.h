#pragma once
// LockStateMachine: the deterministic lock state machine. Sessions,
// exclusive/shared/semaphore locks with strictly FIFO wait queues,
// fencing-token sequencers from one cluster-wide counter, Chubby's
// lock-delay, and exactly-once application of client requests.
// docs/locks.md states the semantics users rely on.
//
// It is driven by calls only: apply() one committed Raft entry at a time, in
// index order; it owns no thread, file or global, and it never reads a clock
// or keeps a time: where time matters it keeps a duration (a lock-delay) and
// reports it, and the leader measures it on its own steady clock. The same
// entries give byte-identical snapshot() on every node.
//
// Thread-safety: not thread-safe. One thread (the server's event loop or the
// simulator) owns an instance; const methods may run concurrently with each
// other but not with apply() or restore(). An Image it took may be encoded
// on another thread meanwhile (see Image).

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/command.pb.h"
#include "statemachine/compact.h"
#include "statemachine/reads.h"
#include "statemachine/status.h"
#include "statemachine/validation.h"

namespace fencelock::sm {

// Bounds on the state's size; a command that would exceed one fails with
// kResourceExhausted and changes nothing. Configuration, not replicated
// state: every node of a cluster must use the same values.
struct Limits {
  uint64_t max_sessions = 100'000;
  uint64_t max_locks = 1'000'000;
  uint64_t max_waiters_per_lock = 10'000;
  // Locks a session holds or waits for, together.
  uint64_t max_locks_per_session = 10'000;
  // Holders plus waiters of every lock together, and the bytes of their
  // values (a waiter's value is kept until its grant).
  uint64_t max_holders_and_waiters = 2'000'000;
  uint64_t max_value_bytes = uint64_t{1} << 30;  // 1 GiB
  // The same per principal (Command.principal of the OpenSession that
  // created each session), so that no one client identity can exhaust the
  // cluster's memory: half of each cluster-wide bound. With authentication
  // off every client is principal "", and these bound them all together.
  uint64_t max_sessions_per_principal = 50'000;
  uint64_t max_holders_and_waiters_per_principal = 1'000'000;
  uint64_t max_value_bytes_per_principal = uint64_t{1} << 29;  // 512 MiB
};

// Fixed rules of the protocol (docs/locks.md).
inline constexpr uint64_t kDefaultTtlMs = 10'000;
inline constexpr uint64_t kMinTtlMs = 500;
inline constexpr uint64_t kMaxTtlMs = 600'000;
inline constexpr uint64_t kMaxLockDelayMs = 60'000;
inline constexpr size_t kMaxLockNameBytes = 512;
inline constexpr size_t kMaxValueBytes = 1024;
inline constexpr size_t kMaxClientNameBytes = 256;
inline constexpr size_t kMaxPrincipalBytes = 512;
inline constexpr uint32_t kDefaultPageSize = 100;
inline constexpr uint32_t kMaxPageSize = 1000;

// Fencing tokens come in epochs (docs/locks.md "Sequencers"): the tokens of
// epoch e lie in [e << 48, (e + 1) << 48), except that epoch 0 starts at 1
// and the last epoch ends before UINT64_MAX. A cluster starts in epoch 0; a
// cluster restored from a backup taken in epoch e starts epoch e + 1
// (advance_token_epoch()), so each of its tokens exceeds every token the
// old cluster could ever issue, whatever it issued after the backup.
inline constexpr int kTokenEpochBits = 48;
inline constexpr uint64_t kMaxTokenEpoch = (uint64_t{1} << (64 - kTokenEpochBits)) - 1;
// The first token of `epoch` (<= kMaxTokenEpoch).
uint64_t first_token_of_epoch(uint64_t epoch);
// The end of `epoch`'s tokens, exclusive: the first token of the next epoch
// (UINT64_MAX for the last one, a token never issued).
uint64_t token_epoch_end(uint64_t epoch);

// A queued Acquire that a later command granted: the server answers the
// client whose Acquire (session, wait_id) is waiting with `sequencer`.
struct Grant {
  uint64_t session_id = 0;
  uint64_t wait_id = 0;  // Raft index of the Acquire that queued
  lockpb::Sequencer sequencer;
};

// A queued Acquire that ended without a grant. `reason` is what the server
// answers the waiting client with: kTimeout (leader-proposed CancelWait),
// kCancelled (the client's CancelWait) or kSessionExpired (its session
// closed or expired).
struct EndedWait {
  uint64_t session_id = 0;
  std::string lock;
  uint64_t wait_id = 0;
  Code reason = Code::kOk;
};

// Why a holder stopped holding a lock (Released::reason).
enum class ReleaseReason {
  kReleased,        // its session's Release
  kSessionClosed,   // its session's CloseSession
  kSessionExpired,  // the leader's ExpireSession
  kForceReleased,   // an operator's ForceRelease
};

// A holder that stopped holding `lock` in one apply(): its session and the
// token of its grant (whose sequencer is no longer current), and why.
struct Released {
  std::string lock;
  uint64_t session_id = 0;
  uint64_t token = 0;
  ReleaseReason reason = ReleaseReason::kReleased;

  friend bool operator==(const Released&, const Released&) = default;
};

// A lock in lock-delay: granted to no one until an EndLockDelay names this
// delay. The leader runs `delay_ms` in full on its steady clock from when it
// applies the entry that started the delay (ApplyResult::lock_delays_started),
// and in full again from taking office (lock_delays()), then proposes
// EndLockDelay{lock, delay_id}. A delay that restarted meanwhile has another
// id, so the older timer's EndLockDelay is a no-op: a delay never ends early.
struct LockDelay {
  std::string lock;
  uint64_t delay_ms = 0;
  // The Raft index of the entry that started the delay; 0 when that entry
  // carried now_ms (an earlier leader's, docs/locks.md) or the delay was
  // restored from snapshot format 1.
  uint64_t delay_id = 0;
};

// A queued Acquire, for the leader to arm its deadline: `wait_ms` in full on
// its steady clock from when it applies the Acquire (ApplyResult), and in
// full again from taking office (pending_waits()), then CancelWait naming
// `wait_id`. A wait never ends early; a stale CancelWait is a no-op.
struct PendingWait {
  uint64_t session_id = 0;
  std::string lock;
  uint64_t wait_id = 0;  // Raft index of the Acquire that queued
  // The Acquire's wait_ms; 0 when unknown (an Acquire carrying now_ms, from
  // an earlier leader, or a wait restored from snapshot format 1): the
  // leader ends such a wait as soon as it can.
  uint64_t wait_ms = 0;
};

// A live session, for the leader to arm its TTL timer.
struct SessionTtl {
  uint64_t session_id = 0;
  uint64_t ttl_ms = 0;
};

// What one apply() did. `status` is the command's own outcome; the other
// fields are set as listed. `grants` and `ended_waits` concern OTHER, earlier
// queued Acquires and are filled whatever `status` says (only successful
// commands cause them); the command's own immediate grant is in `granted`,
// never in `grants`.
struct ApplyResult {
  Status status;
  // Set when the command was a retry of the session's last request (same
  // kind and arguments): the recorded outcome is returned and nothing was
  // applied again. A different request reusing that sequence number is no
  // retry: kInvalidArgument, duplicate false.
  bool duplicate = false;
  // OpenSession: the new session's id (= the entry's index) and TTL.
  uint64_t session_id = 0;
  uint64_t ttl_ms = 0;
  // Acquire: the grant, with status OK (also when re-acquiring a lock the
  // session already holds in that mode: the existing grant).
  std::optional<lockpb::Sequencer> granted;
  // Acquire: queued (status OK, no `granted`); the wait ends later through a
  // Grant or an EndedWait with this wait_id (= the entry's index).
  bool queued = false;
  uint64_t wait_id = 0;
  uint64_t wait_ms = 0;  // as PendingWait::wait_ms
  std::vector<Grant> grants;
  std::vector<EndedWait> ended_waits;
  // Every holder that stopped holding a lock in this entry: Release (one),
  // CloseSession and ExpireSession (each lock the session held, by lock
  // name), ForceRelease (every holder, in grant order). Empty for anything
  // else, for a failed command and for a retry (duplicate): a retry
  // releases nothing again. Listed before the grants the same entry made
  // of the room (`grants`).
  std::vector<Released> released;
  // Every lock-delay this entry started or restarted (ExpireSession,
  // ForceRelease): the leader arms each.
  std::vector<LockDelay> lock_delays_started;
};

namespace testing {
struct StateAccess;  // tests/statemachine: breaks counters on purpose
}  // namespace testing

class LockStateMachine {
 public:
  // An empty state (applied_index() == 0, first token 1) bounded by `limits`.
  explicit LockStateMachine(Limits limits = {});

  LockStateMachine(const LockStateMachine&) = delete;
  LockStateMachine& operator=(const LockStateMachine&) = delete;
  LockStateMachine(LockStateMachine&&) = default;
  LockStateMachine& operator=(LockStateMachine&&) = default;

  // Applies the committed entry at `index`, which must be greater than
  // applied_index() (entries the state machine never sees, such as leader
  // no-ops, may leave gaps); a smaller index is a driver bug and aborts
  // through FL_CHECK. Never fails otherwise: whatever `command` contains,
  // the outcome is in ApplyResult::status (an empty oneof is
  // kInvalidArgument) and every invariant holds afterwards. Sets
  // applied_index() to `index` whatever the outcome.
  ApplyResult apply(uint64_t index, const lockpb::Command& command);

  // Principals: a command carries the principal of the client that asked
  // for it (lockpb::Command.principal). A session belongs to the principal
  // of its OpenSession; a client command naming a session of another
  // principal (CloseSession, Acquire, Release, the client's CancelWait)
  // is kPermissionDenied and changes nothing, not even the session's
  // exactly-once record. Leader-proposed commands carry no principal and
  // are exempt: ExpireSession, EndLockDelay, the leader's CancelWait
  // (sequence 0); one that carries a principal is kInvalidArgument.
  // ForceRelease names no session (an operator's; who may send it is the
  // server's question).
  //
  // Parses `entry_bytes` as a lockpb::Command and applies it as above; bytes
  // that do not parse are kInvalidArgument (still advancing applied_index()).
  ApplyResult apply(uint64_t index, std::string_view entry_bytes);

  // The index of the last applied entry; 0 for a new state machine.
  uint64_t applied_index() const { return applied_index_; }

  // The token the next grant will carry (starts at 1, never reused). Equal
  // to token_epoch_end(token_epoch()) once the epoch's tokens are used up:
  // then every grant fails (kResourceExhausted) and waiters stay queued.
  uint64_t next_token() const { return next_token_; }
  // The epoch of next_token() (0 unless restored from a backup).
  uint64_t token_epoch() const { return token_epoch_; }

  // For a cluster restored from a snapshot of this state: starts the next
  // token epoch, so that every later grant carries a token above any the
  // snapshot's cluster could have issued in its own epoch, after the
  // snapshot included. The new epoch is token_epoch() + 1, or the epoch of
  // `token_floor` if that is higher, and next_token() becomes its first
  // token, or `token_floor` if that is higher (0 = no floor). Nothing else
  // changes: holders keep their tokens, applied_index() stays. Pure: the
  // same state and floor give the same result on every node.
  // kResourceExhausted when token_epoch() is kMaxTokenEpoch, kInvalidArgument
  // when `token_floor` leaves no token in its epoch; the state is unchanged
  // then.
  Status advance_token_epoch(uint64_t token_floor = 0);

  // The number of live sessions, and of existing locks (held, waited for or
  // in lock-delay).
  size_t session_count() const { return sessions_.size(); }
  size_t lock_count() const { return locks_.size(); }

  // What `principal`'s sessions hold against the per-principal Limits
  // (all zero for a principal with no session); O(log principals).
  Usage usage_of(std::string_view principal) const;
  // The same over every session: what the cluster-wide Limits bound. O(1).
  Usage total_usage() const;
  // Every principal with a session and its usage, by principal.
  std::vector<std::pair<std::string, Usage>> usage_by_principal() const;

  // Whether `principal` may use session `session_id` (the server asks it
  // for keepalives, which are no commands): OK when the session is its
  // own, kPermissionDenied when another principal opened it,
  // kSessionExpired when there is no such session.
  Status authorize(uint64_t session_id, std::string_view principal) const;

  // Recounts the state and compares it with what apply() maintains
  // incrementally: each principal's and the cluster's usage, and each
  // session's list of the locks it holds or waits for. Returns the first
  // difference, nullopt when there is none. O(state): for tests and the
  // simulator, which call it after every step.
  std::optional<std::string> check_invariants() const;

  // --- Reads: linearizable when the server calls them after ReadIndex. ---

  // The lock `name`: holders in grant order, waiters in queue order.
  // kInvalidArgument for a malformed name, kNotFound when nobody holds,
  // waits for or lock-delays it (a lock exists only while one of those is
  // true).
  Result<LockView> describe(std::string_view name) const;

  // Locks whose name starts with `prefix` and sorts after `start_after`, in
  // byte order: at most `limit` of them (0 = kDefaultPageSize, capped at
  // kMaxPageSize), and only as many as keep encoded_bytes_bound(page)
  // within `max_bytes` (the server passes its frame budget). A lock whose bound
  // alone exceeds `max_bytes` comes alone on its page, so paging always
  // progresses: that single-entry page is the only one that can exceed
  // `max_bytes`, and the caller decides how to answer it.
  // next_start_after is the name of the page's last lock when more follow,
  // empty on the last page.
  LockPage list_locks(std::string_view prefix, std::string_view start_after, uint32_t limit,
                      size_t max_bytes) const;

  // Whether `sequencer` is still current: its session holds its lock in its
  // mode with its token. A malformed sequencer is simply not current.
  SequencerStatus check_sequencer(const lockpb::Sequencer& sequencer) const;

  // Sessions with id > start_after in id order, bounded by `limit` and
  // `max_bytes` as list_locks. next_start_after is the page's last id when
  // more follow, 0 on the last page.
  SessionPage list_sessions(uint64_t start_after, uint32_t limit, size_t max_bytes) const;

  // --- Timer state for a new leader (sorted; ids, then names). ---

  // Every live session with its TTL, by id.
  std::vector<SessionTtl> sessions() const;
  // Every queued Acquire with its wait's duration, by lock name then queue
  // order: a new leader runs each in full from taking office.
  std::vector<PendingWait> pending_waits() const;
  // Every lock in lock-delay with its delay's duration and id, by name: a
  // new leader runs each in full from taking office.
  std::vector<LockDelay> lock_delays() const;

  // --- Snapshots ---

  class Image;

  // The whole state (including applied_index(), next_token() and
  // token_epoch(), not the Limits) as bytes ending in a checksum.
  // Deterministic: equal states give equal bytes. image().encode().
  std::string snapshot() const;

  // An immutable copy of the whole state as it is now, which encodes to
  // exactly the bytes snapshot() would return. Cheap: one pass over the
  // lock and session tables that shares their records (names, values,
  // holders and queues are not copied); the state machine copies a record
  // before it changes one an image shares. Lets a server serialise and
  // write a large snapshot off its loop while it goes on applying.
  Image image() const;

  // image() in slices, so that no turn of a server's loop walks more than
  // a slice of a large lock table: begin_image() takes the state's header
  // and every session (at most Limits::max_sessions), continue_image(n)
  // walks up to n more locks and returns true once the walk is done, and
  // take_image() then hands over the image, which is of the state as it
  // was at begin_image(). apply() and restore() may run in between: a
  // lock they change or erase before the walk reaches it is captured
  // first, as it was; restore() completes the walk at once. One image at
  // a time: begin_image() while one is under way, or take_image() before
  // the walk is done, aborts (FL_CHECK).
  void begin_image();
  bool continue_image(size_t max_locks);
  Image take_image();
  bool taking_image() const { return build_ != nullptr; }

  // Replaces the state with the one `bytes` encodes, in the current format
  // or an earlier one (Limits stay this object's). A damaged, truncated or
  // inconsistent snapshot returns kInvalidArgument whose message starts
  // "damaged snapshot:" and says what is wrong, and leaves the current
  // state unchanged.
  Status restore(std::string_view bytes);

 private:
  friend struct testing::StateAccess;
  struct Lock;
  struct SessionRecord;
  // A lock's record, shared copy-on-write with images, and which image
  // under way has captured it (see begin_image()).
  struct LockSlot {
    detail::Cow<Lock> record;
    uint32_t image_epoch = 0;
  };
  // Locks by name.
  using LockMap = std::map<detail::SharedBytes, LockSlot, detail::BytesLess>;
  using LockIt = LockMap::iterator;
  using LockEntry = std::pair<detail::SharedBytes, detail::Cow<Lock>>;
  struct ImageBuild;

  // The last request of a session, kept for exactly-once answers.
  enum class RequestKind : uint8_t { kNone, kCloseSession, kAcquire, kRelease, kCancelWait };

  // What a client request asks: its kind and a fingerprint of the arguments
  // its recorded answer is about (Acquire: lock and mode; Release: lock and
  // token; CancelWait: lock and wait_id), so that a different request
  // reusing the sequence number is told apart from a retry. A 64-bit
  // FNV-1a hash, never 0 (0 = unknown, restored from snapshot format 1).
  struct Request {
    RequestKind kind = RequestKind::kNone;
    uint64_t fingerprint = 0;
  };

  // What a snapshot keeps of a session (shared copy-on-write with images).
  struct SessionRecord {
    uint64_t last_sequence = 0;
    uint64_t last_request = 0;  // Request::fingerprint
    uint64_t last_token = 0;    // kAcquire granted: its token
    uint32_t ttl_ms = 0;
    Code last_code = Code::kOk;
    RequestKind last_kind = RequestKind::kNone;
    bool last_queued = false;
    std::string client_name;
  };
  // Usage by principal; a principal is listed while it has a session. Its
  // name is shared by its sessions (Session::principal) and the images
  // that hold them.
  using PrincipalMap = std::map<detail::SharedBytes, Usage, detail::BytesLess>;
  using PrincipalIt = PrincipalMap::iterator;
  struct Session {
    detail::Cow<SessionRecord> record;
    // Locks this session holds or waits for (no order; sorted by name when
    // the order reaches output). Not in snapshots: restore() rebuilds it.
    detail::CompactVector<LockIt> locks;
    // Its principal's entry (the name is in snapshots, the usage rebuilt).
    PrincipalIt principal;
  };
  using SessionMap = std::map<uint64_t, Session>;
  using SessionIt = SessionMap::iterator;

  struct Holder {
    uint64_t session_id = 0;
    uint64_t token = 0;
    lockpb::LockMode mode = lockpb::EXCLUSIVE;
    detail::Payload value;
  };
  struct Waiter {
    uint64_t session_id = 0;
    uint64_t wait_id = 0;
    uint64_t wait_ms = 0;  // PendingWait::wait_ms
    lockpb::LockMode mode = lockpb::EXCLUSIVE;
    detail::Payload value;
  };
  struct Lock {
    std::vector<Holder> holders;         // grant order (tokens increase)
    detail::LazyVector<Waiter> waiters;  // FIFO
    uint64_t delay_id = 0;               // with in_delay: LockDelay::delay_id
    uint32_t max_holders = 0;            // 0 = unbounded SHARED holders
    uint32_t lock_delay_ms = 0;
    bool in_delay = false;
  };

  // The outcome of the RequestKey check of a client request.
  enum class KeyCheck { kApply, kDone };

  // The read view of one lock.
  static LockView view_of(const LockMap::value_type& entry);

  ApplyResult apply_command(uint64_t index, const lockpb::Command& command);
  ApplyResult open_session(uint64_t index, const lockpb::OpenSession& command,
                           std::string_view principal);
  ApplyResult close_session(const lockpb::CloseSession& command, std::string_view principal);
  ApplyResult expire_session(uint64_t index, const lockpb::ExpireSession& command);
  ApplyResult acquire(uint64_t index, const lockpb::Acquire& command, std::string_view principal);
  ApplyResult release(const lockpb::Release& command, std::string_view principal);
  ApplyResult cancel_wait(const lockpb::CancelWait& command, std::string_view principal);
  ApplyResult end_lock_delay(const lockpb::EndLockDelay& command);
  ApplyResult force_release(uint64_t index, const lockpb::ForceRelease& command);

  static Request request_of(RequestKind kind, std::string_view lock, uint64_t argument);
  // Finds the session of `key`, checks that `principal` opened it, then
  // checks the key's sequence number. kDone: the result is final (unknown
  // session, another principal's session, stale request, a retry answered
  // with the recorded result, or a different request reusing the last
  // sequence number); kApply: `session` is set and the request is new.
  KeyCheck check_key(const lockpb::RequestKey& key, std::string_view principal,
                     const Request& request, SessionIt& session, ApplyResult& result);
  // Records `request` with `result` as the session's last request.
  static void record(Session& session, uint64_t sequence, const Request& request,
                     const ApplyResult& result);
  // The recorded answer to a retry of an Acquire.
  void answer_duplicate_acquire(uint64_t session_id, const SessionRecord& session,
                                const lockpb::Acquire& command, ApplyResult& result) const;

  // The principal's entry, added (with zero usage) if it has none.
  PrincipalIt add_principal(std::string_view principal);
  // The per-principal and cluster-wide bounds on holders, waiters and value
  // bytes, for a new holder or waiter of `session` with `value_bytes`:
  // kResourceExhausted naming the bound and the principal, or OK.
  Status check_usage_bounds(const Session& session, size_t value_bytes) const;
  // A holder or waiter of `session` with `value_bytes` starts or ends.
  void count_entry(Session& session, size_t value_bytes);
  void uncount_entry(Session& session, size_t value_bytes);

  bool can_grant(const Lock& lock, lockpb::LockMode mode) const;
  // Whether the token epoch has no token left to grant.
  bool tokens_exhausted() const { return next_token_ >= token_epoch_end(token_epoch_); }
  // Grants the head of the queue while it is grantable (FIFO, no barging),
  // appending to result.grants.
  void grant_waiters(LockIt lock, ApplyResult& result);
  // Erases `lock` if nobody holds, waits for or lock-delays it.
  void erase_if_unused(LockIt lock);
  // Every change of a lock's record and every erase of a lock goes
  // through these two: an image under way captures the lock first if its
  // walk has not reached it yet.
  Lock& change_lock(LockIt lock);
  void erase_lock(LockIt lock);
  void capture_unvisited(LockIt lock);
  static void forget_lock(Session& session, LockIt lock);
  // Starts (or restarts, in full) the lock-delay of `lock` for the entry at
  // `index`, whose leader-set now_ms is `now_ms` (non-zero: delay id 0).
  void start_lock_delay(LockIt lock, uint64_t index, uint64_t now_ms, ApplyResult& result);
  // Ends `session`: cancels its waits (reason kSessionExpired), releases its
  // locks (with lock-delay when `expired`, started by the entry at `index`
  // with `now_ms`), erases it, then grants each affected lock's next
  // waiters, all in lock name order.
  void end_session(SessionIt session, bool expired, uint64_t index, uint64_t now_ms,
                   ApplyResult& result);

  Limits limits_;
  uint64_t applied_index_ = 0;
  uint64_t next_token_ = 1;
  uint64_t token_epoch_ = 0;
  SessionMap sessions_;
  LockMap locks_;
  PrincipalMap principals_;
  Usage totals_;  // holders_and_waiters and value_bytes; sessions is sessions_.size()
  // The image under way (begin_image), and its epoch: the number of
  // images begun, which a lock's slot takes once captured or created.
  std::unique_ptr<ImageBuild> build_;
  uint32_t image_epoch_ = 0;
};

// LockStateMachine::image(): the state at one applied index, frozen.
//
// Thread-safety: encode() and the accessors may run on any thread, also
// while the state machine that took the image goes on applying: the image
// only reads records the state machine no longer changes. Taking, copying,
// moving and destroying an image must happen on the state machine's
// thread (the shared records' reference counts are plain integers).
class LockStateMachine::Image {
 public:
  Image() = default;
  Image(Image&&) noexcept = default;
  Image& operator=(Image&&) noexcept = default;
  Image(const Image&) = delete;
  Image& operator=(const Image&) = delete;

  uint64_t applied_index() const { return applied_index_; }
  size_t session_count() const { return sessions_.size(); }
  size_t lock_count() const { return locks_.size() + early_.size(); }

  // The snapshot bytes of this state (LockStateMachine::snapshot()'s format).
  std::string encode() const;

 private:
  friend class LockStateMachine;
  uint64_t applied_index_ = 0;
  uint64_t next_token_ = 1;
  uint64_t token_epoch_ = 0;
  struct SessionEntry {
    uint64_t id = 0;
    detail::Cow<SessionRecord> record;
    detail::SharedBytes principal;
  };
  std::vector<SessionEntry> sessions_;  // by id
  std::vector<LockEntry> locks_;  // by name
  // Taken in slices: locks captured before a change reached them, in no
  // order; encode() merges them in.
  std::vector<LockEntry> early_;
};

struct LockStateMachine::ImageBuild {
  Image image;
  LockIt cursor;  // the next lock the walk visits
};

}  // namespace fencelock::sm
