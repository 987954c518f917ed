#include "tests/faults/worker.h"

#include <future>

namespace fencelock::faults {

using namespace std::chrono_literals;

namespace {

// An answer that leaves unknown whether the request applied: the client
// gave up waiting (its own TIMEOUT) or closed.
bool indeterminate(const Status& status) {
  return status.code() == lockpb::UNAVAILABLE || status.code() == lockpb::INTERNAL ||
         (status.code() == lockpb::TIMEOUT && status.message().rfind("no answer", 0) == 0);
}

}  // namespace

Worker::Worker(WorkerOptions options, const std::vector<std::string>& real_endpoints,
               ProtectedResource& resource, History& history)
    : options_(std::move(options)),
      resource_(resource),
      history_(history),
      proxy_(std::make_unique<testing::TcpProxy>(real_endpoints)),
      rng_(options_.seed) {
  client::ClientOptions client_options;
  client_options.endpoints = proxy_->endpoints();
  for (size_t i = 0; i < real_endpoints.size(); ++i) {
    client_options.hint_endpoints[real_endpoints[i]] = client_options.endpoints[i];
  }
  client_options.follow_hints_outside_endpoints = false;
  client_options.request_timeout = options_.request_timeout;
  client_options.connect_timeout = 500ms;
  client_ = client::Client::connect(client_options).value();
}

Worker::~Worker() {
  stop();
  join();
  drop_session();
  client_.reset();
  proxy_.reset();
}

void Worker::start() {
  thread_ = std::thread([this] { run(); });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::cut() {
  std::lock_guard guard(cut_mutex_);
  if (cuts_++ == 0) proxy_->cut();
}

void Worker::heal() {
  std::lock_guard guard(cut_mutex_);
  if (cuts_ > 0 && --cuts_ == 0) proxy_->heal();
}

std::shared_ptr<client::Session> Worker::session() const {
  std::lock_guard guard(session_mutex_);
  return session_;
}

void Worker::run() {
  while (!stopped()) cycle();
}

bool Worker::open_session() {
  client::SessionOptions session_options;
  session_options.ttl = options_.ttl;
  session_options.client_name = "worker-" + std::to_string(options_.id);
  auto opened = client::Session::open(client_, session_options);
  if (!opened.ok()) {
    history_.note("\"type\":\"session-failed\",\"worker\":" + std::to_string(options_.id) +
                  ",\"error\":" + json_quote(opened.status().to_string()));
    return false;
  }
  std::lock_guard guard(session_mutex_);
  session_ = opened.value();
  history_.note("\"type\":\"session\",\"worker\":" + std::to_string(options_.id) +
                ",\"session\":" + std::to_string(session_->id()));
  return true;
}

void Worker::drop_session() {
  std::shared_ptr<client::Session> old;
  {
    std::lock_guard guard(session_mutex_);
    old = std::move(session_);
  }
  // ~Session sends a close unless the session is lost; it never blocks.
}

void Worker::cycle() {
  auto session = this->session();
  if (!session || session->lost()) {
    drop_session();
    if (!open_session()) {
      for (int i = 0; i < 5 && !stopped(); ++i) std::this_thread::sleep_for(20ms);
    }
    return;
  }
  const std::string& lock = options_.locks[rng_() % options_.locks.size()];
  auto mode = static_cast<int>(rng_() % 100) < options_.shared_percent ? lockpb::SHARED : lockpb::EXCLUSIVE;
  client::AcquireOptions acquire_options;
  acquire_options.mode = mode;
  acquire_options.wait = options_.acquire_wait;
  int64_t sent = history_.now_us();
  std::promise<Result<lockpb::Sequencer>> promise;
  auto future = promise.get_future();
  session->acquire_async(lock, acquire_options,
                         [&promise](Result<lockpb::Sequencer> result) { promise.set_value(std::move(result)); });
  auto result = future.get();
  if (!result.ok()) {
    const Status& status = result.status();
    bool unknown = indeterminate(status);
    if (status.code() != lockpb::TIMEOUT || unknown) {
      history_.note("\"type\":\"acquire-failed\",\"worker\":" + std::to_string(options_.id) +
                    ",\"session\":" + std::to_string(session->id()) + ",\"lock\":" + json_quote(lock) +
                    ",\"error\":" + json_quote(status.to_string()) + ",\"sent_us\":" + std::to_string(sent));
    }
    // After an acquire of unknown outcome the session may hold a grant
    // nobody saw: give the session up, so the checker never meets it.
    if (unknown || status.code() == lockpb::SESSION_EXPIRED) drop_session();
    return;
  }
  const lockpb::Sequencer grant = result.value();
  history_.grant(Grant{options_.id, session->id(), lock, mode, grant.token(), sent, history_.now_us()});
  bool stall = mode == lockpb::EXCLUSIVE && stall_requested_.exchange(false);
  critical_section(grant, stall);
  Release release{options_.id, session->id(), lock, grant.token(), ReleaseOutcome::kOk, "", history_.now_us(), 0};
  if (stall || session->lost()) {
    release.outcome = ReleaseOutcome::kNotSent;
    release.detail = stall ? "stalled" : "session lost";
    release.acked_us = release.sent_us;
    history_.release(std::move(release));
    drop_session();
    return;
  }
  Status status = session->release(grant);
  release.acked_us = history_.now_us();
  if (!status.ok()) {
    release.outcome = indeterminate(status) ? ReleaseOutcome::kIndeterminate : ReleaseOutcome::kFailed;
    release.detail = status.to_string();
  }
  bool drop = release.outcome == ReleaseOutcome::kIndeterminate || status.code() == lockpb::SESSION_EXPIRED;
  history_.release(std::move(release));
  if (drop) drop_session();
}

bool Worker::critical_section(const lockpb::Sequencer& grant, bool stall) {
  auto session = this->session();
  const std::string& lock = grant.lock();
  if (!stall && session->lost()) return false;
  auto read = resource_.read(history_.now_us(), options_.id, lock, grant.token(), grant.mode());
  if (!read.accepted || grant.mode() == lockpb::SHARED) return read.accepted;
  if (stall) {
    history_.note("\"type\":\"stall\",\"worker\":" + std::to_string(options_.id) + ",\"lock\":" +
                  json_quote(lock) + ",\"token\":" + std::to_string(grant.token()));
    cut();
    auto deadline = client::Clock::now() + options_.stall_max;
    while (!stopped() && client::Clock::now() < deadline && resource_.highest_written(lock) <= grant.token()) {
      std::this_thread::sleep_for(10ms);
    }
    heal();
    history_.note("\"type\":\"stall-end\",\"worker\":" + std::to_string(options_.id) + ",\"lock\":" +
                  json_quote(lock) + ",\"token\":" + std::to_string(grant.token()) + ",\"lost\":" +
                  (session->lost() ? "true" : "false"));
  } else {
    std::this_thread::sleep_for(1ms);  // the "modify" of read-modify-write
    if (session->lost()) return false;
  }
  return resource_.write(history_.now_us(), options_.id, lock, grant.token(), grant.mode(), read.value + 1);
}

}  // namespace fencelock::faults
