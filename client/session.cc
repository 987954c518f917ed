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
    std::chrono::milliseconds ttl(response.session_opened().ttl_ms());
    auto safe = sent + std::chrono::duration_cast<Clock::duration>(ttl * (1.0 - options.clock_drift));
    std::shared_ptr<Session> session(
        new Session(std::move(client), std::move(options), response.session_opened().session_id(), ttl, safe));
    session->start_keepalive();
    done(std::move(session));
  });
}

Session::Session(std::shared_ptr<Client> client, SessionOptions options, uint64_t id,
                 std::chrono::milliseconds ttl, Clock::time_point safe_until)
    : client_(std::move(client)),
      options_(std::move(options)),
      id_(id),
      ttl_(ttl),
      safe_until_(safe_until) {}

Session::~Session() {
  // Never blocks: the last reference may be dropped on the client's I/O
  // thread, which a blocking call would deadlock. The close is sent
  // asynchronously; if it never arrives the session simply expires.
  if (closed_.exchange(true) || lost_.load()) return;
  clientpb::Request request;
  request.mutable_close_session()->mutable_key()->set_session_id(id_);
  request.mutable_close_session()->mutable_key()->set_sequence(next_sequence());
  client_->call_async(std::move(request), [](clientpb::Response) {});
}

Clock::time_point Session::safe_until() const {
  std::lock_guard lock(mutex_);
  return safe_until_;
}

void Session::on_lost(LostCallback callback) {
  {
    std::lock_guard lock(mutex_);
    if (!lost_.load()) {
      lost_callbacks_.push_back(std::move(callback));
      return;
    }
  }
  client_->schedule(std::chrono::milliseconds(0), std::move(callback));
}

void Session::start_keepalive() {
  send_keepalive();
  check_jeopardy();
}

void Session::send_keepalive() {
  if (lost_.load() || closed_.load()) return;
  std::weak_ptr<Session> weak = weak_from_this();
  clientpb::Request request;
  request.mutable_keep_alive()->set_session_id(id_);
  auto sent = Clock::now();
  client_->call_async(std::move(request), [weak, sent](clientpb::Response response) {
    auto self = weak.lock();
    if (!self) return;
    if (response.code() == lockpb::OK) {
      self->extend(sent);
    } else if (response.code() == lockpb::SESSION_EXPIRED) {
      self->mark_lost("the cluster expired the session");
    }
    // Other errors (TIMEOUT, UNAVAILABLE): the next keepalive tries again.
  });
  auto interval = std::max(std::chrono::milliseconds(50), ttl_ / options_.keepalives_per_ttl);
  client_->schedule(interval, [weak] {
    if (auto self = weak.lock()) self->send_keepalive();
  });
}

void Session::extend(Clock::time_point sent) {
  {
    std::lock_guard lock(mutex_);
    if (lost_.load()) return;  // once lost, locks stay lost: a holder must reacquire
    if (Clock::now() < safe_until_) {
      auto safe = sent + std::chrono::duration_cast<Clock::duration>(ttl_ * (1.0 - options_.clock_drift));
      if (safe > safe_until_) safe_until_ = safe;
      return;
    }
  }
  // The acknowledgement came after safe-until: the locks may already have
  // been granted to someone else in between, so they are lost.
  mark_lost("keepalive acknowledged after safe-until");
}

void Session::check_jeopardy() {
  if (lost_.load() || closed_.load()) return;
  auto safe = safe_until();
  auto now = Clock::now();
  if (now >= safe) {
    mark_lost("no keepalive acknowledged before safe-until");
    return;
  }
  std::weak_ptr<Session> weak = weak_from_this();
  auto delay = std::chrono::duration_cast<std::chrono::milliseconds>(safe - now) +
               std::chrono::milliseconds(1);
  client_->schedule(delay, [weak] {
    if (auto self = weak.lock()) self->check_jeopardy();
  });
}

void Session::mark_lost(const char*) {
  std::vector<LostCallback> callbacks;
  {
    std::lock_guard lock(mutex_);
    if (lost_.exchange(true)) return;
    callbacks = std::move(lost_callbacks_);
  }
  for (auto& callback : callbacks) callback();
}

void Session::acquire_async(const std::string& name, const AcquireOptions& options,
                            std::function<void(Result<lockpb::Sequencer>)> done) {
  clientpb::Request request;
  auto* acquire = request.mutable_acquire();
  acquire->mutable_key()->set_session_id(id_);
  acquire->mutable_key()->set_sequence(next_sequence());
  acquire->set_lock(name);
  acquire->set_mode(options.mode);
  acquire->set_wait_ms(static_cast<uint64_t>(options.wait.count()));
  acquire->set_value(options.value);
  acquire->set_max_holders(options.max_holders);
  acquire->set_lock_delay_ms(static_cast<uint64_t>(options.lock_delay.count()));
  client_->call_async(
      std::move(request),
      [done = std::move(done)](clientpb::Response response) {
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

void Session::release_async(const lockpb::Sequencer& sequencer, std::function<void(Status)> done) {
  clientpb::Request request;
  auto* release = request.mutable_release();
  release->mutable_key()->set_session_id(id_);
  release->mutable_key()->set_sequence(next_sequence());
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
  if (closed_.exchange(true)) return Status();
  clientpb::Request request;
  request.mutable_close_session()->mutable_key()->set_session_id(id_);
  request.mutable_close_session()->mutable_key()->set_sequence(next_sequence());
  auto response = client_->call(std::move(request));
  mark_lost("closed");
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
