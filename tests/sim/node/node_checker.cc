#include "tests/sim/node/node_checker.h"

#include <fmt/format.h>

#include <iterator>

namespace fencelock::sim {

namespace {

std::string ms(double us) { return fmt::format("{:.3f} ms", us / 1000.0); }

bool conflicting(lockpb::LockMode a, lockpb::LockMode b) {
  return a == lockpb::EXCLUSIVE || b == lockpb::EXCLUSIVE;
}

}  // namespace

void NodeChecker::fail(std::string what) {
  if (!violation_) violation_ = std::move(what);
}

bool NodeChecker::active(const Holding& holding, double at) const {
  if (holding.from > at) return false;
  if (holding.until && *holding.until <= at) return false;
  if (holding.revoked && *holding.revoked <= at) return false;
  auto session = sessions_.find(holding.session);
  if (session == sessions_.end()) return false;
  if (session->second.lost && *session->second.lost <= at) return false;
  return at < session->second.safe_until;
}

void NodeChecker::session_safe_until(uint64_t session, double real_until) {
  SessionView& view = sessions_[session];
  view.safe_until = std::max(view.safe_until, real_until);
  if (view.expired && view.safe_until > *view.expired && (!view.lost || *view.lost > *view.expired)) {
    fail(fmt::format("session {} expired at {} but its client was told it is safe until {}",
                     session, ms(*view.expired), ms(view.safe_until)));
  }
}

void NodeChecker::session_lost(uint64_t session, double at) {
  SessionView& view = sessions_[session];
  if (!view.lost) view.lost = at;
}

void NodeChecker::granted(uint64_t client, uint64_t session, const lockpb::Sequencer& sequencer,
                          double at) {
  ++client_grants_;
  Holding holding;
  holding.client = client;
  holding.session = session;
  holding.sequencer = sequencer;
  holding.from = at;
  if (auto forced = forced_.find(sequencer.lock());
      forced != forced_.end() && sequencer.token() <= forced->second.second) {
    holding.revoked = forced->second.first;  // force-released before it arrived
  }
  auto [begin, end] = holdings_.equal_range(sequencer.lock());
  if (auto semaphore = semaphores_.find(sequencer.lock());
      semaphore != semaphores_.end() && !holding.revoked) {
    uint32_t holders = 1;
    for (auto it = begin; it != end; ++it) {
      if (it->second.session != session && active(it->second, at)) ++holders;
    }
    if (holders > semaphore->second) {
      fail(fmt::format("semaphore: at {} client {} (session {}) got {} with token {}, its holder "
                       "number {} of at most {}",
                       ms(at), client, session, sequencer.lock(), sequencer.token(), holders,
                       semaphore->second));
      return;
    }
  }
  for (auto it = begin; it != end && !holding.revoked; ++it) {
    const Holding& other = it->second;
    if (other.session == session || !active(other, at)) continue;
    if (!conflicting(other.sequencer.mode(), sequencer.mode())) continue;
    fail(fmt::format(
        "mutual exclusion: at {} client {} (session {}) got {} of {} with token {} while client {} "
        "(session {}, safe until {}) held it {} with token {}",
        ms(at), client, session, lockpb::LockMode_Name(sequencer.mode()), sequencer.lock(),
        sequencer.token(), other.client, other.session, ms(sessions_[other.session].safe_until),
        lockpb::LockMode_Name(other.sequencer.mode()), other.sequencer.token()));
    return;
  }
  holdings_.emplace(sequencer.lock(), std::move(holding));
}

void NodeChecker::let_go(uint64_t session, uint64_t token, double at) {
  for (auto& [lock, holding] : holdings_) {
    if (holding.session == session && holding.sequencer.token() == token && !holding.until) {
      holding.until = at;
    }
  }
}

void NodeChecker::release_acknowledged(const std::string& lock, uint64_t token, double at) {
  released_[lock].emplace_back(at, token);
}

void NodeChecker::described(uint64_t session, const std::string& lock,
                            const std::set<uint64_t>& tokens, double sent, double at) {
  for (const auto& [acknowledged, token] : released_[lock]) {
    if (acknowledged < sent && tokens.contains(token)) {
      fail(fmt::format("lost release: token {} of {} was released (acknowledged at {}) but a read "
                       "sent at {} lists it",
                       token, lock, ms(acknowledged), ms(sent)));
      return;
    }
  }
  auto [begin, end] = holdings_.equal_range(lock);
  for (auto it = begin; it != end; ++it) {
    const Holding& holding = it->second;
    if (holding.session != session || holding.from > sent || holding.revoked) continue;
    if (!active(holding, sent) || !active(holding, at)) continue;
    if (!tokens.contains(holding.sequencer.token())) {
      fail(fmt::format("lost grant: session {} holds {} with token {} (granted at {}, safe until "
                       "{}) but a read sent at {} does not list it",
                       session, lock, holding.sequencer.token(), ms(holding.from),
                       ms(sessions_[session].safe_until), ms(sent)));
      return;
    }
  }
}

std::vector<uint64_t> NodeChecker::tokens_of(const sm::ApplyResult& result) const {
  std::vector<uint64_t> tokens;
  if (result.granted && !result.duplicate) tokens.push_back(result.granted->token());
  for (const auto& grant : result.grants) tokens.push_back(grant.sequencer.token());
  return tokens;
}

void NodeChecker::check_grant_applied(uint64_t session, const std::string& lock, uint64_t token,
                                      double at) {
  auto [owner, inserted] = token_owners_.emplace(token, std::make_pair(session, lock));
  if (!inserted) {
    if (owner->second != std::make_pair(session, lock)) {
      fail(fmt::format("tokens: {} granted {} to session {} with token {}, which was {}'s for "
                       "session {}",
                       ms(at), lock, session, token, owner->second.second, owner->second.first));
    }
    return;  // the existing grant, answered again
  }
  ++grants_;
  if (token <= max_token_) {
    fail(fmt::format("tokens: {} granted {} with token {} after token {} was granted", ms(at), lock,
                     token, max_token_));
    return;
  }
  max_token_ = token;
  max_token_of_lock_[lock] = token;
  auto delay = delays_.find(lock);
  if (delay != delays_.end()) {
    double earliest = delay->second.from + static_cast<double>(delay->second.delay_ms) * 1000.0 /
                                               max_node_rate_;
    if (at < earliest) {
      fail(fmt::format("lock-delay: {} granted (token {}) at {}, {} after its lock-delay of {} ms "
                       "began at {}",
                       lock, token, ms(at), ms(at - delay->second.from), delay->second.delay_ms,
                       ms(delay->second.from)));
      return;
    }
    delays_.erase(delay);
  }
}

void NodeChecker::applied(uint64_t node, uint64_t index, const lockpb::Command& command,
                          const sm::ApplyResult& result, double at) {
  std::string bytes = command.SerializeAsString();
  std::vector<uint64_t> tokens = tokens_of(result);
  auto seen = applied_.find(index);
  if (seen != applied_.end()) {
    if (seen->second.command != bytes || seen->second.tokens != tokens) {
      fail(fmt::format("state machine safety: node {} applied a different command or grants at "
                       "index {}: {}",
                       node, index, command.ShortDebugString()));
    }
    return;
  }
  applied_.emplace(index, AppliedIndex{bytes, tokens, ""});

  // Ownership: a client command naming a session of another principal
  // changes nothing. The leader's CancelWait (sequence 0, no principal)
  // names any session.
  const lockpb::RequestKey* key = nullptr;
  if (command.has_close_session()) key = &command.close_session().key();
  if (command.has_acquire()) key = &command.acquire().key();
  if (command.has_release()) key = &command.release().key();
  if (command.has_cancel_wait() &&
      (command.cancel_wait().key().sequence() != 0 || !command.principal().empty())) {
    key = &command.cancel_wait().key();
  }
  if (result.status.code() == sm::Code::kPermissionDenied) ++denied_;
  if (result.status.code() == sm::Code::kResourceExhausted) ++exhausted_;
  if (key != nullptr) {
    auto owner = owners_.find(key->session_id());
    const bool foreign = owner != owners_.end() && owner->second != command.principal();
    const bool denied = result.status.code() == sm::Code::kPermissionDenied;
    // The checker sees the first apply of each index, in index order, so
    // it knows whether the session is still open there.
    const sm::Code expected =
        live_.contains(key->session_id()) ? sm::Code::kPermissionDenied : sm::Code::kSessionExpired;
    if (foreign && (result.status.code() != expected || result.granted || result.duplicate ||
                    !result.grants.empty() || !result.ended_waits.empty() ||
                    !result.lock_delays_started.empty())) {
      fail(fmt::format("ownership: at {} index {} applied a command of principal \"{}\" on "
                       "session {} of principal \"{}\" as {}: {}",
                       ms(at), index, command.principal(), key->session_id(), owner->second,
                       result.status.to_string(), command.ShortDebugString()));
      return;
    }
    if (!foreign && owner != owners_.end() && denied) {
      fail(fmt::format("ownership: at {} index {} refused principal \"{}\" its own session {}",
                       ms(at), index, command.principal(), key->session_id()));
      return;
    }
  }
  if (command.has_open_session() && result.status.ok()) {
    owners_[result.session_id] = command.principal();
    live_.insert(result.session_id);
  }
  if (command.has_close_session() && result.status.ok()) {
    live_.erase(command.close_session().key().session_id());
  }
  if (command.has_expire_session() && result.status.ok()) {
    live_.erase(command.expire_session().session_id());
  }

  // Exactly once: one grant per (session, sequence) and per wait.
  if (command.has_acquire() && result.granted) {
    auto key = std::make_pair(command.acquire().key().session_id(),
                              command.acquire().key().sequence());
    auto [it, inserted] = acquire_tokens_.emplace(key, result.granted->token());
    if (!inserted && it->second != result.granted->token()) {
      fail(fmt::format("exactly once: acquire (session {}, sequence {}) answered token {} after "
                       "token {}",
                       key.first, key.second, result.granted->token(), it->second));
    }
  }
  for (const auto& grant : result.grants) {
    if (!granted_waits_.insert(grant.wait_id).second) {
      fail(fmt::format("exactly once: wait {} granted twice", grant.wait_id));
    }
  }
  if (result.granted && !result.duplicate) {
    check_grant_applied(result.granted->session_id(), result.granted->lock(),
                        result.granted->token(), at);
  }
  for (const auto& grant : result.grants) {
    check_grant_applied(grant.sequencer.session_id(), grant.sequencer.lock(),
                        grant.sequencer.token(), at);
  }

  if (command.has_force_release() && result.status.ok()) {
    // The holders it ended are not told: their grants end here, also those
    // whose answers are still on their way.
    const std::string& lock = command.force_release().lock();
    forced_[lock] = {at, max_token_of_lock_[lock]};
    auto [begin, end] = holdings_.equal_range(lock);
    for (auto it = begin; it != end; ++it) {
      if (!it->second.revoked) it->second.revoked = at;
    }
  }
  if (command.has_expire_session() && result.status.ok()) {
    ++expiries_;
    uint64_t session = command.expire_session().session_id();
    SessionView& view = sessions_[session];
    view.expired = at;
    if ((!view.lost || *view.lost > at) && view.safe_until > at) {
      fail(fmt::format("session expiry: session {} expired at {} while its client was safe until {}",
                       session, ms(at), ms(view.safe_until)));
    }
  }
  for (const auto& delay : result.lock_delays_started) {
    delays_[delay.lock] = Delay{at, delay.delay_ms};
  }
}

// --- Principals ----------------------------------------------------------------------

std::vector<uint64_t> NodeChecker::live_sessions_not_of(const std::string& principal) const {
  std::vector<uint64_t> out;
  for (uint64_t session : live_) {
    if (owners_.at(session) != principal) out.push_back(session);
  }
  return out;
}

uint64_t NodeChecker::token_of(uint64_t session, const std::string& lock) const {
  for (auto it = token_owners_.rbegin(); it != token_owners_.rend(); ++it) {
    if (it->second.first == session && it->second.second == lock) return it->first;
  }
  return 0;
}

void NodeChecker::intrusion_answered(uint64_t client, const std::string& principal,
                                     const char* kind, uint64_t session, lockpb::ErrorCode code,
                                     double at) {
  // Refused, or the session was gone, or no answer in time. Anything else
  // means the request went past the ownership check.
  if (code == lockpb::PERMISSION_DENIED || code == lockpb::SESSION_EXPIRED ||
      code == lockpb::TIMEOUT || code == lockpb::UNAVAILABLE || code == lockpb::NOT_LEADER) {
    return;
  }
  auto owner = owners_.find(session);
  fail(fmt::format("ownership: at {} client {} (principal \"{}\") sent a {} naming session {} of "
                   "principal \"{}\" and was answered {}",
                   ms(at), client, principal, kind, session,
                   owner == owners_.end() ? "?" : owner->second, lockpb::ErrorCode_Name(code)));
}

// --- Membership ----------------------------------------------------------------------

namespace {

std::string describe_conf(const raftpb::ConfState& conf) {
  return fmt::format("voters {{{}}} learners {{{}}}", fmt::join(conf.voters(), ","),
                     fmt::join(conf.learners(), ","));
}

}  // namespace

void NodeChecker::conf_change_applied(uint64_t node, uint64_t index,
                                      const raftpb::ConfChange& change,
                                      const raftpb::ConfState& conf, double at) {
  node_confs_[node] = AppliedConf{index, conf};
  if (change.type() == raftpb::ConfChange::REMOVE_NODE && change.node_id() == node) {
    self_removed_.emplace(node, at);
  }
  if (conf.voters_size() == 0) {
    fail(fmt::format("membership: node {} has no voter left after index {}", node, index));
    return;
  }
  std::string bytes = "conf " + change.SerializeAsString();
  std::string conf_bytes = conf.SerializeAsString();
  auto seen = applied_.find(index);
  if (seen != applied_.end()) {
    if (seen->second.command != bytes || seen->second.conf != conf_bytes) {
      fail(fmt::format("membership: node {} applied a different change or configuration at index "
                       "{}: {} -> {}",
                       node, index, change.ShortDebugString(), describe_conf(conf)));
    }
    return;
  }
  applied_.emplace(index, AppliedIndex{bytes, {}, conf_bytes});

  // The first to apply it: the change must apply to the configuration
  // before it, by the checker's own account.
  std::set<uint64_t> voters;
  std::set<uint64_t> learners;
  if (auto before = confs_.lower_bound(index); before != confs_.begin()) {
    const raftpb::ConfState& prev = std::prev(before)->second;
    voters.insert(prev.voters().begin(), prev.voters().end());
    learners.insert(prev.learners().begin(), prev.learners().end());
  }
  uint64_t id = change.node_id();
  bool member = voters.contains(id) || learners.contains(id);
  bool applies = id != 0;
  switch (change.type()) {
    case raftpb::ConfChange::ADD_LEARNER:
      applies = applies && !member;
      learners.insert(id);
      break;
    case raftpb::ConfChange::ADD_VOTER:
      applies = applies && !voters.contains(id);
      learners.erase(id);
      voters.insert(id);
      break;
    case raftpb::ConfChange::REMOVE_NODE:
      applies = applies && member;
      voters.erase(id);
      learners.erase(id);
      break;
    default:
      applies = false;
  }
  if (!applies) {
    fail(fmt::format("membership: a change that does not apply was committed at index {}: {}", index,
                     change.ShortDebugString()));
    return;
  }
  if (voters != std::set<uint64_t>(conf.voters().begin(), conf.voters().end()) ||
      learners != std::set<uint64_t>(conf.learners().begin(), conf.learners().end())) {
    fail(fmt::format("membership: node {} is in {} after index {} ({}), expected voters {{{}}} "
                     "learners {{{}}}",
                     node, describe_conf(conf), index, change.ShortDebugString(),
                     fmt::join(voters, ","), fmt::join(learners, ",")));
    return;
  }
  confs_[index] = conf;
  if (change.type() == raftpb::ConfChange::REMOVE_NODE) removals_.emplace(id, Removal{index, at});
}

void NodeChecker::snapshot_restored(uint64_t node, uint64_t index, const raftpb::ConfState& conf,
                                    double at) {
  node_confs_[node] = AppliedConf{index, conf};
  if (auto removal = removals_.find(node); removal != removals_.end() && removal->second.index <= index) {
    self_removed_.emplace(node, at);
  }
  auto after = confs_.upper_bound(index);
  if (after == confs_.begin()) return;  // nothing known yet (cannot happen: bootstrap comes first)
  const raftpb::ConfState& expected = std::prev(after)->second;
  if (expected.SerializeAsString() != conf.SerializeAsString()) {
    fail(fmt::format("membership: node {} holds a snapshot at index {} naming {}, but the "
                     "configuration at that index is {} (from index {})",
                     node, index, describe_conf(conf), describe_conf(expected),
                     std::prev(after)->first));
  }
}

void NodeChecker::leading(uint64_t node, uint64_t term, bool voter, bool removal_pending,
                          double at) {
  auto [it, inserted] = leaders_.emplace(term, node);
  if (!inserted && it->second != node) {
    fail(fmt::format("election safety: nodes {} and {} both lead term {}", it->second, node, term));
    return;
  }
  if (removal_pending) return;  // it leads only until its removal commits
  if (!voter) {
    fail(fmt::format("membership: node {} leads term {} at {} but is not a voter of its own "
                     "configuration",
                     node, term, ms(at)));
    return;
  }
  if (auto removal = removals_.find(node); removal != removals_.end() && removal->second.at < at) {
    fail(fmt::format("membership: node {} leads term {} at {}, after its removal (index {}) was "
                     "applied at {}",
                     node, term, ms(at), removal->second.index, ms(removal->second.at)));
  }
}

void NodeChecker::answered_ok(uint64_t node, double at) {
  if (auto removed = self_removed_.find(node); removed != self_removed_.end() && removed->second <= at) {
    fail(fmt::format("membership: node {} answered a request OK at {}, after it applied its own "
                     "removal at {}",
                     node, ms(at), ms(removed->second)));
  }
}

const NodeChecker::AppliedConf* NodeChecker::applied_conf(uint64_t node) const {
  auto it = node_confs_.find(node);
  return it == node_confs_.end() ? nullptr : &it->second;
}

}  // namespace fencelock::sim
