// Property test: random command sequences, garbage included, against a naive
// reference model written separately from the state machine. After every
// command it checks the lock invariants (docs/locks.md) on the state machine's
// own reads, then compares results and whole state with the model; at random
// points it swaps in a state restored from a snapshot.
//
// Replay a failure with: statemachine_property_test --rng-seed <seed>
// (the seed and the failing sequence number are printed).

#include <catch2/catch.hpp>
#include <cstdint>
#include <map>
#include <optional>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "statemachine/lock_state_machine.h"
#include "tests/statemachine/sm_invariants.h"
#include "tests/statemachine/sm_test_util.h"

namespace fencelock::sm {
namespace {

// ---------------------------------------------------------------------------
// The reference model: plain structures, linear scans, no cleverness.

struct ModelOutcome {
  Code code = Code::kOk;
  uint64_t session_id = 0;
  uint64_t ttl_ms = 0;
  bool has_grant = false;
  uint64_t grant_token = 0;
  int grant_mode = 0;
  bool queued = false;
  uint64_t wait_id = 0;
  uint64_t wait_ms = 0;
  std::vector<std::string> grants;       // "session/wait_id/lock/token/mode"
  std::vector<std::string> ended_waits;  // "session/lock/wait_id/reason"
  std::vector<std::string> delays;       // "lock/delay_ms/delay_id"
  std::vector<std::string> released;     // "lock/session/token/reason"
};

class Model {
 public:
  explicit Model(Limits limits) : limits_(limits) {}

  ModelOutcome apply(uint64_t index, const lockpb::Command& c) {
    ModelOutcome out;
    principal_ = c.principal();
    if ((c.has_expire_session() || c.has_end_lock_delay()) && !principal_.empty()) {
      out.code = Code::kInvalidArgument;  // a leader's command never has one
      return out;
    }
    switch (c.kind_case()) {
      case lockpb::Command::kOpenSession:
        open(index, c.open_session(), out);
        break;
      case lockpb::Command::kCloseSession:
        close(c.close_session(), out);
        break;
      case lockpb::Command::kExpireSession:
        if (!sessions_.count(c.expire_session().session_id())) {
          out.code = Code::kSessionExpired;
        } else {
          end(c.expire_session().session_id(), true, index, c.expire_session().now_ms(), out);
        }
        break;
      case lockpb::Command::kAcquire:
        acquire(index, c.acquire(), out);
        break;
      case lockpb::Command::kRelease:
        release(c.release(), out);
        break;
      case lockpb::Command::kCancelWait:
        cancel(c.cancel_wait(), out);
        break;
      case lockpb::Command::kEndLockDelay:
        end_delay(c.end_lock_delay(), out);
        break;
      case lockpb::Command::kForceRelease:
        force(index, c.force_release(), out);
        break;
      default:
        out.code = Code::kInvalidArgument;
    }
    return out;
  }

  // Canonical text of the whole state, same format as InvariantChecker::dump.
  std::string dump(uint64_t applied_index) const {
    std::ostringstream s;
    s << "applied " << applied_index << " next " << next_token_ << "\n";
    for (const auto& [id, session] : sessions_) {
      int held = 0, waiting = 0;
      for (const auto& [name, lock] : locks_) {
        for (const auto& h : lock.holders) held += h.session == id;
        for (const auto& w : lock.waiters) waiting += w.session == id;
      }
      s << "session " << id << " " << session.name << " " << session.ttl << " " << held << " "
        << waiting << " [" << session.principal << "]\n";
    }
    std::set<std::string> principals;
    for (const auto& [id, session] : sessions_) principals.insert(session.principal);
    for (const std::string& p : principals) {
      Usage u = usage(&p);
      s << "usage [" << p << "] " << u.sessions << " " << u.holders_and_waiters << " "
        << u.value_bytes << "\n";
    }
    Usage total = usage(nullptr);
    s << "total " << total.sessions << " " << total.holders_and_waiters << " " << total.value_bytes
      << "\n";
    for (const auto& [name, lock] : locks_) {
      s << "lock " << name << " max " << lock.max << " delay " << lock.delay_ms << " "
        << lock.in_delay << " " << lock.delay_id << "\n";
      for (const auto& h : lock.holders) {
        s << " holder " << h.session << " " << h.token << " " << h.mode << " " << h.value << "\n";
      }
      for (const auto& w : lock.waiters) {
        s << " waiter " << w.session << " " << w.mode << " " << w.wait_id << " " << w.wait_ms
          << "\n";
      }
    }
    return s.str();
  }

