#include "tests/sim/node/sim_client.h"

#include <fmt/format.h>

namespace fencelock::sim {

namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

client::ClientOptions client_options(const SimClientOptions& options) {
  client::ClientOptions out;
  out.endpoints = options.endpoints;
  out.request_timeout = options.request_timeout;
  return out;
}

constexpr double kClockDrift = 0.05;  // the library's default bound
constexpr int kKeepalivesPerTtl = 4;

}  // namespace

SimClient::SimClient(ClientNet& net, SimClientOptions options)
    : net_(net),
      options_(std::move(options)),
      rng_(options_.seed),
      policy_(client_options(options_)),
      side_rng_(options_.side_seed) {}

void SimClient::after(microseconds delay, std::function<void()> fn) {
  if (delay.count() < 0) delay = microseconds(0);
  net_.at(net_.now() + options_.clock.real_span(delay), std::move(fn));
}

void SimClient::trace(const std::string& line) {
  net_.trace(fmt::format("client {}: {}", options_.id, line));
}

void SimClient::start() {
  if (options_.probe) trace("probe starts");
  open_session();
  if (options_.intrude) after(milliseconds(20 + side_rng_() % 280), [this] { intrude(); });
}

void SimClient::wind_down() { winding_down_ = true; }

// --- Requests, through the library's CallPolicy -----------------------------------

void SimClient::call(clientpb::Request request, milliseconds extra, Done done) {
  uint64_t id = next_request_id_++;
  request.set_id(id);
  client::PendingCall pending(request, policy_.deadline(steady(), extra));
  SteadyTime deadline = pending.deadline();
  calls_.emplace(id, Call{std::move(pending), std::move(done)});
  after(std::chrono::duration_cast<microseconds>(deadline - steady()), [this, id] {
    auto it = calls_.find(id);
    if (it == calls_.end()) return;
    Call call = std::move(it->second);
    calls_.erase(it);
    call.done(call.call.timeout_response());
  });
  if (connection_ != 0) {
    net_.send(connection_, request);
  } else {
    ensure_connection();
  }
}

void SimClient::send_pending() {
  for (auto& [id, call] : calls_) net_.send(connection_, call.call.request());
}

void SimClient::ensure_connection() {
  if (connection_ != 0 || connecting_) return;
  connecting_ = true;
  net_.connect(options_.id, policy_.next_endpoint());
}

void SimClient::connected(uint64_t connection, const std::string& endpoint) {
  connecting_ = false;
  connection_ = connection;
  endpoint_ = endpoint;
  policy_.connected();
  send_pending();
}

void SimClient::connect_failed() {
  connecting_ = false;
  milliseconds pause = policy_.connect_failed();
  after(pause, [this] {
    if (!calls_.empty()) ensure_connection();
  });
}

void SimClient::connection_lost(uint64_t connection) {
  if (connection != connection_) return;
  connection_ = 0;
  for (auto& [id, call] : calls_) policy_.on_connection_lost(call.call, "connection lost");
  if (!calls_.empty()) ensure_connection();
}

void SimClient::response(uint64_t connection, const clientpb::Response& response) {
  auto it = calls_.find(response.id());
  if (it == calls_.end()) return;  // answered or timed out already
  client::CallDecision decision = policy_.on_response(
      it->second.call, response, connection == connection_ ? endpoint_ : std::string());
  if (decision.step == client::CallStep::kDone) {
    Call call = std::move(it->second);
    calls_.erase(it);
    call.done(response);
    return;
  }
  decide(response.id(), decision);
}

void SimClient::decide(uint64_t id, const client::CallDecision& decision) {
  if (decision.step == client::CallStep::kResend) {
    after(decision.delay, [this, id] {
      auto it = calls_.find(id);
      if (it == calls_.end()) return;
      if (connection_ != 0) {
        net_.send(connection_, it->second.call.request());
      } else {
        ensure_connection();
      }
    });
    return;
  }
  // kReconnect: this node will not do.
  if (connection_ != 0) {
    net_.close(connection_);
    connection_ = 0;
  }
  after(decision.delay, [this] {
    if (!calls_.empty()) ensure_connection();
  });
}

