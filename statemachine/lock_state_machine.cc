#include "statemachine/lock_state_machine.h"

#include <algorithm>
#include <limits>
#include <set>
#include <utility>

#include "common/check.h"
#include "statemachine/snapshot_codec.h"

namespace fencelock::sm {
namespace {

constexpr uint32_t kSnapshotMagic = 0x4D534C46;  // "FLSM"
// Format 1 stored a session's last result as a lockpb::ErrorCode number;
// format 2 stores it as an sm::Code number; format 3 adds the token epoch;
// format 4 a session's principal.
constexpr uint32_t kSnapshotFormat1 = 1;
constexpr uint32_t kSnapshotFormat2 = 2;
constexpr uint32_t kSnapshotFormat3 = 3;
constexpr uint32_t kSnapshotVersion = 4;

Status error(Code code, std::string message) {
  return Status(code, std::move(message));
}

bool valid_mode(int mode) {
  return mode == lockpb::EXCLUSIVE || mode == lockpb::SHARED;
}

// A last result as format 1 stored it: the lockpb::ErrorCode number of that
// time. Spelled out rather than read from the wire enum, which may change;
// only codes the state machine could record are accepted.
std::optional<Code> code_from_format1(uint8_t number) {
  switch (number) {
    case 0:
      return Code::kOk;
    case 2:
      return Code::kSessionExpired;
    case 3:
      return Code::kLockNotHeld;
    case 4:
      return Code::kTimeout;
    case 5:
      return Code::kInvalidArgument;
    case 7:
      return Code::kFailedPrecondition;
    case 8:
      return Code::kResourceExhausted;
    case 13:
      return Code::kNotFound;
    case 14:
      return Code::kStaleSequence;
    case 15:
      return Code::kCancelled;
    default:
      return std::nullopt;
  }
}

std::optional<Code> code_from_format2(uint8_t number) {
  // A refusal for another principal's session is never recorded.
  if (number > static_cast<uint8_t>(kMaxCode) ||
      number == static_cast<uint8_t>(Code::kPermissionDenied)) {
    return std::nullopt;
  }
  return static_cast<Code>(number);
}

bool valid_principal(std::string_view principal) {
  return principal.size() <= kMaxPrincipalBytes && is_valid_utf8(principal);
}

// A principal as messages name it.
std::string quoted(std::string_view principal) {
  return "principal \"" + std::string(principal) + "\"";
}

uint32_t page_size(uint32_t limit) {
  if (limit == 0) return kDefaultPageSize;
  return std::min(limit, kMaxPageSize);
}

lockpb::Sequencer make_sequencer(std::string_view lock, lockpb::LockMode mode, uint64_t token,
                                 uint64_t session_id) {
  lockpb::Sequencer sequencer;
  sequencer.set_lock(std::string(lock));
  sequencer.set_mode(mode);
  sequencer.set_token(token);
  sequencer.set_session_id(session_id);
  return sequencer;
}

}  // namespace

uint64_t first_token_of_epoch(uint64_t epoch) {
  return epoch == 0 ? 1 : epoch << kTokenEpochBits;
}

uint64_t token_epoch_end(uint64_t epoch) {
  return epoch >= kMaxTokenEpoch ? std::numeric_limits<uint64_t>::max()
                                 : (epoch + 1) << kTokenEpochBits;
}

LockStateMachine::LockStateMachine(Limits limits) : limits_(limits) {}

Status LockStateMachine::advance_token_epoch(uint64_t token_floor) {
  if (token_epoch_ >= kMaxTokenEpoch) {
    return error(Code::kResourceExhausted,
                 "token epoch " + std::to_string(token_epoch_) + " is the last one");
  }
  const uint64_t epoch = std::max(token_epoch_ + 1, token_floor >> kTokenEpochBits);
  const uint64_t next = std::max(first_token_of_epoch(epoch), token_floor);
  if (next >= token_epoch_end(epoch)) {
    return error(Code::kInvalidArgument,
                 "token floor " + std::to_string(token_floor) + " leaves no token in its epoch");
  }
  token_epoch_ = epoch;
  next_token_ = next;
  return Status();
}

ApplyResult LockStateMachine::apply(uint64_t index, std::string_view entry_bytes) {
  lockpb::Command command;
  if (!command.ParseFromArray(entry_bytes.data(), static_cast<int>(entry_bytes.size()))) {
    FL_CHECK(index > applied_index_, "apply of index {} after index {}", index, applied_index_);
    applied_index_ = index;
    ApplyResult result;
    result.status = error(Code::kInvalidArgument, "entry is not a Command");
    return result;
  }
  return apply(index, command);
}

ApplyResult LockStateMachine::apply(uint64_t index, const lockpb::Command& command) {
  FL_CHECK(index > applied_index_, "apply of index {} after index {}", index, applied_index_);
  applied_index_ = index;
  return apply_command(index, command);
}

ApplyResult LockStateMachine::apply_command(uint64_t index, const lockpb::Command& command) {
  const std::string& principal = command.principal();
  switch (command.kind_case()) {
    case lockpb::Command::kOpenSession:
      return open_session(index, command.open_session(), principal);
    case lockpb::Command::kCloseSession:
      return close_session(command.close_session(), principal);
    case lockpb::Command::kExpireSession:
    case lockpb::Command::kEndLockDelay:
      // Only leaders propose these, never for a client: one that names a
      // principal did not come from a leader's timer.
      if (!principal.empty()) {
        ApplyResult result;
        result.status = error(Code::kInvalidArgument, "a leader command carries no principal");
        return result;
      }
      return command.has_expire_session() ? expire_session(index, command.expire_session())
                                          : end_lock_delay(command.end_lock_delay());
    case lockpb::Command::kAcquire:
      return acquire(index, command.acquire(), principal);
    case lockpb::Command::kRelease:
      return release(command.release(), principal);
    case lockpb::Command::kCancelWait:
      return cancel_wait(command.cancel_wait(), principal);
    case lockpb::Command::kForceRelease:
      return force_release(index, command.force_release());
    case lockpb::Command::KIND_NOT_SET:
      break;
  }
  ApplyResult result;
  result.status = error(Code::kInvalidArgument, "empty or unknown command");
  return result;
}

// --- Exactly-once ---

LockStateMachine::Request LockStateMachine::request_of(RequestKind kind, std::string_view lock,
                                                       uint64_t argument) {
  char fixed[9];
  fixed[0] = static_cast<char>(kind);
  for (int i = 0; i < 8; ++i) fixed[1 + i] = static_cast<char>((argument >> (8 * i)) & 0xFF);
  uint64_t hash = detail::fnv1a64(lock, detail::fnv1a64(std::string_view(fixed, sizeof fixed)));
  return Request{kind, hash == 0 ? 1 : hash};
}

LockStateMachine::KeyCheck LockStateMachine::check_key(const lockpb::RequestKey& key,
                                                       std::string_view principal,
                                                       const Request& request, SessionIt& session,
                                                       ApplyResult& result) {
  session = sessions_.find(key.session_id());
  if (session == sessions_.end()) {
    result.status = error(Code::kSessionExpired, "unknown session");
    return KeyCheck::kDone;
  }
  // Before the sequence number: another principal must neither read the
  // recorded answer of a retry nor move the session's sequence on.
  if (session->second.principal->first.view() != principal) {
    result.status = error(Code::kPermissionDenied, "session " + std::to_string(key.session_id()) +
                                                       " was opened by another principal");
    session = sessions_.end();
    return KeyCheck::kDone;
  }
  const SessionRecord& s = *session->second.record;
  if (key.sequence() == 0) {
    result.status = error(Code::kInvalidArgument, "request sequence number 0");
    return KeyCheck::kDone;
  }
  if (key.sequence() < s.last_sequence) {
    result.status = error(Code::kStaleSequence, "sequence number older than the last applied");
    return KeyCheck::kDone;
  }
  if (key.sequence() == s.last_sequence) {
    // Answering a different request with the recorded result would hand a
    // client a grant or a release it did not ask for.
    if (s.last_kind != request.kind ||
        (s.last_request != 0 && s.last_request != request.fingerprint)) {
      result.status =
          error(Code::kInvalidArgument, "sequence number " + std::to_string(key.sequence()) +
                                            " was used for a different request");
      return KeyCheck::kDone;
    }
    result.duplicate = true;
    result.status =
        s.last_code == Code::kOk ? Status() : error(s.last_code, "recorded result of a retry");
    return KeyCheck::kDone;
  }
  return KeyCheck::kApply;
}

void LockStateMachine::record(Session& session, uint64_t sequence, const Request& request,
                              const ApplyResult& result) {
  SessionRecord& record = session.record.mut();
  record.last_sequence = sequence;
  record.last_kind = request.kind;
  record.last_request = request.fingerprint;
  record.last_code = result.status.code();
  record.last_queued = result.queued;
  record.last_token = result.granted ? result.granted->token() : 0;
}

void LockStateMachine::answer_duplicate_acquire(uint64_t session_id, const SessionRecord& session,
                                                const lockpb::Acquire& command,
                                                ApplyResult& result) const {
  if (!result.status.ok()) return;
  if (!session.last_queued) {
    result.granted = make_sequencer(command.lock(), command.mode(), session.last_token, session_id);
    return;
  }
  // The original queued; answer with what became of that wait, so a client
  // that lost the connection learns of its grant.
  auto lock = locks_.find(command.lock());
  if (lock != locks_.end()) {
    for (const Holder& holder : lock->second.record->holders) {
      if (holder.session_id == session_id && holder.mode == command.mode()) {
        result.granted = make_sequencer(command.lock(), holder.mode, holder.token, session_id);
        return;
      }
    }
    for (const Waiter& waiter : lock->second.record->waiters) {
      if (waiter.session_id == session_id) {
        result.queued = true;
        result.wait_id = waiter.wait_id;
        result.wait_ms = waiter.wait_ms;
        return;
      }
    }
  }
  result.status = error(Code::kTimeout, "the wait of this request has ended");
}

// --- Sessions ---

ApplyResult LockStateMachine::open_session(uint64_t index, const lockpb::OpenSession& command,
                                           std::string_view principal) {
  ApplyResult result;
  uint64_t ttl_ms = command.ttl_ms() == 0 ? kDefaultTtlMs : command.ttl_ms();
  if (ttl_ms < kMinTtlMs || ttl_ms > kMaxTtlMs) {
    result.status = error(Code::kInvalidArgument, "ttl_ms must be within 500..600000");
    return result;
  }
  if (command.client_name().size() > kMaxClientNameBytes || !is_valid_utf8(command.client_name())) {
    result.status = error(Code::kInvalidArgument, "client_name must be UTF-8 of <= 256 bytes");
    return result;
  }
  if (!valid_principal(principal)) {
    result.status = error(Code::kInvalidArgument, "principal must be UTF-8 of <= 512 bytes");
    return result;
  }
  if (sessions_.size() >= limits_.max_sessions) {
    result.status = error(Code::kResourceExhausted, "too many sessions");
    return result;
  }
  if (const uint64_t sessions = usage_of(principal).sessions;
      sessions >= limits_.max_sessions_per_principal) {
    result.status = error(Code::kResourceExhausted,
                          quoted(principal) + " has " + std::to_string(sessions) +
                              " sessions, the most max_sessions_per_principal allows");
    return result;
  }
  // The index is unique and grows, so it is a deterministic session id.
  Session& session = sessions_.emplace_hint(sessions_.end(), index, Session())->second;
  session.principal = add_principal(principal);
  ++session.principal->second.sessions;
  SessionRecord& record = session.record.mut();
  record.ttl_ms = static_cast<uint32_t>(ttl_ms);
  record.client_name = command.client_name();
  result.session_id = index;
  result.ttl_ms = ttl_ms;
  return result;
}

ApplyResult LockStateMachine::close_session(const lockpb::CloseSession& command,
                                            std::string_view principal) {
  ApplyResult result;
  SessionIt session;
  if (check_key(command.key(), principal, request_of(RequestKind::kCloseSession, "", 0), session,
                result) == KeyCheck::kDone) {
    return result;
  }
  end_session(session, /*expired=*/false, 0, 0, result);
  return result;
}

ApplyResult LockStateMachine::expire_session(uint64_t index, const lockpb::ExpireSession& command) {
  ApplyResult result;
  auto session = sessions_.find(command.session_id());
  if (session == sessions_.end()) {
    result.status = error(Code::kSessionExpired, "unknown session");
    return result;
  }
  end_session(session, /*expired=*/true, index, command.now_ms(), result);
  return result;
}

void LockStateMachine::end_session(SessionIt session, bool expired, uint64_t index, uint64_t now_ms,
                                   ApplyResult& result) {
  const uint64_t session_id = session->first;
  Session& ending = session->second;
  std::vector<LockIt> locks(ending.locks.begin(), ending.locks.end());
  ending.locks = {};
  std::sort(locks.begin(), locks.end(),
            [](const LockIt& a, const LockIt& b) { return a->first.view() < b->first.view(); });
  // First take the session out of every queue and holder list, and erase it,
  // so no grant below can reach it (etcd issue 11456).
  for (LockIt lock : locks) {
    Lock& l = change_lock(lock);
    auto waiter = std::find_if(l.waiters.begin(), l.waiters.end(),
                               [&](const Waiter& w) { return w.session_id == session_id; });
    if (waiter != l.waiters.end()) {
      result.ended_waits.push_back(EndedWait{session_id, std::string(lock->first.view()),
                                             waiter->wait_id, Code::kSessionExpired});
      uncount_entry(ending, waiter->value.size());
      l.waiters.erase(waiter);
      continue;
    }
    auto holder = std::find_if(l.holders.begin(), l.holders.end(),
                               [&](const Holder& h) { return h.session_id == session_id; });
    FL_CHECK(holder != l.holders.end(), "session {} lists lock {} it neither holds nor waits for",
             session_id, lock->first.view());
    result.released.push_back(Released{std::string(lock->first.view()), session_id, holder->token,
                                       expired ? ReleaseReason::kSessionExpired
                                               : ReleaseReason::kSessionClosed});
    uncount_entry(ending, holder->value.size());
    l.holders.erase(holder);
    // Chubby lock-delay: a holder that vanished may still be acting on the
    // resource, so nobody else gets the lock for a while.
    if (expired && l.lock_delay_ms > 0) start_lock_delay(lock, index, now_ms, result);
  }
  const PrincipalIt principal = ending.principal;
  FL_CHECK(principal->second.sessions > 0, "session {} of a principal without sessions",
           session_id);
  sessions_.erase(session);
  if (--principal->second.sessions == 0) {
    FL_CHECK(principal->second == Usage{}, "a principal without sessions holds or waits for locks");
    principals_.erase(principal);
  }
  for (LockIt lock : locks) {
    grant_waiters(lock, result);
    erase_if_unused(lock);
  }
}

// --- Usage by principal ---

LockStateMachine::PrincipalIt LockStateMachine::add_principal(std::string_view principal) {
  auto it = principals_.lower_bound(principal);
  if (it != principals_.end() && it->first.view() == principal) return it;
  return principals_.emplace_hint(it, detail::SharedBytes(principal), Usage{});
}

Usage LockStateMachine::usage_of(std::string_view principal) const {
  auto it = principals_.find(principal);
  return it == principals_.end() ? Usage{} : it->second;
}

Usage LockStateMachine::total_usage() const {
  Usage usage = totals_;
  usage.sessions = sessions_.size();
  return usage;
}

std::vector<std::pair<std::string, Usage>> LockStateMachine::usage_by_principal() const {
  std::vector<std::pair<std::string, Usage>> out;
  out.reserve(principals_.size());
  for (const auto& [name, usage] : principals_) out.emplace_back(std::string(name.view()), usage);
  return out;
}

Status LockStateMachine::authorize(uint64_t session_id, std::string_view principal) const {
  auto session = sessions_.find(session_id);
  if (session == sessions_.end()) return error(Code::kSessionExpired, "unknown session");
  if (session->second.principal->first.view() != principal) {
    return error(Code::kPermissionDenied,
                 "session " + std::to_string(session_id) + " was opened by another principal");
  }
  return Status();
}

Status LockStateMachine::check_usage_bounds(const Session& session, size_t value_bytes) const {
  const std::string who = quoted(session.principal->first.view());
  const Usage& mine = session.principal->second;
  auto too_many = [&](const std::string& holder, uint64_t now, const char* bound) {
    return error(Code::kResourceExhausted, holder + " holds or waits for " + std::to_string(now) +
                                               " locks, the most " + bound + " allows");
  };
  // Compared without overflow: value_bytes <= bound - used.
  auto too_large = [&](const std::string& holder, uint64_t used, uint64_t bound,
                       const char* name) -> std::optional<Status> {
    if (used <= bound && value_bytes <= bound - used) return std::nullopt;
    return error(Code::kResourceExhausted,
                 holder + " holds " + std::to_string(used) + " value bytes; " +
                     std::to_string(value_bytes) + " more would pass " + name + " (" +
                     std::to_string(bound) + ")");
  };
  if (mine.holders_and_waiters >= limits_.max_holders_and_waiters_per_principal) {
    return too_many(who, mine.holders_and_waiters, "max_holders_and_waiters_per_principal");
  }
  if (auto refused = too_large(who, mine.value_bytes, limits_.max_value_bytes_per_principal,
                               "max_value_bytes_per_principal")) {
    return *refused;
  }
  const std::string cluster = "the cluster (asked by " + who + ")";
  if (totals_.holders_and_waiters >= limits_.max_holders_and_waiters) {
    return too_many(cluster, totals_.holders_and_waiters, "max_holders_and_waiters");
  }
  if (auto refused =
          too_large(cluster, totals_.value_bytes, limits_.max_value_bytes, "max_value_bytes")) {
    return *refused;
  }
  return Status();
}

void LockStateMachine::count_entry(Session& session, size_t value_bytes) {
  Usage& usage = session.principal->second;
  ++usage.holders_and_waiters;
  usage.value_bytes += value_bytes;
  ++totals_.holders_and_waiters;
  totals_.value_bytes += value_bytes;
}

void LockStateMachine::uncount_entry(Session& session, size_t value_bytes) {
  Usage& usage = session.principal->second;
  FL_CHECK(usage.holders_and_waiters > 0 && usage.value_bytes >= value_bytes &&
               totals_.holders_and_waiters > 0 && totals_.value_bytes >= value_bytes,
           "usage counters below what a holder or waiter frees");
  --usage.holders_and_waiters;
  usage.value_bytes -= value_bytes;
  --totals_.holders_and_waiters;
  totals_.value_bytes -= value_bytes;
}

std::optional<std::string> LockStateMachine::check_invariants() const {
  std::map<std::string_view, Usage> recount;
  Usage totals;
  std::map<uint64_t, size_t> locks_of;  // session -> locks it holds or waits for
  for (const auto& [id, session] : sessions_) {
    auto principal = principals_.find(session.principal->first.view());
    if (principal == principals_.end() || &*principal != &*session.principal) {
      return "session " + std::to_string(id) + " names a principal that is not listed";
    }
    ++recount[principal->first.view()].sessions;
    locks_of[id] = 0;
  }
  auto count = [&](uint64_t session_id, size_t value_bytes,
                   std::string_view lock) -> std::optional<std::string> {
    auto session = sessions_.find(session_id);
    if (session == sessions_.end()) {
      return "lock " + std::string(lock) + " lists session " + std::to_string(session_id) +
             ", which does not exist";
    }
    Usage& usage = recount[session->second.principal->first.view()];
    ++usage.holders_and_waiters;
    usage.value_bytes += value_bytes;
    ++totals.holders_and_waiters;
    totals.value_bytes += value_bytes;
    ++locks_of[session_id];
    return std::nullopt;
  };
  for (const auto& [name, slot] : locks_) {
    for (const Holder& h : slot.record->holders) {
      if (auto broken = count(h.session_id, h.value.size(), name.view())) return broken;
    }
    for (const Waiter& w : slot.record->waiters) {
      if (auto broken = count(w.session_id, w.value.size(), name.view())) return broken;
    }
  }
  auto describe = [](const Usage& u) {
    return std::to_string(u.sessions) + " sessions, " + std::to_string(u.holders_and_waiters) +
           " holders and waiters, " + std::to_string(u.value_bytes) + " value bytes";
  };
  if (recount.size() != principals_.size()) {
    return "usage lists " + std::to_string(principals_.size()) + " principals, the sessions name " +
           std::to_string(recount.size());
  }
  for (const auto& [name, usage] : principals_) {
    auto counted = recount.find(name.view());
    if (counted == recount.end() || counted->second != usage) {
      return "usage of " + quoted(name.view()) + " is " + describe(usage) + ", a recount gives " +
             (counted == recount.end() ? std::string("nothing") : describe(counted->second));
    }
  }
  totals.sessions = sessions_.size();
  if (total_usage() != totals) {
    return "the cluster's usage is " + describe(total_usage()) + ", a recount gives " +
           describe(totals);
  }
  for (const auto& [id, session] : sessions_) {
    if (session.locks.size() != locks_of[id]) {
      return "session " + std::to_string(id) + " lists " + std::to_string(session.locks.size()) +
             " locks, it holds or waits for " + std::to_string(locks_of[id]);
    }
  }
  return std::nullopt;
}

// --- Locks ---

bool LockStateMachine::can_grant(const Lock& lock, lockpb::LockMode mode) const {
  if (lock.in_delay) return false;
  if (mode == lockpb::EXCLUSIVE) return lock.holders.empty();
  if (!lock.holders.empty() && lock.holders.front().mode == lockpb::EXCLUSIVE) return false;
  return lock.max_holders == 0 || lock.holders.size() < lock.max_holders;
}

void LockStateMachine::grant_waiters(LockIt lock, ApplyResult& result) {
  // Copies a record an image shares only when there is something to grant.
  const Lock& current = *lock->second.record;
  if (current.waiters.empty() || !can_grant(current, current.waiters[0].mode)) return;
  Lock& l = change_lock(lock);
  size_t granted = 0;
  // With the token epoch used up the queue stays as it is: its waits end
  // by their deadlines.
  while (granted < l.waiters.size() && can_grant(l, l.waiters[granted].mode) &&
         !tokens_exhausted()) {
    Waiter& waiter = l.waiters[granted];
    FL_CHECK(sessions_.count(waiter.session_id) == 1, "waiter of {} has no session {}",
             lock->first.view(), waiter.session_id);
    const uint64_t token = next_token_++;
    l.holders.push_back(Holder{waiter.session_id, token, waiter.mode, std::move(waiter.value)});
    result.grants.push_back(
        Grant{waiter.session_id, waiter.wait_id,
              make_sequencer(lock->first, waiter.mode, token, waiter.session_id)});
    ++granted;
  }
  l.waiters.erase(l.waiters.begin(), l.waiters.begin() + static_cast<ptrdiff_t>(granted));
}

void LockStateMachine::erase_if_unused(LockIt lock) {
  const Lock& l = *lock->second.record;
  if (l.holders.empty() && l.waiters.empty() && !l.in_delay) erase_lock(lock);
}

void LockStateMachine::forget_lock(Session& session, LockIt lock) {
  auto it = std::find(session.locks.begin(), session.locks.end(), lock);
  FL_CHECK(it != session.locks.end(), "session does not list lock {}", lock->first.view());
  *it = session.locks.back();
  session.locks.pop_back();
}

void LockStateMachine::start_lock_delay(LockIt lock, uint64_t index, uint64_t now_ms,
                                        ApplyResult& result) {
  Lock& l = change_lock(lock);
  // A holder that vanished now may act on the resource for the whole delay
  // from now on, so a delay already running restarts in full under this
  // entry's id. An entry with now_ms comes from a leader that armed its
  // timers by wall-clock end time and proposed EndLockDelay without an id:
  // id 0 lets its EndLockDelay, and a new leader's, end the delay, and
  // gives the same state whether a node replays that entry or restores a
  // format-1 snapshot that contains it.
  l.in_delay = true;
  l.delay_id = now_ms != 0 ? 0 : index;
  result.lock_delays_started.push_back(
      LockDelay{std::string(lock->first.view()), l.lock_delay_ms, l.delay_id});
}

ApplyResult LockStateMachine::acquire(uint64_t index, const lockpb::Acquire& command,
                                      std::string_view principal) {
  ApplyResult result;
  SessionIt session_it;
  const Request request =
      request_of(RequestKind::kAcquire, command.lock(), static_cast<uint64_t>(command.mode()));
  if (check_key(command.key(), principal, request, session_it, result) == KeyCheck::kDone) {
    if (result.duplicate && session_it != sessions_.end()) {
      answer_duplicate_acquire(session_it->first, *session_it->second.record, command, result);
    }
    return result;
  }
  const uint64_t session_id = session_it->first;
  Session& session = session_it->second;
  const uint64_t sequence = command.key().sequence();
  auto fail = [&](Code code, std::string message) {
    result.status = error(code, std::move(message));
    record(session, sequence, request, result);
    return result;
  };

  if (Status status = validate_lock_name(command.lock()); !status.ok()) {
    return fail(status.code(), status.message());
  }
  if (!valid_mode(command.mode())) return fail(Code::kInvalidArgument, "unknown lock mode");
  if (command.value().size() > kMaxValueBytes) {
    return fail(Code::kInvalidArgument, "value is longer than 1 KiB");
  }
  if (command.lock_delay_ms() > kMaxLockDelayMs) {
    return fail(Code::kInvalidArgument, "lock_delay_ms is longer than 60 s");
  }
  const lockpb::LockMode mode = command.mode();

  auto lock = locks_.find(command.lock());
  if (lock != locks_.end()) {
    const Lock& l = *lock->second.record;
    for (const Holder& holder : l.holders) {
      if (holder.session_id != session_id) continue;
      if (holder.mode != mode) {
        return fail(Code::kFailedPrecondition, "session holds the lock in the other mode");
      }
      result.granted = make_sequencer(lock->first, mode, holder.token, session_id);
      record(session, sequence, request, result);
      return result;
    }
    for (const Waiter& waiter : l.waiters) {
      if (waiter.session_id == session_id) {
        return fail(Code::kFailedPrecondition, "session already waits for the lock");
      }
    }
    if (command.max_holders() != 0 && command.max_holders() != l.max_holders) {
      return fail(Code::kFailedPrecondition, "lock exists with another max_holders");
    }
  }
  if (session.locks.size() >= limits_.max_locks_per_session) {
    return fail(Code::kResourceExhausted, "session holds or waits for too many locks");
  }
  if (Status bounded = check_usage_bounds(session, command.value().size()); !bounded.ok()) {
    return fail(bounded.code(), bounded.message());
  }
  // A grant needs a token: with the epoch's tokens used up (after 2^48 of
  // them) an acquire that would be granted fails cleanly and creates
  // nothing, rather than wrap to a lower token; one that queues still does.
  if ((lock == locks_.end() ||
       (lock->second.record->waiters.empty() && can_grant(*lock->second.record, mode))) &&
      tokens_exhausted()) {
    return fail(Code::kResourceExhausted,
                "the fencing tokens of token epoch " + std::to_string(token_epoch_) +
                    " are used up; a cluster restored from a backup starts the next epoch");
  }
  if (lock == locks_.end()) {
    if (locks_.size() >= limits_.max_locks) {
      return fail(Code::kResourceExhausted, "too many locks");
    }
    Lock created;
    created.max_holders = command.max_holders();
    created.lock_delay_ms = static_cast<uint32_t>(command.lock_delay_ms());
    // Created after any image under way began: not part of it.
    lock = locks_
               .emplace(detail::SharedBytes(command.lock()),
                        LockSlot{detail::Cow<Lock>(std::move(created)), image_epoch_})
               .first;
  }
  const Lock& current = *lock->second.record;
  // No barging: with anyone queued, a newcomer queues behind them even when
  // its mode is compatible with the holders, so writers never starve.
  if (current.waiters.empty() && can_grant(current, mode)) {
    Lock& l = change_lock(lock);
    const uint64_t token = next_token_++;
    l.holders.push_back(Holder{session_id, token, mode, detail::Payload(command.value())});
    session.locks.push_back(lock);
    count_entry(session, command.value().size());
    result.granted = make_sequencer(lock->first, mode, token, session_id);
  } else if (command.wait_ms() == 0) {
    // A try-acquire is a wait of zero that has expired.
    return fail(Code::kTimeout, "lock is busy");
  } else if (current.waiters.size() >= limits_.max_waiters_per_lock) {
    return fail(Code::kResourceExhausted, "too many waiters for the lock");
  } else {
    // The wait runs on the leader's clock, not in the state. An Acquire with
    // now_ms is an earlier leader's, which kept a deadline in its own clock:
    // a format-1 snapshot holding this wait knows no duration, so neither
    // does a replay of it (the same state either way).
    const uint64_t wait_ms = command.now_ms() != 0 ? 0 : command.wait_ms();
    change_lock(lock).waiters.push_back(
        Waiter{session_id, index, wait_ms, mode, detail::Payload(command.value())});
    session.locks.push_back(lock);
    count_entry(session, command.value().size());
    result.queued = true;
    result.wait_id = index;
    result.wait_ms = wait_ms;
  }
  record(session, sequence, request, result);
  return result;
}

ApplyResult LockStateMachine::release(const lockpb::Release& command, std::string_view principal) {
  ApplyResult result;
  SessionIt session_it;
  const Request request = request_of(RequestKind::kRelease, command.lock(), command.token());
  if (check_key(command.key(), principal, request, session_it, result) == KeyCheck::kDone) {
    return result;
  }
  const uint64_t session_id = session_it->first;
  Session& session = session_it->second;
  auto lock = locks_.find(command.lock());
  if (lock == locks_.end()) {
    result.status = validate_lock_name(command.lock());
    if (result.status.ok()) result.status = error(Code::kLockNotHeld, "lock is not held");
  } else {
    const auto& holders = lock->second.record->holders;
    auto holder = std::find_if(holders.begin(), holders.end(), [&](const Holder& h) {
      return h.session_id == session_id && h.token == command.token();
    });
    if (holder == holders.end()) {
      result.status = error(Code::kLockNotHeld, "session does not hold the lock with that token");
    } else {
      const auto at = holder - holders.begin();
      result.released.push_back(Released{std::string(lock->first.view()), session_id,
                                         holder->token, ReleaseReason::kReleased});
      uncount_entry(session, holder->value.size());
      Lock& l = change_lock(lock);
      l.holders.erase(l.holders.begin() + at);
      forget_lock(session, lock);
      grant_waiters(lock, result);
      erase_if_unused(lock);
    }
  }
  record(session, command.key().sequence(), request, result);
  return result;
}

ApplyResult LockStateMachine::cancel_wait(const lockpb::CancelWait& command,
                                          std::string_view principal) {
  ApplyResult result;
  // sequence 0: the leader ends a wait whose deadline passed. Otherwise the
  // client cancels its own wait, exactly once. A leader's carries no
  // principal; one that does goes through the client's checks (and is
  // refused for its sequence 0 if the session is its own).
  const bool by_leader = command.key().sequence() == 0 && principal.empty();
  const Request request = request_of(RequestKind::kCancelWait, command.lock(), command.wait_id());
  SessionIt session_it;
  if (by_leader) {
    session_it = sessions_.find(command.key().session_id());
    if (session_it == sessions_.end()) {
      result.status = error(Code::kSessionExpired, "unknown session");
      return result;
    }
  } else if (check_key(command.key(), principal, request, session_it, result) == KeyCheck::kDone) {
    return result;
  }
  const uint64_t session_id = session_it->first;
  Session& session = session_it->second;
  auto lock = locks_.find(command.lock());
  bool found = false;
  if (lock != locks_.end()) {
    const auto& waiters = lock->second.record->waiters;
    auto waiter = std::find_if(waiters.begin(), waiters.end(), [&](const Waiter& w) {
      return w.session_id == session_id &&
             (command.wait_id() == 0 || w.wait_id == command.wait_id());
    });
    if (waiter != waiters.end()) {
      found = true;
      result.ended_waits.push_back(EndedWait{session_id, std::string(lock->first.view()),
                                             waiter->wait_id,
                                             by_leader ? Code::kTimeout : Code::kCancelled});
      const auto at = waiter - waiters.begin();
      uncount_entry(session, waiter->value.size());
      Lock& l = change_lock(lock);
      l.waiters.erase(l.waiters.begin() + at);
      forget_lock(session, lock);
      // The cancelled waiter may have been what blocked those behind it.
      grant_waiters(lock, result);
      erase_if_unused(lock);
    }
  }
  if (!found) result.status = error(Code::kNotFound, "no such wait");
  if (!by_leader) record(session, command.key().sequence(), request, result);
  return result;
}

ApplyResult LockStateMachine::end_lock_delay(const lockpb::EndLockDelay& command) {
  ApplyResult result;
  // Leader proposed, from a timer armed for one delay: a delay that has
  // ended or restarted since (another id), or a lock that is gone, makes it
  // a stale timer with nothing to do.
  auto lock = locks_.find(command.lock());
  if (lock == locks_.end()) return result;
  if (!lock->second.record->in_delay || lock->second.record->delay_id != command.delay_id()) return result;
  Lock& l = change_lock(lock);
  l.in_delay = false;
  l.delay_id = 0;
  grant_waiters(lock, result);
  erase_if_unused(lock);
  return result;
}

ApplyResult LockStateMachine::force_release(uint64_t index, const lockpb::ForceRelease& command) {
  ApplyResult result;
  auto lock = locks_.find(command.lock());
  if (lock == locks_.end()) {
    result.status = error(Code::kNotFound, "no such lock");
    return result;
  }
  if (!lock->second.record->holders.empty()) {
    Lock& l = change_lock(lock);
    result.released.reserve(l.holders.size());
    for (const Holder& holder : l.holders) {
      result.released.push_back(Released{std::string(lock->first.view()), holder.session_id,
                                         holder.token, ReleaseReason::kForceReleased});
      auto session = sessions_.find(holder.session_id);
      FL_CHECK(session != sessions_.end(), "holder of {} has no session {}", lock->first.view(),
               holder.session_id);
      forget_lock(session->second, lock);
      uncount_entry(session->second, holder.value.size());
    }
    l.holders.clear();
    // The holders did not release: they may still act on the resource.
    if (l.lock_delay_ms > 0) start_lock_delay(lock, index, command.now_ms(), result);
  }
  grant_waiters(lock, result);
  erase_if_unused(lock);
  return result;
}

// --- Reads ---

Result<LockView> LockStateMachine::describe(std::string_view name) const {
  if (Status status = validate_lock_name(name); !status.ok()) return status;
  auto lock = locks_.find(name);
  if (lock == locks_.end()) return Status(Code::kNotFound, "no such lock");
  return view_of(*lock);
}

LockView LockStateMachine::view_of(const LockMap::value_type& entry) {
  const Lock& l = *entry.second.record;
  LockView view;
  view.name = std::string(entry.first.view());
  view.holders.reserve(l.holders.size());
  for (const Holder& holder : l.holders) {
    view.holders.push_back(
        HolderView{holder.session_id, holder.token, holder.mode, std::string(holder.value.view())});
  }
  view.waiters.reserve(l.waiters.size());
  for (const Waiter& waiter : l.waiters) {
    view.waiters.push_back(
        WaiterView{waiter.session_id, waiter.mode, waiter.wait_id, waiter.wait_ms});
  }
  view.max_holders = l.max_holders;
  view.lock_delay_ms = l.lock_delay_ms;
  view.in_lock_delay = l.in_delay;
  view.lock_delay_id = l.delay_id;
  return view;
}

LockPage LockStateMachine::list_locks(std::string_view prefix, std::string_view start_after,
                                      uint32_t limit, size_t max_bytes) const {
  LockPage page;
  const uint32_t size = page_size(limit);
  // The bound of the page so far, counting next_start_after as the name of
  // its last lock (what it becomes if the page ends there).
  size_t page_bytes = encoded_bytes_bound(page);
  auto it = start_after < prefix ? locks_.lower_bound(prefix) : locks_.upper_bound(start_after);
  for (; it != locks_.end() && it->first.view().starts_with(prefix); ++it) {
    if (page.locks.size() == size) {
      page.next_start_after = page.locks.back().name;
      break;
    }
    LockView view = view_of(*it);
    const size_t previous_name = page.locks.empty() ? 0 : page.locks.back().name.size();
    const size_t bytes = page_bytes - previous_name + encoded_bytes_bound(view) + view.name.size();
    if (!page.locks.empty() && bytes > max_bytes) {
      page.next_start_after = page.locks.back().name;
      break;
    }
    page_bytes = bytes;
    page.locks.push_back(std::move(view));
  }
  return page;
}

SequencerStatus LockStateMachine::check_sequencer(const lockpb::Sequencer& sequencer) const {
  SequencerStatus status;
  auto lock = locks_.find(sequencer.lock());
  if (lock == locks_.end()) return status;
  for (const Holder& holder : lock->second.record->holders) {
    if (holder.session_id == sequencer.session_id() && holder.token == sequencer.token() &&
        holder.mode == sequencer.mode()) {
      status.current = true;
    }
  }
  return status;
}

SessionPage LockStateMachine::list_sessions(uint64_t start_after, uint32_t limit,
                                            size_t max_bytes) const {
  SessionPage page;
  const uint32_t size = page_size(limit);
  size_t page_bytes = encoded_bytes_bound(page);
  for (auto it = sessions_.upper_bound(start_after); it != sessions_.end(); ++it) {
    if (page.sessions.size() == size) {
      page.next_start_after = page.sessions.back().session_id;
      break;
    }
    SessionView view;
    view.session_id = it->first;
    view.client_name = it->second.record->client_name;
    view.principal = std::string(it->second.principal->first.view());
    view.ttl_ms = it->second.record->ttl_ms;
    uint32_t held = 0;
    for (const LockIt& lock : it->second.locks) {
      const auto& holders = lock->second.record->holders;
      held += std::any_of(holders.begin(), holders.end(),
                          [&](const Holder& h) { return h.session_id == it->first; });
    }
    view.held_locks = held;
    view.waiting_locks = static_cast<uint32_t>(it->second.locks.size()) - held;
    const size_t bytes = page_bytes + encoded_bytes_bound(view);
    if (!page.sessions.empty() && bytes > max_bytes) {
      page.next_start_after = page.sessions.back().session_id;
      break;
    }
    page_bytes = bytes;
    page.sessions.push_back(std::move(view));
  }
  return page;
}

std::vector<SessionTtl> LockStateMachine::sessions() const {
  std::vector<SessionTtl> out;
  out.reserve(sessions_.size());
  for (const auto& [id, session] : sessions_) out.push_back(SessionTtl{id, session.record->ttl_ms});
  return out;
}

std::vector<PendingWait> LockStateMachine::pending_waits() const {
  std::vector<PendingWait> out;
  for (const auto& [name, lock] : locks_) {
    for (const Waiter& waiter : lock.record->waiters) {
      out.push_back(
          PendingWait{waiter.session_id, std::string(name.view()), waiter.wait_id, waiter.wait_ms});
    }
  }
  return out;
}

std::vector<LockDelay> LockStateMachine::lock_delays() const {
  std::vector<LockDelay> out;
  for (const auto& [name, lock] : locks_) {
    if (lock.record->in_delay) {
      out.push_back(
          LockDelay{std::string(name.view()), lock.record->lock_delay_ms, lock.record->delay_id});
    }
  }
  return out;
}

// --- Snapshots ---
//
// Format 4 (integers little-endian; bytes = u32 length, then the bytes):
//   magic u32, version u32, applied_index u64, next_token u64,
//     token_epoch u64;
//   session count u64, then per session in id order: id u64, ttl_ms u32,
//     last_sequence u64, last_kind u8, last_code u8 (an sm::Code),
//     last_queued u8, last_token u64, last_request u64 (the fingerprint),
//     client_name bytes, principal bytes;
//   lock count u64, then per lock in name order: name bytes, max_holders
//     u32, lock_delay_ms u32, in_delay u8, delay_id u64; holder count u32
//     and per holder session_id u64, token u64, mode u8, value bytes; waiter
//     count u32 and per waiter session_id u64, wait_id u64, wait_ms u64,
//     mode u8, value bytes;
//   then the FNV-1a 64 checksum of all of it.
// The usage counters are not stored: restore() recounts them.
// Format 3 has the same shape without principal (read as "").
// Format 2 has the shape of format 3 without token_epoch (read as epoch 0).
// Format 1 has the shape of format 2 without last_request (read as 0: unknown); it
// differs in what three fields mean:
//   last_code is a lockpb::ErrorCode number (code_from_format1); delay_id
//   is the delay's end in the old leader's clock, read as delay id 0 (see
//   start_lock_delay); wait_ms is the wait's deadline in that clock, read
//   as 0 (see acquire).

std::string LockStateMachine::snapshot() const { return image().encode(); }

LockStateMachine::Image LockStateMachine::image() const {
  Image image;
  image.applied_index_ = applied_index_;
  image.next_token_ = next_token_;
  image.token_epoch_ = token_epoch_;
  image.sessions_.reserve(sessions_.size());
  for (const auto& [id, session] : sessions_) {
    image.sessions_.push_back(Image::SessionEntry{id, session.record, session.principal->first});
  }
  image.locks_.reserve(locks_.size());
  for (const auto& [name, lock] : locks_) image.locks_.emplace_back(name, lock.record);
  return image;
}

// --- Images taken in slices ---
//
// An image under way holds the state as it was at begin_image(): the
// header and every session then, and each lock's record as it was then.
// A lock is in one of three cases, told apart by its slot's image_epoch:
//  - not yet captured: it existed at begin_image() (epoch older than
//    image_epoch_) and neither the walk nor a change has reached it;
//  - captured: by the walk (in name order, into image.locks_) or by a
//    change or an erase that came first (into image.early_, before the
//    change); its epoch is image_epoch_;
//  - created since: its epoch is image_epoch_ from the start, and the walk
//    skips it.
// Captured records are shared copy-on-write, so later changes leave them
// as they were.

void LockStateMachine::begin_image() {
  FL_CHECK(!build_, "an image is already being taken");
  ++image_epoch_;
  build_ = std::make_unique<ImageBuild>();
  build_->image.applied_index_ = applied_index_;
  build_->image.next_token_ = next_token_;
  build_->image.token_epoch_ = token_epoch_;
  build_->image.sessions_.reserve(sessions_.size());
  for (const auto& [id, session] : sessions_) {
    build_->image.sessions_.push_back(
        Image::SessionEntry{id, session.record, session.principal->first});
  }
  build_->image.locks_.reserve(locks_.size());
  build_->cursor = locks_.begin();
}

bool LockStateMachine::continue_image(size_t max_locks) {
  FL_CHECK(build_, "no image is being taken");
  ImageBuild& build = *build_;
  for (size_t visited = 0; visited < max_locks && build.cursor != locks_.end(); ++visited) {
    LockSlot& slot = build.cursor->second;
    if (slot.image_epoch != image_epoch_) {
      build.image.locks_.emplace_back(build.cursor->first, slot.record);
      slot.image_epoch = image_epoch_;
    }
    ++build.cursor;
  }
  return build.cursor == locks_.end();
}

LockStateMachine::Image LockStateMachine::take_image() {
  FL_CHECK(build_ && build_->cursor == locks_.end(), "the image is not complete");
  Image image = std::move(build_->image);
  build_.reset();
  return image;
}

void LockStateMachine::capture_unvisited(LockIt lock) {
  if (!build_ || lock->second.image_epoch == image_epoch_) return;
  build_->image.early_.emplace_back(lock->first, lock->second.record);
  lock->second.image_epoch = image_epoch_;
}

LockStateMachine::Lock& LockStateMachine::change_lock(LockIt lock) {
  capture_unvisited(lock);
  return lock->second.record.mut();
}

void LockStateMachine::erase_lock(LockIt lock) {
  capture_unvisited(lock);
  if (build_ && build_->cursor == lock) ++build_->cursor;
  locks_.erase(lock);
}

std::string LockStateMachine::Image::encode() const {
  // Locks a change captured before the walk reached them, put in order
  // among the walked ones.
  std::vector<const LockEntry*> early;
  early.reserve(early_.size());
  for (const LockEntry& entry : early_) early.push_back(&entry);
  std::sort(early.begin(), early.end(), [](const LockEntry* a, const LockEntry* b) {
    return a->first.view() < b->first.view();
  });
  // An upper bound on the encoding's size, so the buffer grows once.
  size_t bound = 64 + sessions_.size() * 64;
  for (const SessionEntry& s : sessions_) {
    bound += s.record->client_name.size() + s.principal.size();
  }
  auto lock_bound = [](const LockEntry& entry) {
    const Lock& l = *entry.second;
    size_t bytes = 64 + entry.first.size() + l.holders.size() * 32 + l.waiters.size() * 40;
    for (const Holder& h : l.holders) bytes += h.value.size();
    for (const Waiter& waiter : l.waiters) bytes += waiter.value.size();
    return bytes;
  };
  for (const LockEntry& entry : locks_) bound += lock_bound(entry);
  for (const LockEntry& entry : early_) bound += lock_bound(entry);

  detail::SnapshotWriter w;
  w.reserve(bound);
  w.put_u32(kSnapshotMagic);
  w.put_u32(kSnapshotVersion);
  w.put_u64(applied_index_);
  w.put_u64(next_token_);
  w.put_u64(token_epoch_);
  w.put_u64(sessions_.size());
  for (const SessionEntry& session : sessions_) {
    const SessionRecord* s = &*session.record;
    w.put_u64(session.id);
    w.put_u32(s->ttl_ms);
    w.put_u64(s->last_sequence);
    w.put_u8(static_cast<uint8_t>(s->last_kind));
    w.put_u8(static_cast<uint8_t>(s->last_code));
    w.put_u8(s->last_queued ? 1 : 0);
    w.put_u64(s->last_token);
    w.put_u64(s->last_request);
    w.put_bytes(s->client_name);
    w.put_bytes(session.principal.view());
  }
  w.put_u64(locks_.size() + early_.size());
  auto put_lock = [&w](const LockEntry& entry) {
    const Lock& l = *entry.second;
    w.put_bytes(entry.first.view());
    w.put_u32(l.max_holders);
    w.put_u32(l.lock_delay_ms);
    w.put_u8(l.in_delay ? 1 : 0);
    w.put_u64(l.delay_id);
    w.put_u32(static_cast<uint32_t>(l.holders.size()));
    for (const Holder& h : l.holders) {
      w.put_u64(h.session_id);
      w.put_u64(h.token);
      w.put_u8(static_cast<uint8_t>(h.mode));
      w.put_bytes(h.value.view());
    }
    w.put_u32(static_cast<uint32_t>(l.waiters.size()));
    for (const Waiter& waiter : l.waiters) {
      w.put_u64(waiter.session_id);
      w.put_u64(waiter.wait_id);
      w.put_u64(waiter.wait_ms);
      w.put_u8(static_cast<uint8_t>(waiter.mode));
      w.put_bytes(waiter.value.view());
    }
  };
  auto next_early = early.begin();
  for (const LockEntry& entry : locks_) {
    while (next_early != early.end() && (*next_early)->first.view() < entry.first.view()) {
      put_lock(**next_early++);
    }
    put_lock(entry);
  }
  while (next_early != early.end()) put_lock(**next_early++);
  return std::move(w).finish();
}

Status LockStateMachine::restore(std::string_view bytes) {
  auto damaged = [](std::string what) {
    return Status(Code::kInvalidArgument, "damaged snapshot: " + what);
  };
  detail::SnapshotReader r(bytes);
  if (!r.ok()) return damaged("checksum mismatch or truncated");
  uint32_t magic = 0, version = 0;
  r.get_u32(magic);
  r.get_u32(version);
  if (!r.ok() || magic != kSnapshotMagic) return damaged("bad magic");
  if (version != kSnapshotVersion && version != kSnapshotFormat3 && version != kSnapshotFormat2 &&
      version != kSnapshotFormat1) {
    return damaged("unknown version " + std::to_string(version));
  }
  const bool format1 = version == kSnapshotFormat1;

  LockStateMachine next(limits_);
  uint64_t session_count = 0;
  r.get_u64(next.applied_index_);
  r.get_u64(next.next_token_);
  if (version >= kSnapshotFormat3) r.get_u64(next.token_epoch_);  // earlier formats: epoch 0
  r.get_u64(session_count);
  if (!r.ok()) return damaged("bad header");
  if (next.token_epoch_ > kMaxTokenEpoch ||
      next.next_token_ < first_token_of_epoch(next.token_epoch_) ||
      next.next_token_ > token_epoch_end(next.token_epoch_)) {
    return damaged("next token outside its token epoch");
  }
  uint64_t previous_id = 0;
  for (uint64_t i = 0; i < session_count; ++i) {
    uint64_t id = 0;
    SessionRecord s;
    std::string principal;  // earlier formats: ""
    uint8_t kind = 0, code = 0, queued = 0;
    r.get_u64(id);
    r.get_u32(s.ttl_ms);
    r.get_u64(s.last_sequence);
    r.get_u8(kind);
    r.get_u8(code);
    r.get_u8(queued);
    r.get_u64(s.last_token);
    if (!format1) r.get_u64(s.last_request);
    r.get_bytes(s.client_name);
    if (version >= kSnapshotVersion) r.get_bytes(principal);
    if (!r.ok()) return damaged("truncated session");
    if (id <= previous_id || id > next.applied_index_) return damaged("bad session id");
    if (s.ttl_ms < kMinTtlMs || s.ttl_ms > kMaxTtlMs) return damaged("bad session ttl");
    std::optional<Code> last_code = format1 ? code_from_format1(code) : code_from_format2(code);
    // A fingerprint of 0 with a request is a format-1 session's, kept
    // through later snapshots.
    if (kind > static_cast<uint8_t>(RequestKind::kCancelWait) || !last_code || queued > 1 ||
        s.last_token >= next.next_token_ ||
        (kind == static_cast<uint8_t>(RequestKind::kNone) && s.last_request != 0)) {
      return damaged("bad session last request");
    }
    s.last_code = *last_code;
    if (s.client_name.size() > kMaxClientNameBytes || !is_valid_utf8(s.client_name)) {
      return damaged("bad client name");
    }
    if (!valid_principal(principal)) return damaged("bad principal");
    s.last_kind = static_cast<RequestKind>(kind);
    s.last_queued = queued == 1;
    // Within the Limits or not (they may have changed): the sessions exist.
    const PrincipalIt owner = next.add_principal(principal);
    ++owner->second.sessions;
    next.sessions_.emplace_hint(next.sessions_.end(), id,
                                Session{detail::Cow<SessionRecord>(std::move(s)), {}, owner});
    previous_id = id;
  }

  uint64_t lock_count = 0;
  r.get_u64(lock_count);
  std::vector<uint64_t> tokens;  // checked for duplicates at the end
  std::string previous_name;
  std::string value;
  for (uint64_t i = 0; i < lock_count; ++i) {
    std::string name;
    Lock l;
    uint8_t in_delay = 0;
    uint64_t delay = 0;
    uint32_t holder_count = 0;
    r.get_bytes(name);
    r.get_u32(l.max_holders);
    r.get_u32(l.lock_delay_ms);
    r.get_u8(in_delay);
    r.get_u64(delay);
    r.get_u32(holder_count);
    if (!r.ok()) return damaged("truncated lock");
    if (!validate_lock_name(name).ok() || (i > 0 && name <= previous_name)) {
      return damaged("bad lock name");
    }
    if (in_delay > 1 || l.lock_delay_ms > kMaxLockDelayMs || (in_delay == 0 && delay != 0) ||
        (!format1 && delay > next.applied_index_)) {
      return damaged("bad lock-delay");
    }
    l.in_delay = in_delay == 1;
    l.delay_id = format1 ? 0 : delay;
    if (holder_count > r.remaining()) return damaged("bad holder count");
    std::set<uint64_t> members;
    for (uint32_t j = 0; j < holder_count; ++j) {
      Holder h;
      uint8_t mode = 0;
      r.get_u64(h.session_id);
      r.get_u64(h.token);
      r.get_u8(mode);
      r.get_bytes(value);
      if (!r.ok()) return damaged("truncated holder");
      if (!valid_mode(mode) || value.size() > kMaxValueBytes) return damaged("bad holder");
      h.value = detail::Payload(value);
      h.mode = static_cast<lockpb::LockMode>(mode);
      if (h.token == 0 || h.token >= next.next_token_ ||
          (!l.holders.empty() && h.token <= l.holders.back().token)) {
        return damaged("bad token");
      }
      tokens.push_back(h.token);
      if (!next.sessions_.count(h.session_id) || !members.insert(h.session_id).second) {
        return damaged("bad holder session");
      }
      l.holders.push_back(std::move(h));
    }
    for (const Holder& h : l.holders) {
      if (h.mode == lockpb::EXCLUSIVE && l.holders.size() != 1) return damaged("bad exclusive");
    }
    if (l.max_holders != 0 && l.holders.size() > l.max_holders &&
        l.holders.front().mode == lockpb::SHARED) {
      return damaged("too many holders");
    }
    uint32_t waiter_count = 0;
    r.get_u32(waiter_count);
    if (!r.ok() || waiter_count > r.remaining()) return damaged("bad waiter count");
    for (uint32_t j = 0; j < waiter_count; ++j) {
      Waiter w;
      uint8_t mode = 0;
      r.get_u64(w.session_id);
      r.get_u64(w.wait_id);
      r.get_u64(w.wait_ms);
      if (format1) w.wait_ms = 0;
      r.get_u8(mode);
      r.get_bytes(value);
      if (!r.ok()) return damaged("truncated waiter");
      w.value = detail::Payload(value);
      if (!valid_mode(mode) || value.size() > kMaxValueBytes || w.wait_id == 0 ||
          w.wait_id > next.applied_index_) {
        return damaged("bad waiter");
      }
      w.mode = static_cast<lockpb::LockMode>(mode);
      if (!next.sessions_.count(w.session_id) || !members.insert(w.session_id).second) {
        return damaged("bad waiter session");
      }
      l.waiters.push_back(std::move(w));
    }
    // A state apply() can reach: the lock exists only while used, and the
    // head of the queue is blocked (otherwise it would have been granted).
    if (l.holders.empty() && l.waiters.empty() && !l.in_delay) return damaged("unused lock");
    // (With the token epoch used up, the head may be grantable yet wait.)
    if (!l.waiters.empty() && next.can_grant(l, l.waiters.front().mode) &&
        !next.tokens_exhausted()) {
      return damaged("grantable head of queue");
    }
    auto lock = next.locks_.emplace_hint(next.locks_.end(), detail::SharedBytes(name),
                                         LockSlot{detail::Cow<Lock>(std::move(l)), 0});
    for (const Holder& h : lock->second.record->holders) {
      Session& session = next.sessions_.find(h.session_id)->second;
      session.locks.push_back(lock);
      next.count_entry(session, h.value.size());
    }
    for (const Waiter& w : lock->second.record->waiters) {
      Session& session = next.sessions_.find(w.session_id)->second;
      session.locks.push_back(lock);
      next.count_entry(session, w.value.size());
    }
    previous_name = std::move(name);
  }
  if (!r.ok() || !r.at_end()) return damaged("trailing bytes");
  std::sort(tokens.begin(), tokens.end());
  if (std::adjacent_find(tokens.begin(), tokens.end()) != tokens.end()) {
    return damaged("token held twice");
  }
  // An image under way is of the state being replaced: it is completed
  // first, and kept for take_image().
  if (build_) continue_image(locks_.size());
  std::unique_ptr<ImageBuild> build = std::move(build_);
  const uint32_t image_epoch = image_epoch_;
  *this = std::move(next);
  build_ = std::move(build);
  image_epoch_ = image_epoch;
  if (build_) build_->cursor = locks_.end();
  return Status();
}

}  // namespace fencelock::sm