 private:
  struct MHolder {
    uint64_t session;
    uint64_t token;
    int mode;
    std::string value;
  };
  struct MWaiter {
    uint64_t session;
    uint64_t wait_id;
    uint64_t wait_ms;
    int mode;
    std::string value;
  };
  struct MLock {
    std::vector<MHolder> holders;
    std::vector<MWaiter> waiters;
    uint32_t max = 0;
    uint64_t delay_ms = 0;
    bool in_delay = false;
    uint64_t delay_id = 0;
  };
  struct MSession {
    uint64_t ttl = 0;
    std::string name;
    std::string principal;
    uint64_t last_seq = 0;
    std::string last_request;  // kind and arguments, e.g. "acquire 1 jobs/c"
    Code last_code = Code::kOk;
    bool last_queued = false;
    uint64_t last_token = 0;
  };

  static bool name_ok(const std::string& n) { return validate_lock_name(n).ok(); }

  // ModelOutcome::released's form of one holder that stopped holding `lock`.
  static std::string released(const std::string& lock, const MHolder& h, const char* reason) {
    return lock + "/" + std::to_string(h.session) + "/" + std::to_string(h.token) + "/" + reason;
  }

  // What the sessions of `principal` (every session: nullptr) hold, by
  // counting.
  Usage usage(const std::string* principal) const {
    Usage u;
    auto mine = [&](uint64_t session) {
      return principal == nullptr || sessions_.at(session).principal == *principal;
    };
    for (const auto& [id, session] : sessions_) u.sessions += mine(id);
    for (const auto& [name, l] : locks_) {
      for (const auto& h : l.holders) {
        if (!mine(h.session)) continue;
        ++u.holders_and_waiters;
        u.value_bytes += h.value.size();
      }
      for (const auto& w : l.waiters) {
        if (!mine(w.session)) continue;
        ++u.holders_and_waiters;
        u.value_bytes += w.value.size();
      }
    }
    return u;
  }

  bool grantable(const MLock& l, int mode) const {
    if (l.in_delay) return false;
    bool exclusive_held = false;
    for (const auto& h : l.holders) exclusive_held |= h.mode == lockpb::EXCLUSIVE;
    if (mode == lockpb::EXCLUSIVE) return l.holders.empty();
    if (exclusive_held) return false;
    return l.max == 0 || l.holders.size() < l.max;
  }

  void grant_queue(const std::string& name, MLock& l, ModelOutcome& out) {
    while (!l.waiters.empty() && grantable(l, l.waiters.front().mode)) {
      MWaiter w = l.waiters.front();
      l.waiters.erase(l.waiters.begin());
      uint64_t token = next_token_++;
      l.holders.push_back({w.session, token, w.mode, w.value});
      out.grants.push_back(std::to_string(w.session) + "/" + std::to_string(w.wait_id) + "/" +
                           name + "/" + std::to_string(token) + "/" + std::to_string(w.mode));
    }
  }

  void drop_if_unused(const std::string& name) {
    auto it = locks_.find(name);
    if (it != locks_.end() && it->second.holders.empty() && it->second.waiters.empty() &&
        !it->second.in_delay) {
      locks_.erase(it);
    }
  }

  // A delay restarts in full under the id of the entry that (re)starts it;
  // an entry with now_ms is an earlier leader's and gives id 0.
  void delay(const std::string& name, MLock& l, uint64_t index, uint64_t now, ModelOutcome& out) {
    l.in_delay = true;
    l.delay_id = now == 0 ? index : 0;
    out.delays.push_back(name + "/" + std::to_string(l.delay_ms) + "/" +
                         std::to_string(l.delay_id));
  }

  void open(uint64_t index, const lockpb::OpenSession& c, ModelOutcome& out) {
    uint64_t ttl = c.ttl_ms() ? c.ttl_ms() : 10'000;
    if (ttl < 500 || ttl > 600'000 || c.client_name().size() > 256 ||
        !is_valid_utf8(c.client_name()) || principal_.size() > 512 || !is_valid_utf8(principal_)) {
      out.code = Code::kInvalidArgument;
    } else if (sessions_.size() >= limits_.max_sessions ||
               usage(&principal_).sessions >= limits_.max_sessions_per_principal) {
      out.code = Code::kResourceExhausted;
    } else {
      MSession& session = sessions_[index];
      session.ttl = ttl;
      session.name = c.client_name();
      session.principal = principal_;
      out.session_id = index;
      out.ttl_ms = ttl;
    }
  }