// --- The session, through the library's SessionState -----------------------------

void SimClient::open_session() {
  if (winding_down_ && !options_.probe) return;
  SteadyTime sent = steady();
  const uint64_t ttls[] = {500, 800, 1500, 3000};
  clientpb::Request request;
  request.mutable_open_session()->set_ttl_ms(options_.probe ? 3000 : ttls[pick(4)]);
  request.mutable_open_session()->set_client_name(fmt::format("sim-client-{}", options_.id));
  call(request, milliseconds(0), [this, sent](const clientpb::Response& response) {
    if (response.code() != lockpb::OK) {
      after(milliseconds(20 + pick(80)), [this] { open_session(); });
      return;
    }
    session_.emplace(response.session_opened().session_id(),
                     milliseconds(response.session_opened().ttl_ms()), sent, kClockDrift,
                     kKeepalivesPerTtl);
    ++session_life_;
    trace(fmt::format("session {} opened, ttl {} ms", session_->session_id(), session_->ttl().count()));
    sync_checker();
    keepalive();
    jeopardy_check();
    busy_ = false;
    next();
  });
}

void SimClient::sync_checker() {
  if (!session_) return;
  net_.checker().session_safe_until(session_->session_id(), real(session_->safe_until()));
}

void SimClient::keepalive() {
  if (!session_ || !session_->keepalive_wanted()) return;
  uint64_t life = session_life_;
  SteadyTime sent = steady();
  SteadyTime next_at = session_->keepalive_sent(sent);
  after(std::chrono::duration_cast<microseconds>(next_at - sent), [this, life] {
    if (life == session_life_) keepalive();
  });
  clientpb::Request request;
  request.mutable_keep_alive()->set_session_id(session_->session_id());
  call(request, milliseconds(0), [this, life, sent](const clientpb::Response& response) {
    if (life != session_life_ || !session_) return;
    auto verdict = session_->keepalive_answered(sent, response.code(), steady());
    if (verdict == client::KeepAliveVerdict::kExtended) sync_checker();
    if (verdict == client::KeepAliveVerdict::kEnded) {
      session_over(client::session_end_name(session_->end_reason()));
    }
  });
}

void SimClient::jeopardy_check() {
  if (!session_ || session_->ended()) return;
  uint64_t life = session_life_;
  if (session_->check_jeopardy(steady())) {
    session_over("safe-until passed (jeopardy)");
    return;
  }
  auto wait = std::chrono::duration_cast<microseconds>(session_->safe_until() - steady());
  after(std::max(wait, microseconds(1)), [this, life] {
    if (life == session_life_) jeopardy_check();
  });
}

void SimClient::session_over(const char* why) {
  if (!session_) return;
  trace(fmt::format("session {} lost: {}", session_->session_id(), why));
  net_.checker().session_lost(session_->session_id(), static_cast<double>(net_.now()));
  session_->end(client::SessionEnd::kJeopardy);
  session_.reset();
  held_.clear();
  ++session_life_;
  busy_ = false;
  if (winding_down_ && !options_.probe) return;
  after(milliseconds(10 + pick(200)), [this] { open_session(); });
}

// --- The workload -----------------------------------------------------------------

void SimClient::next() {
  if (!session_ || busy_) return;
  if (session_->lost(steady())) {
    session_over("safe-until passed (jeopardy)");
    return;
  }
  if (options_.probe) {
    probe_next();
    return;
  }
  if (winding_down_) {
    busy_ = true;
    if (!held_.empty()) {
      release(held_.begin()->second.sequencer);
    } else {
      close_session();
    }
    return;
  }
  busy_ = true;
  ++operations_;
  uint64_t roll = pick(100);
  if (roll < 60) {
    acquire();
  } else if (roll < 72) {
    describe(options_.locks[pick(options_.locks.size())], [this] {
      busy_ = false;
      next();
    });
  } else if (roll < 77) {
    close_session();
  } else if (roll < 81) {
    abandon_session();
  } else if (roll < 83) {
    force_release();
  } else {
    after(milliseconds(5 + pick(100)), [this, life = session_life_] {
      if (life != session_life_) return;
      busy_ = false;
      next();
    });
  }
}

