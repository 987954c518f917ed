#include "client/session.h"

#include <future>

namespace fencelock::client {

Result<std::shared_ptr<Session>> Session::open(std::shared_ptr<Client> client,
                                               SessionOptions options) {
  std::promise<Result<std::shared_ptr<Session>>> promise;
  auto future = promise.get_future();
  open_async(std::move(client), std::move(options),
             [&promise](Result<std::shared_ptr<Session>> result) { promise.set_value(std::move(result)); });
  return future.get();
}

void Session::open_async(std::shared_ptr<Client> client, SessionOptions options,
                         std::function<void(Result<std::shared_ptr<Session>>)> done) {
  clientpb::Request request;
  request.mutable_open_session()->set_ttl_ms(static_cast<uint64_t>(options.ttl.count()));
  request.mutable_open_session()->set_client_name(options.client_name);
  auto sent = Clock::now();
  auto* raw = client.get();
  raw->call_async(std::move(request), [client = std::move(client), options = std::move(options), sent,
                                       done = std::move(done)](clientpb::Response response) mutable {
    if (response.code() != lockpb::OK) {
      done(response_status(response));
      return;
    }
    SessionState state(response.session_opened().session_id(),
                       std::chrono::milliseconds(response.session_opened().ttl_ms()), sent,
                       options.clock_drift, options.keepalives_per_ttl);
    std::shared_ptr<Session> session(new Session(std::move(client), std::move(state)));
    session->start_keepalive();
    done(std::move(session));
  });
}

Session::Session(std::shared_ptr<Client> client, SessionState state)
    : client_(std::move(client)), state_(std::move(state)) {}

Session::~Session() {
  // Never blocks: the last reference may be dropped on the client's I/O
  // thread, which a blocking call would deadlock. The close is sent
  // asynchronously; if it never arrives the session simply expires.
  clientpb::Request request;
  {
    std::lock_guard lock(mutex_);
    if (!state_.begin_close() || state_.ended()) return;
    *request.mutable_close_session()->mutable_key() = state_.next_key();
  }
  client_->call_async(std::move(request), [](clientpb::Response) {});
}

Clock::time_point Session::safe_until() const {
  std::lock_guard lock(mutex_);
  return state_.safe_until();
}

bool Session::lost() const {
  auto now = Clock::now();
  std::lock_guard lock(mutex_);
  return state_.lost(now);
}

void Session::on_lost(LostCallback callback) {
  {
    std::lock_guard lock(mutex_);
    if (!state_.ended()) {
      lost_callbacks_.push_back(std::move(callback));
      return;
    }
  }
  client_->schedule(std::chrono::milliseconds(0), std::move(callback));
}

lockpb::RequestKey Session::next_key() {
  std::lock_guard lock(mutex_);
  return state_.next_key();
}

void Session::start_keepalive() {
  send_keepalive();
  check_jeopardy();
}

void Session::send_keepalive() {
  auto sent = Clock::now();
  Clock::time_point next;
  {
    std::lock_guard lock(mutex_);
    if (!state_.keepalive_wanted()) return;
    next = state_.keepalive_sent(sent);
  }
  std::weak_ptr<Session> weak = weak_from_this();
  clientpb::Request request;
  request.mutable_keep_alive()->set_session_id(id());
  client_->call_async(std::move(request), [weak, sent](clientpb::Response response) {
    if (auto self = weak.lock()) self->keepalive_answered(sent, response.code());
  });
  client_->schedule(std::chrono::duration_cast<std::chrono::milliseconds>(next - sent), [weak] {
    if (auto self = weak.lock()) self->send_keepalive();
  });
}

void Session::keepalive_answered(Clock::time_point sent, lockpb::ErrorCode code) {
  std::vector<LostCallback> callbacks;
  {
    std::lock_guard lock(mutex_);
    if (state_.keepalive_answered(sent, code, Clock::now()) != KeepAliveVerdict::kEnded) return;
    callbacks = std::move(lost_callbacks_);
  }
  for (auto& callback : callbacks) callback();
}

void Session::check_jeopardy() {
  auto now = Clock::now();
  std::vector<LostCallback> callbacks;
  bool ended_now = false;
  Clock::time_point safe;
  {
    std::lock_guard lock(mutex_);
    ended_now = state_.check_jeopardy(now);
    if (ended_now) {
      callbacks = std::move(lost_callbacks_);
    } else if (state_.ended() || state_.closing()) {
      return;  // nothing left to watch
    }
    safe = state_.safe_until();
  }
  if (ended_now) {
    for (auto& callback : callbacks) callback();
    return;
  }
  // The cast truncates to whole milliseconds: 1 ms more, so that the next
  // check comes at or after safe-until.
  std::weak_ptr<Session> weak = weak_from_this();
  auto delay = std::chrono::duration_cast<std::chrono::milliseconds>(safe - now) +
               std::chrono::milliseconds(1);
  client_->schedule(delay, [weak] {
    if (auto self = weak.lock()) self->check_jeopardy();
  });
}

void Session::end(SessionEnd why) {
  std::vector<LostCallback> callbacks;
  {
    std::lock_guard lock(mutex_);
    if (!state_.end(why)) return;
    callbacks = std::move(lost_callbacks_);
  }
  for (auto& callback : callbacks) callback();
}

void Session::acquire_async(const std::string& name, const AcquireOptions& options,
                            std::function<void(Result<lockpb::Sequencer>)> done) {
  clientpb::Request request;
  auto* acquire = request.mutable_acquire();
  *acquire->mutable_key() = next_key();
  acquire->set_lock(name);
  acquire->set_mode(options.mode);
  acquire->set_wait_ms(static_cast<uint64_t>(options.wait.count()));
  acquire->set_value(options.value);
  acquire->set_max_holders(options.max_holders);
  acquire->set_lock_delay_ms(static_cast<uint64_t>(options.lock_delay.count()));
  std::weak_ptr<Session> weak = weak_from_this();
  bool waits = options.wait.count() > 0;
  client_->call_async(
      std::move(request),
      [done = std::move(done), weak, waits, name](clientpb::Response response) {
        // A wait the client gave up on (no answer in time: a leader change
        // runs a wait in full again) must not grant the lock later to a
        // session that no longer expects it: cancel it. A wait the cluster
        // ended needs nothing, and a cancel of no wait changes nothing.
        if (waits && response.code() == lockpb::TIMEOUT) {
          if (auto session = weak.lock(); session && !session->lost()) {
            session->cancel_wait_async(name);
          }
        }
        if (response.code() != lockpb::OK) {
          done(response_status(response));
        } else if (!response.has_granted()) {
          done(Status(lockpb::INTERNAL, "acquire answered without a grant"));
        } else {
          done(response.granted());
        }
      },
      options.wait);
}

Result<std::unique_ptr<Lock>> Session::acquire(const std::string& name, AcquireOptions options) {
  std::promise<Result<lockpb::Sequencer>> promise;
  auto future = promise.get_future();
  acquire_async(name, options,
                [&promise](Result<lockpb::Sequencer> result) { promise.set_value(std::move(result)); });
  auto result = future.get();
  if (!result.ok()) return result.status();
  return std::make_unique<Lock>(shared_from_this(), std::move(result).value(), options.value);
}

Result<std::unique_ptr<Lock>> Session::try_acquire(const std::string& name, lockpb::LockMode mode) {
  AcquireOptions options;
  options.mode = mode;
  return acquire(name, options);
}

void Session::cancel_wait_async(const std::string& name) {
  clientpb::Request request;
  *request.mutable_cancel_wait()->mutable_key() = next_key();
  request.mutable_cancel_wait()->set_lock(name);
  client_->call_async(std::move(request), [](clientpb::Response) {});
}

void Session::release_async(const lockpb::Sequencer& sequencer, std::function<void(Status)> done) {
  clientpb::Request request;
  auto* release = request.mutable_release();
  *release->mutable_key() = next_key();
  release->set_lock(sequencer.lock());
  release->set_token(sequencer.token());
  client_->call_async(std::move(request), [done = std::move(done)](clientpb::Response response) {
    done(response_status(response));
  });
}

Status Session::release(const lockpb::Sequencer& sequencer) {
  std::promise<Status> promise;
  auto future = promise.get_future();
  release_async(sequencer, [&promise](Status status) { promise.set_value(std::move(status)); });
  return future.get();
}

Status Session::close() {
  clientpb::Request request;
  {
    std::lock_guard lock(mutex_);
    if (!state_.begin_close()) return Status();
    *request.mutable_close_session()->mutable_key() = state_.next_key();
  }
  auto response = client_->call(std::move(request));
  end(SessionEnd::kClosed);
  return response_status(response);
}

Lock::Lock(std::shared_ptr<Session> session, lockpb::Sequencer sequencer, std::string value)
    : session_(std::move(session)), sequencer_(std::move(sequencer)), value_(std::move(value)) {}

Lock::~Lock() {
  // Asynchronous for the same reason as ~Session.
  if (released_ || session_->lost()) return;
  session_->release_async(sequencer_, [](Status) {});
}

Status Lock::release() {
  if (released_) return Status();
  released_ = true;
  return session_->release(sequencer_);
}

}  // namespace fencelock::client