  void end(uint64_t id, bool expired, uint64_t index, uint64_t now, ModelOutcome& out) {
    for (auto& [name, l] : locks_) {
      for (size_t i = 0; i < l.waiters.size(); ++i) {
        if (l.waiters[i].session == id) {
          out.ended_waits.push_back(std::to_string(id) + "/" + name + "/" +
                                    std::to_string(l.waiters[i].wait_id) + "/" +
                                    std::string(code_name(Code::kSessionExpired)));
          l.waiters.erase(l.waiters.begin() + i);
          break;
        }
      }
      for (size_t i = 0; i < l.holders.size(); ++i) {
        if (l.holders[i].session == id) {
          out.released.push_back(released(name, l.holders[i], expired ? "expired" : "closed"));
          l.holders.erase(l.holders.begin() + i);
          if (expired && l.delay_ms > 0) delay(name, l, index, now, out);
          break;
        }
      }
    }
    sessions_.erase(id);
    std::vector<std::string> names;
    for (auto& [name, l] : locks_) {
      grant_queue(name, l, out);
      names.push_back(name);
    }
    for (const auto& name : names) drop_if_unused(name);
  }

  // The exactly-once check; returns true when the request must be applied.
  bool key_ok(const lockpb::RequestKey& key, const std::string& request, ModelOutcome& out,
              bool* duplicate = nullptr) {
    auto it = sessions_.find(key.session_id());
    if (it == sessions_.end()) {
      out.code = Code::kSessionExpired;
      return false;
    }
    MSession& s = it->second;
    if (s.principal != principal_) {
      out.code = Code::kPermissionDenied;  // another's session: not even a retry's answer
    } else if (key.sequence() == 0) {
      out.code = Code::kInvalidArgument;
    } else if (key.sequence() < s.last_seq) {
      out.code = Code::kStaleSequence;
    } else if (key.sequence() == s.last_seq) {
      if (s.last_request != request) {
        out.code = Code::kInvalidArgument;  // a different request, not a retry
      } else {
        out.code = s.last_code;
        if (duplicate != nullptr) *duplicate = true;
      }
    } else {
      return true;
    }
    return false;
  }

  void remember(uint64_t session, uint64_t seq, const std::string& request,
                const ModelOutcome& out) {
    MSession& s = sessions_.at(session);
    s.last_seq = seq;
    s.last_request = request;
    s.last_code = out.code;
    s.last_queued = out.queued;
    s.last_token = out.has_grant ? out.grant_token : 0;
  }

  void close(const lockpb::CloseSession& c, ModelOutcome& out) {
    if (!key_ok(c.key(), "close", out)) return;
    end(c.key().session_id(), false, 0, 0, out);
  }