void SimClient::acquire() {
  const std::string& lock = options_.locks[pick(options_.locks.size())];
  uint64_t wait_ms = chance(30) ? 0 : 20 + pick(1500);
  const uint64_t delays[] = {100, 300, 600};
  clientpb::Request request;
  auto* acquire = request.mutable_acquire();
  *acquire->mutable_key() = session_->next_key();
  acquire->set_lock(lock);
  acquire->set_mode(chance(75) ? lockpb::EXCLUSIVE : lockpb::SHARED);
  if (lock.starts_with(kSemaphorePrefix)) {
    acquire->set_mode(lockpb::SHARED);
    acquire->set_max_holders(kSemaphoreHolders);
  }
  acquire->set_wait_ms(wait_ms);
  if (chance(25)) acquire->set_lock_delay_ms(delays[pick(3)]);
  if (options_.max_value_bytes > 0) {
    acquire->set_value(std::string(side_rng_() % (options_.max_value_bytes + 1), 'v'));
  }
  uint64_t life = session_life_;
  uint64_t sequence = acquire->key().sequence();
  trace(fmt::format("acquire {} {} wait {} ms (session {}, sequence {})", lock,
                    lockpb::LockMode_Name(acquire->mode()), wait_ms, session_->session_id(),
                    sequence));
  auto answered = std::make_shared<bool>(false);
  if (wait_ms > 0 && chance(20)) {
    after(milliseconds(pick(wait_ms)), [this, life, lock, answered] {
      if (life != session_life_ || *answered || !session_) return;
      clientpb::Request cancel;
      *cancel.mutable_cancel_wait()->mutable_key() = session_->next_key();
      cancel.mutable_cancel_wait()->set_lock(lock);
      trace(fmt::format("cancel the wait for {}", lock));
      call(cancel, milliseconds(0), [](const clientpb::Response&) {});
    });
  }
  call(request, milliseconds(wait_ms),
       [this, life, answered, wait_ms, lock](const clientpb::Response& response) {
    *answered = true;
    if (life != session_life_ || !session_) return;
    if (response.code() == lockpb::SESSION_EXPIRED) {
      session_over("the cluster expired the session");
      return;
    }
    if (response.code() == lockpb::OK && response.has_granted()) {
      if (session_->lost(steady())) {
        session_over("granted after safe-until (jeopardy)");
        return;
      }
      const lockpb::Sequencer& sequencer = response.granted();
      trace(fmt::format("granted {} token {}", sequencer.lock(), sequencer.token()));
      net_.checker().granted(options_.id, session_->session_id(), sequencer,
                             static_cast<double>(net_.now()));
      held_[sequencer.token()] = Held{sequencer};
      hold(sequencer);
      return;
    }
    trace(fmt::format("acquire answered {}: {}", lockpb::ErrorCode_Name(response.code()),
                      response.message()));
    if (wait_ms > 0 && response.code() == lockpb::TIMEOUT) {
      // As the library does: a wait given up on is cancelled.
      clientpb::Request cancel;
      *cancel.mutable_cancel_wait()->mutable_key() = session_->next_key();
      cancel.mutable_cancel_wait()->set_lock(lock);
      call(cancel, milliseconds(0), [](const clientpb::Response&) {});
    }
    after(milliseconds(1 + pick(20)), [this, life] {
      if (life != session_life_) return;
      busy_ = false;
      next();
    });
  });
}