  void acquire(uint64_t index, const lockpb::Acquire& c, ModelOutcome& out) {
    const uint64_t sid = c.key().session_id();
    bool duplicate = false;
    const std::string request = "acquire " + std::to_string(c.mode()) + " " + c.lock();
    if (!key_ok(c.key(), request, out, &duplicate)) {
      if (duplicate && out.code == Code::kOk) {
        const MSession& s = sessions_.at(sid);
        if (!s.last_queued) {
          out.has_grant = true;
          out.grant_token = s.last_token;
          out.grant_mode = c.mode();
          return;
        }
        auto it = locks_.find(c.lock());
        if (it != locks_.end()) {
          for (const auto& h : it->second.holders) {
            if (h.session == sid && h.mode == c.mode()) {
              out.has_grant = true;
              out.grant_token = h.token;
              out.grant_mode = h.mode;
              return;
            }
          }
          for (const auto& w : it->second.waiters) {
            if (w.session == sid) {
              out.queued = true;
              out.wait_id = w.wait_id;
              out.wait_ms = w.wait_ms;
              return;
            }
          }
        }
        out.code = Code::kTimeout;
      }
      return;
    }
    auto finish = [&](Code code) {
      out.code = code;
      remember(sid, c.key().sequence(), request, out);
    };
    if (!name_ok(c.lock())) return finish(Code::kInvalidArgument);
    if (c.mode() != lockpb::EXCLUSIVE && c.mode() != lockpb::SHARED) {
      return finish(Code::kInvalidArgument);
    }
    if (c.value().size() > 1024 || c.lock_delay_ms() > 60'000) {
      return finish(Code::kInvalidArgument);
    }
    auto it = locks_.find(c.lock());
    if (it != locks_.end()) {
      for (const auto& h : it->second.holders) {
        if (h.session != sid) continue;
        if (h.mode != c.mode()) return finish(Code::kFailedPrecondition);
        out.has_grant = true;
        out.grant_token = h.token;
        out.grant_mode = h.mode;
        return finish(Code::kOk);
      }
      for (const auto& w : it->second.waiters) {
        if (w.session == sid) return finish(Code::kFailedPrecondition);
      }
      if (c.max_holders() != 0 && c.max_holders() != it->second.max) {
        return finish(Code::kFailedPrecondition);
      }
    }
    size_t mine = 0;
    for (const auto& [name, l] : locks_) {
      for (const auto& h : l.holders) mine += h.session == sid;
      for (const auto& w : l.waiters) mine += w.session == sid;
    }
    if (mine >= limits_.max_locks_per_session) return finish(Code::kResourceExhausted);
    const Usage own = usage(&principal_);
    const Usage all = usage(nullptr);
    if (own.holders_and_waiters >= limits_.max_holders_and_waiters_per_principal ||
        own.value_bytes + c.value().size() > limits_.max_value_bytes_per_principal ||
        all.holders_and_waiters >= limits_.max_holders_and_waiters ||
        all.value_bytes + c.value().size() > limits_.max_value_bytes) {
      return finish(Code::kResourceExhausted);
    }
    if (it == locks_.end()) {
      if (locks_.size() >= limits_.max_locks) return finish(Code::kResourceExhausted);
      MLock fresh;
      fresh.max = c.max_holders();
      fresh.delay_ms = c.lock_delay_ms();
      it = locks_.emplace(c.lock(), fresh).first;
    }
    MLock& l = it->second;
    if (l.waiters.empty() && grantable(l, c.mode())) {
      uint64_t token = next_token_++;
      l.holders.push_back({sid, token, c.mode(), c.value()});
      out.has_grant = true;
      out.grant_token = token;
      out.grant_mode = c.mode();
      return finish(Code::kOk);
    }
    if (c.wait_ms() == 0) return finish(Code::kTimeout);
    if (l.waiters.size() >= limits_.max_waiters_per_lock) {
      return finish(Code::kResourceExhausted);
    }
    // An earlier leader's Acquire (now_ms set) leaves the duration unknown.
    uint64_t wait = c.now_ms() != 0 ? 0 : c.wait_ms();
    l.waiters.push_back({sid, index, wait, c.mode(), c.value()});
    out.queued = true;
    out.wait_id = index;
    out.wait_ms = wait;
    finish(Code::kOk);
  }

  void release(const lockpb::Release& c, ModelOutcome& out) {
    const std::string request = "release " + std::to_string(c.token()) + " " + c.lock();
    if (!key_ok(c.key(), request, out)) return;
    const uint64_t sid = c.key().session_id();
    out.code = Code::kLockNotHeld;
    auto it = locks_.find(c.lock());
    if (it == locks_.end() && !name_ok(c.lock())) out.code = Code::kInvalidArgument;
    if (it != locks_.end()) {
      auto& holders = it->second.holders;
      for (size_t i = 0; i < holders.size(); ++i) {
        if (holders[i].session == sid && holders[i].token == c.token()) {
          out.released.push_back(released(c.lock(), holders[i], "released"));
          holders.erase(holders.begin() + i);
          out.code = Code::kOk;
          grant_queue(it->first, it->second, out);
          drop_if_unused(c.lock());
          break;
        }
      }
    }
    remember(sid, c.key().sequence(), request, out);
  }

  void cancel(const lockpb::CancelWait& c, ModelOutcome& out) {
    const uint64_t sid = c.key().session_id();
    const bool leader = c.key().sequence() == 0 && principal_.empty();
    const std::string request = "cancel " + std::to_string(c.wait_id()) + " " + c.lock();
    if (leader) {
      if (!sessions_.count(sid)) {
        out.code = Code::kSessionExpired;
        return;
      }
    } else if (!key_ok(c.key(), request, out)) {
      return;
    }
    out.code = Code::kNotFound;
    auto it = locks_.find(c.lock());
    if (it != locks_.end()) {
      auto& waiters = it->second.waiters;
      for (size_t i = 0; i < waiters.size(); ++i) {
        if (waiters[i].session == sid && (c.wait_id() == 0 || c.wait_id() == waiters[i].wait_id)) {
          out.ended_waits.push_back(
              std::to_string(sid) + "/" + it->first + "/" + std::to_string(waiters[i].wait_id) +
              "/" + std::string(code_name(leader ? Code::kTimeout : Code::kCancelled)));
          waiters.erase(waiters.begin() + i);
          out.code = Code::kOk;
          grant_queue(it->first, it->second, out);
          drop_if_unused(c.lock());
          break;
        }
      }
    }
    if (!leader) remember(sid, c.key().sequence(), request, out);
  }

  void end_delay(const lockpb::EndLockDelay& c, ModelOutcome& out) {
    auto it = locks_.find(c.lock());
    if (it == locks_.end()) return;  // a stale timer: OK, nothing to do
    MLock& l = it->second;
    if (!l.in_delay || c.delay_id() != l.delay_id) return;
    l.in_delay = false;
    l.delay_id = 0;
    grant_queue(it->first, l, out);
    drop_if_unused(c.lock());
  }

  void force(uint64_t index, const lockpb::ForceRelease& c, ModelOutcome& out) {
    auto it = locks_.find(c.lock());
    if (it == locks_.end()) {
      out.code = Code::kNotFound;
      return;
    }
    MLock& l = it->second;
    if (!l.holders.empty()) {
      for (const MHolder& h : l.holders) out.released.push_back(released(it->first, h, "forced"));
      l.holders.clear();
      if (l.delay_ms > 0) delay(it->first, l, index, c.now_ms(), out);
    }
    grant_queue(it->first, l, out);
    drop_if_unused(c.lock());
  }

  Limits limits_;
  std::string principal_;  // of the command being applied
  uint64_t next_token_ = 1;
  std::map<uint64_t, MSession> sessions_;
  std::map<std::string, MLock> locks_;
};

// ---------------------------------------------------------------------------
// Reading the state machine back in the model's format.

ModelOutcome outcome_of(const ApplyResult& r) {
  ModelOutcome out;
  out.code = r.status.code();
  out.session_id = r.session_id;
  out.ttl_ms = r.ttl_ms;
  if (r.granted) {
    out.has_grant = true;
    out.grant_token = r.granted->token();
    out.grant_mode = r.granted->mode();
  }
  out.queued = r.queued;
  out.wait_id = r.wait_id;
  out.wait_ms = r.wait_ms;
  for (const Grant& g : r.grants) {
    out.grants.push_back(std::to_string(g.session_id) + "/" + std::to_string(g.wait_id) + "/" +
                         g.sequencer.lock() + "/" + std::to_string(g.sequencer.token()) + "/" +
                         std::to_string(g.sequencer.mode()));
  }
  for (const EndedWait& e : r.ended_waits) {
    out.ended_waits.push_back(std::to_string(e.session_id) + "/" + e.lock + "/" +
                              std::to_string(e.wait_id) + "/" + std::string(code_name(e.reason)));
  }
  for (const LockDelay& d : r.lock_delays_started) {
    out.delays.push_back(d.lock + "/" + std::to_string(d.delay_ms) + "/" +
                         std::to_string(d.delay_id));
  }
  for (const Released& x : r.released) {
    const char* reason = x.reason == ReleaseReason::kReleased        ? "released"
                         : x.reason == ReleaseReason::kSessionClosed  ? "closed"
                         : x.reason == ReleaseReason::kSessionExpired ? "expired"
                                                                      : "forced";
    out.released.push_back(x.lock + "/" + std::to_string(x.session_id) + "/" +
                           std::to_string(x.token) + "/" + reason);
  }
  return out;
}

std::string describe(const ModelOutcome& o) {
  std::ostringstream s;
  s << "code " << code_name(o.code) << " session " << o.session_id << " ttl " << o.ttl_ms
    << " grant " << o.has_grant << ":" << o.grant_token << ":" << o.grant_mode << " queued "
    << o.queued << ":" << o.wait_id << ":" << o.wait_ms << " grants [";
  for (const auto& g : o.grants) s << g << " ";
  s << "] ended [";
  for (const auto& e : o.ended_waits) s << e << " ";
  s << "] delays [";
  for (const auto& d : o.delays) s << d << " ";
  s << "] released [";
  for (const auto& x : o.released) s << x << " ";
  s << "]";
  return s.str();
}

// ---------------------------------------------------------------------------
// The lock invariants (tests/statemachine/sm_invariants.h), required.

using testing::InvariantChecker;

void require_invariants(InvariantChecker& invariants, const LockStateMachine& sm,
                        const ApplyResult& r) {
  invariants.check(sm, r);
  INFO("violation: " << invariants.violation().value_or(""));
  REQUIRE(invariants.ok());
}

std::string dump(InvariantChecker& invariants, const LockStateMachine& sm) {
  std::string text = invariants.dump(sm);
  INFO("violation: " << invariants.violation().value_or(""));
  REQUIRE(invariants.ok());
  return text;
}

// ---------------------------------------------------------------------------
// Random commands.

class Generator {
 public:
  explicit Generator(uint64_t seed) : rng_(seed) {}