void SimClient::hold(lockpb::Sequencer sequencer) {
  uint64_t life = session_life_;
  after(milliseconds(2 + pick(300)), [this, life, sequencer] {
    if (life != session_life_ || !session_) return;
    if (chance(30)) {
      describe(sequencer.lock(), [this, life, sequencer] {
        if (life == session_life_ && session_) release(sequencer);
      });
    } else {
      release(sequencer);
    }
  });
}

void SimClient::describe(const std::string& lock, std::function<void()> then) {
  uint64_t life = session_life_;
  uint64_t session = session_ ? session_->session_id() : 0;
  double sent = static_cast<double>(net_.now());
  clientpb::Request request;
  request.mutable_describe()->set_lock(lock);
  call(request, milliseconds(0),
       [this, life, session, sent, lock, then](const clientpb::Response& response) {
         if (life != session_life_) return;
         if (response.code() == lockpb::OK || response.code() == lockpb::NOT_FOUND) {
           std::set<uint64_t> tokens;
           for (const auto& holder : response.lock_info().holders()) tokens.insert(holder.token());
           net_.checker().described(session, lock, tokens, sent, static_cast<double>(net_.now()));
         }
         then();
       });
}

void SimClient::release(const lockpb::Sequencer& sequencer) {
  uint64_t life = session_life_;
  double now = static_cast<double>(net_.now());
  net_.checker().let_go(session_->session_id(), sequencer.token(), now);
  held_.erase(sequencer.token());
  clientpb::Request request;
  auto* release = request.mutable_release();
  *release->mutable_key() = session_->next_key();
  release->set_lock(sequencer.lock());
  release->set_token(sequencer.token());
  trace(fmt::format("release {} token {}", sequencer.lock(), sequencer.token()));
  call(request, milliseconds(0), [this, life, sequencer](const clientpb::Response& response) {
    if (life != session_life_) return;
    if (response.code() == lockpb::OK) {
      net_.checker().release_acknowledged(sequencer.lock(), sequencer.token(),
                                          static_cast<double>(net_.now()));
    }
    auto go_on = [this, life] {
      if (life != session_life_) return;
      busy_ = false;
      next();
    };
    if (response.code() == lockpb::OK && chance(30)) {
      describe(sequencer.lock(), go_on);
    } else {
      go_on();
    }
  });
}

void SimClient::close_session() {
  if (!session_->begin_close()) return;
  double now = static_cast<double>(net_.now());
  for (auto& [token, held] : held_) net_.checker().let_go(session_->session_id(), token, now);
  held_.clear();
  clientpb::Request request;
  *request.mutable_close_session()->mutable_key() = session_->next_key();
  uint64_t life = session_life_;
  trace(fmt::format("close session {}", session_->session_id()));
  call(request, milliseconds(0), [this, life](const clientpb::Response&) {
    if (life != session_life_ || !session_) return;
    net_.checker().session_lost(session_->session_id(), static_cast<double>(net_.now()));
    session_->end(client::SessionEnd::kClosed);
    session_.reset();
    ++session_life_;
    busy_ = false;
    if (options_.probe) {
      probe_done_ = true;
      trace("probe done");
      return;
    }
    if (!winding_down_) after(milliseconds(pick(100)), [this] { open_session(); });
  });
}

void SimClient::abandon_session() {
  // As a crashed process: no release, no close, no more keepalives. The
  // cluster expires the session after its TTL.
  trace(fmt::format("abandon session {}", session_->session_id()));
  double now = static_cast<double>(net_.now());
  for (auto& [token, held] : held_) net_.checker().let_go(session_->session_id(), token, now);
  net_.checker().session_lost(session_->session_id(), now);
  session_->begin_close();
  session_.reset();
  held_.clear();
  ++session_life_;
  busy_ = false;
  after(milliseconds(pick(300)), [this] { open_session(); });
}

void SimClient::force_release() {
  clientpb::Request request;
  request.mutable_force_release()->set_lock(options_.locks[pick(options_.locks.size())]);
  uint64_t life = session_life_;
  trace(fmt::format("force-release {}", request.force_release().lock()));
  call(request, milliseconds(0), [this, life](const clientpb::Response&) {
    if (life != session_life_) return;
    busy_ = false;
    next();
  });
}