  uint64_t below(uint64_t n) { return rng_() % n; }
  bool chance(int percent) { return below(100) < static_cast<uint64_t>(percent); }

  std::string lock_name() {
    static const char* const kNames[] = {"a", "b", "jobs/c", "jobs/d"};
    if (chance(4)) {
      static const char* const kBad[] = {"", "\xC0\xAF", "\xED\xA0\x80", "x\xE2\x82"};
      std::string bad = kBad[below(4)];
      if (chance(20)) bad = std::string(513, 'n');
      if (chance(20)) bad = std::string("a\0b", 3);
      return bad;
    }
    return kNames[below(4)];
  }

  // Mostly a live session; sometimes an ended or never-opened one.
  uint64_t session(const std::vector<uint64_t>& known, const LockStateMachine& sm) {
    std::vector<SessionTtl> live = sm.sessions();
    if (!live.empty() && chance(90)) return live[below(live.size())].session_id;
    if (known.empty() || chance(30)) return below(50);
    return known[below(known.size())];
  }

  // A principal a command may carry: mostly a few names, now and then one
  // the state machine refuses (too long, not UTF-8).
  std::string principal() {
    static const char* const kNames[] = {"", "a", "b"};
    if (chance(2)) return chance(50) ? std::string(513, 'p') : std::string("\xFF");
    return kNames[below(3)];
  }
  // The principal of `session`, as the server would set it for its owner:
  // usually that one, sometimes another's.
  std::string principal_for(uint64_t session, const LockStateMachine& sm) {
    if (chance(15)) return principal();
    SessionPage page = sm.list_sessions(session == 0 ? 0 : session - 1, 1, SIZE_MAX);
    if (page.sessions.empty() || page.sessions[0].session_id != session) return principal();
    return page.sessions[0].principal;
  }

  lockpb::Command next(const std::vector<uint64_t>& known, std::map<uint64_t, uint64_t>& seq,
                       const LockStateMachine& sm) {
    // An exact retry of a client request sent earlier (usually the
    // session's last, so answered with the recorded result).
    if (!sent_.empty() && chance(6)) {
      auto it = sent_.begin();
      std::advance(it, static_cast<ptrdiff_t>(below(sent_.size())));
      return it->second;
    }
    lockpb::Command c = fresh(known, seq, sm);
    const lockpb::RequestKey* key = c.has_acquire()         ? &c.acquire().key()
                                    : c.has_release()       ? &c.release().key()
                                    : c.has_cancel_wait()   ? &c.cancel_wait().key()
                                    : c.has_close_session() ? &c.close_session().key()
                                                            : nullptr;
    if (key != nullptr && (key->sequence() != 0 || !c.has_cancel_wait())) {
      c.set_principal(principal_for(key->session_id(), sm));
    } else if (c.has_open_session() || c.has_force_release() || chance(3)) {
      // Leader commands carry none, except now and then to be refused.
      c.set_principal(principal());
    }
    if (key != nullptr && key->sequence() != 0) sent_[key->session_id()] = c;
    return c;
  }

  lockpb::Command fresh(const std::vector<uint64_t>& known, std::map<uint64_t, uint64_t>& seq,
                        const LockStateMachine& sm) {
    uint64_t kind = below(100);
    if (sm.session_count() < 3 && chance(50)) kind = 0;  // keep a few sessions alive
    auto key_for = [&](lockpb::RequestKey* key, uint64_t sid) {
      key->set_session_id(sid);
      uint64_t& last = seq[sid];
      uint64_t r = below(100);
      if (r < 85) {
        key->set_sequence(++last);
      } else if (r < 93) {
        key->set_sequence(last);  // a different request reusing the number
      } else if (r < 97) {
        key->set_sequence(last > 0 ? below(last) : 0);
      } else {
        key->set_sequence(0);
      }
    };
    lockpb::Command c;
    if (kind < 8) {
      uint64_t ttls[] = {0, 500, 499, 600'000, 600'001, 1234};
      c.mutable_open_session()->set_ttl_ms(ttls[below(6)]);
      c.mutable_open_session()->set_client_name(chance(5) ? "\xFF"
                                                          : "c" + std::to_string(below(3)));
    } else if (kind < 55) {
      lockpb::Acquire* a = c.mutable_acquire();
      key_for(a->mutable_key(), session(known, sm));
      a->set_lock(lock_name());
      a->set_mode(chance(3) ? static_cast<lockpb::LockMode>(5)
                            : static_cast<lockpb::LockMode>(below(2)));
      a->set_wait_ms(chance(30) ? 0 : (chance(3) ? UINT64_MAX : 100 + below(1000)));
      a->set_now_ms(earlier_leader_now_ms());
      if (chance(30))
        a->set_value(chance(3) ? std::string(1025, 'v') : "v" + std::to_string(below(9)));
      if (chance(30)) a->set_max_holders(static_cast<uint32_t>(below(4)));
      if (chance(30)) a->set_lock_delay_ms(chance(5) ? 60'001 : below(3) * 1000);
    } else if (kind < 75) {
      lockpb::Release* r = c.mutable_release();
      uint64_t sid = session(known, sm);
      key_for(r->mutable_key(), sid);
      r->set_lock(lock_name());
      // Usually the right token.
      uint64_t token = below(sm.next_token() + 2);
      auto info = sm.describe(r->lock());
      if (info.ok() && chance(80)) {
        for (const auto& h : info.value().holders) {
          if (h.session_id == sid) token = h.token;
        }
      }
      r->set_token(token);
    } else if (kind < 83) {
      lockpb::CancelWait* w = c.mutable_cancel_wait();
      uint64_t sid = session(known, sm);
      w->set_lock(lock_name());
      if (chance(50)) {
        w->mutable_key()->set_session_id(sid);  // leader proposed
        auto waits = sm.pending_waits();
        if (!waits.empty() && chance(70)) {
          const PendingWait& p = waits[below(waits.size())];
          w->mutable_key()->set_session_id(p.session_id);
          w->set_lock(p.lock);
          w->set_wait_id(p.wait_id);
        } else {
          w->set_wait_id(below(30));
        }
      } else {
        key_for(w->mutable_key(), sid);
      }
    } else if (kind < 86) {
      key_for(c.mutable_close_session()->mutable_key(), session(known, sm));
    } else if (kind < 90) {
      c.mutable_expire_session()->set_session_id(session(known, sm));
      c.mutable_expire_session()->set_now_ms(earlier_leader_now_ms());
    } else if (kind < 96) {
      c.mutable_end_lock_delay()->set_lock(lock_name());
      auto delays = sm.lock_delays();
      if (!delays.empty() && chance(70)) {
        const LockDelay& d = delays[below(delays.size())];
        c.mutable_end_lock_delay()->set_lock(d.lock);
        c.mutable_end_lock_delay()->set_delay_id(chance(80) ? d.delay_id : d.delay_id + 1);
      } else if (chance(50)) {
        c.mutable_end_lock_delay()->set_delay_id(chance(50) ? 0 : below(sm.applied_index() + 2));
      }
    } else if (kind < 99) {
      c.mutable_force_release()->set_lock(lock_name());
      c.mutable_force_release()->set_now_ms(earlier_leader_now_ms());
    }
    // else: an empty command.
    return c;
  }

  // now_ms of Acquire/ExpireSession/ForceRelease: 0 from a current leader;
  // now and then a time, as an earlier leader wrote it.
  uint64_t earlier_leader_now_ms() {
    if (chance(85)) return 0;
    return chance(10) ? UINT64_MAX - 5 : 1 + below(10'000);
  }

  std::string garbage() {
    std::string bytes(below(12), '\0');
    for (char& b : bytes) b = static_cast<char>(below(256));
    return bytes;
  }

 private:
  std::mt19937_64 rng_;
  std::map<uint64_t, lockpb::Command> sent_;  // by session: its last client request
};

void run_sequence(uint64_t seed, uint64_t sequence_number, int length) {
  Limits limits;
  limits.max_sessions = 5;
  limits.max_locks = 3;
  limits.max_waiters_per_lock = 3;
  limits.max_locks_per_session = 3;
  limits.max_sessions_per_principal = 3;
  limits.max_holders_and_waiters_per_principal = 4;
  limits.max_value_bytes_per_principal = 5;  // values are 2 bytes
  limits.max_holders_and_waiters = 7;
  limits.max_value_bytes = 9;
  Generator gen(seed * 1'000'003 + sequence_number);
  auto sm = std::make_unique<LockStateMachine>(limits);
  // After the first snapshot swap, the machine that was swapped out keeps
  // running beside the restored one: both must give identical results.
  std::unique_ptr<LockStateMachine> twin;
  Model model(limits);
  InvariantChecker invariants;
  std::vector<uint64_t> known;
  std::map<uint64_t, uint64_t> seq;
  // Images taken along the way, with the bytes they encoded to then: the
  // state machine goes on (and is swapped out and destroyed) while they
  // live, and must never change what they share with it.
  std::vector<std::pair<LockStateMachine::Image, std::string>> images;
  // An image taken in slices while commands go on, and the bytes of the
  // state it began at.
  std::optional<std::string> building;
  uint64_t index = 0;
  for (int step = 0; step < length; ++step) {
    INFO("replay: statemachine_property_test --rng-seed "
         << seed << "  (sequence " << sequence_number << ", step " << step << ")");
    index += 1 + (gen.chance(10) ? gen.below(3) : 0);  // gaps: entries not for the SM
    lockpb::Command command;
    ApplyResult result;
    if (gen.chance(2)) {
      // Raw entry bytes; what does not parse is an empty command to the model.
      std::string bytes = gen.garbage();
      result = sm->apply(index, std::string_view(bytes));
      if (!command.ParseFromString(bytes)) command.Clear();
      if (twin) {
        REQUIRE(describe(outcome_of(twin->apply(index, std::string_view(bytes)))) ==
                describe(outcome_of(result)));
      }
    } else {
      command = gen.next(known, seq, *sm);
      result = sm->apply(index, command);
      if (twin) {
        REQUIRE(describe(outcome_of(twin->apply(index, command))) == describe(outcome_of(result)));
      }
    }
    ModelOutcome expected = model.apply(index, command);
    if (result.status.ok() && result.session_id != 0) known.push_back(result.session_id);

    INFO("command: " << command.ShortDebugString());
    REQUIRE(describe(outcome_of(result)) == describe(expected));
    require_invariants(invariants, *sm, result);
    REQUIRE(dump(invariants, *sm) == model.dump(index));
    for (const auto& [image, bytes] : images) REQUIRE(image.encode() == bytes);
    if (building) {
      if (gen.chance(10)) {
        // Restored in place mid-walk: the walk completes on the old state.
        std::string bytes = sm->snapshot();
        REQUIRE(sm->restore(bytes).ok());
        REQUIRE(sm->snapshot() == bytes);
      }
      if (sm->continue_image(gen.below(3))) {
        LockStateMachine::Image image = sm->take_image();
        REQUIRE(!sm->taking_image());
        REQUIRE(image.encode() == *building);
        images.emplace_back(std::move(image), std::move(*building));
        if (images.size() > 3) images.erase(images.begin());
        building.reset();
      }
    } else if (gen.chance(20)) {
      building = sm->snapshot();
      sm->begin_image();
    }
    if (gen.chance(15)) {
      LockStateMachine::Image image = sm->image();
      std::string bytes = image.encode();
      REQUIRE(image.applied_index() == sm->applied_index());
      REQUIRE(image.lock_count() == sm->lock_count());
      images.emplace_back(std::move(image), std::move(bytes));
      if (images.size() > 3) images.erase(images.begin());
    }

    if (gen.chance(5)) {
      if (building) {
        while (!sm->continue_image(1)) {
        }
        REQUIRE(sm->take_image().encode() == *building);
        building.reset();
      }
      std::string bytes = sm->snapshot();
      auto restored = std::make_unique<LockStateMachine>(limits);
      REQUIRE(restored->restore(bytes).ok());
      REQUIRE(restored->snapshot() == bytes);
      REQUIRE(dump(invariants, *restored) == dump(invariants, *sm));
      if (!twin) twin = std::move(sm);
      sm = std::move(restored);
    }
  }
  if (twin) REQUIRE(twin->snapshot() == sm->snapshot());
}

}  // namespace

TEST_CASE("random command sequences keep the lock invariants and match the reference model",
          "[sm][property]") {
  const uint64_t seed = Catch::rngSeed();
  constexpr uint64_t kSequences = 10'000;
  constexpr int kLength = 40;
  for (uint64_t i = 0; i < kSequences; ++i) run_sequence(seed, i, kLength);
}

// The sweep: `statemachine_property_test "[sweep]" --rng-seed <n>`.
TEST_CASE("a sweep of 200,000 longer random sequences", "[.][sweep]") {
  const uint64_t seed = Catch::rngSeed();
  for (uint64_t i = 0; i < 200'000; ++i) run_sequence(seed, i, 80);
}

}  // namespace fencelock::sm