void SimClient::probe_next() {
  if (probe_next_lock_ >= options_.locks.size()) {
    busy_ = true;
    close_session();
    return;
  }
  busy_ = true;
  const std::string& lock = options_.locks[probe_next_lock_];
  clientpb::Request request;
  auto* acquire = request.mutable_acquire();
  *acquire->mutable_key() = session_->next_key();
  acquire->set_lock(lock);
  acquire->set_mode(lockpb::EXCLUSIVE);
  if (lock.starts_with(kSemaphorePrefix)) {
    acquire->set_mode(lockpb::SHARED);
    acquire->set_max_holders(kSemaphoreHolders);
  }
  acquire->set_wait_ms(20'000);
  uint64_t life = session_life_;
  call(request, milliseconds(20'000), [this, life](const clientpb::Response& response) {
    if (life != session_life_ || !session_) return;
    busy_ = false;
    if (response.code() == lockpb::OK && response.has_granted() && !session_->lost(steady())) {
      net_.checker().granted(options_.id, session_->session_id(), response.granted(),
                             static_cast<double>(net_.now()));
      held_[response.granted().token()] = Held{response.granted()};
      ++probe_next_lock_;
      trace(fmt::format("probe got {}", response.granted().lock()));
      busy_ = true;
      release(response.granted());
      return;
    }
    after(milliseconds(10), [this, life] {
      if (life == session_life_) next();
    });
  });
}

void SimClient::intrude() {
  if (winding_down_) return;
  after(milliseconds(20 + side_rng_() % 280), [this] { intrude(); });
  std::vector<uint64_t> foreign = net_.checker().live_sessions_not_of(options_.principal);
  if (foreign.empty()) return;
  const uint64_t session = foreign[side_rng_() % foreign.size()];
  const std::string& lock = options_.locks[side_rng_() % options_.locks.size()];
  // Any sequence number: a refused request must not move the owner's on.
  lockpb::RequestKey key;
  key.set_session_id(session);
  key.set_sequence(1 + side_rng_() % (uint64_t{1} << 40));
  clientpb::Request request;
  const char* kind = "";
  switch (side_rng_() % 5) {
    case 0:
      request.mutable_keep_alive()->set_session_id(session);
      kind = "keepalive";
      break;
    case 1:
      *request.mutable_acquire()->mutable_key() = key;
      request.mutable_acquire()->set_lock(lock);
      request.mutable_acquire()->set_wait_ms(side_rng_() % 2 == 0 ? 0 : 500);
      if (lock.starts_with(kSemaphorePrefix)) {
        request.mutable_acquire()->set_mode(lockpb::SHARED);
        request.mutable_acquire()->set_max_holders(kSemaphoreHolders);
      }
      kind = "acquire";
      break;
    case 2:
      // The token of a grant of that session, if the checker knows one.
      *request.mutable_release()->mutable_key() = key;
      request.mutable_release()->set_lock(lock);
      request.mutable_release()->set_token(net_.checker().token_of(session, lock));
      kind = "release";
      break;
    case 3:
      *request.mutable_cancel_wait()->mutable_key() = key;
      request.mutable_cancel_wait()->set_lock(lock);
      kind = "cancel_wait";
      break;
    default:
      *request.mutable_close_session()->mutable_key() = key;
      kind = "close_session";
      break;
  }
  ++intrusions_;
  trace(fmt::format("as principal \"{}\", {} on session {} of another principal",
                    options_.principal, kind, session));
  call(request, milliseconds(request.has_acquire() ? 500 : 0),
       [this, session, kind](const clientpb::Response& response) {
         net_.checker().intrusion_answered(options_.id, options_.principal, kind, session,
                                           response.code(), static_cast<double>(net_.now()));
       });
}

}  // namespace fencelock::sim
