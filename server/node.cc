#include "server/node.h"

#include <spdlog/spdlog.h>

#include <random>

#include "common/check.h"
#include "common/logging.h"

namespace fencelock::server {

namespace asio = boost::asio;

namespace {

// Reads and keepalives not confirmed by a ReadIndex round within this many
// election timeouts are answered UNAVAILABLE (leadership was lost).
constexpr int kReadTimeoutElections = 2;
// How long a graceful shutdown waits for leadership to move and in-flight
// proposals to be applied.
constexpr auto kShutdownGrace = std::chrono::seconds(3);
// A leader's Ready with at most this many entries is written on the loop,
// a larger one on the storage thread (handle_ready). Batches measured in
// fencelock-bench: a contended hand-off writes 2 entries, one client 1, 16
// clients about 17, 64 about 33, 256 about 95.
constexpr size_t kLoopWriteMaxEntries = 8;

uint64_t pick_seed(uint64_t configured, uint64_t id) {
  if (configured != 0) return configured;
  std::random_device device;
  return (uint64_t{device()} << 32) ^ device() ^ id;
}

}  // namespace

Result<std::unique_ptr<Node>> Node::open(asio::io_context& io, NodeConfig config) {
  if (Status status = validate(config); !status.ok()) return status;
  config.seed = pick_seed(config.seed, config.id);

  // Bind both listeners before touching the data directory, so a port in
  // use fails before anything is written.
  net::PeerTransportOptions transport_options;
  transport_options.self_id = config.id;
  transport_options.cluster_id = config.cluster_id;
  transport_options.peer_addresses = config.peers;
  transport_options.self_client_address = config.client_addr;
  transport_options.seed = config.seed;
  auto transport = std::make_unique<net::PeerTransport>(io, transport_options, get_logger("peer"));
  std::string peer_addr = config.peer_addr.empty() ? config.peers.at(config.id) : config.peer_addr;
  if (Status status = transport->listen(peer_addr); !status.ok()) return status;

  net::ClientListenerOptions listener_options;
  listener_options.max_frame_bytes = config.max_frame_bytes;
  listener_options.max_connections = config.max_connections;
  listener_options.max_in_flight = config.max_in_flight_per_connection;
  listener_options.idle_timeout = std::chrono::milliseconds(config.idle_timeout_ms);
  auto listener = std::make_unique<net::ClientListener>(io, listener_options, get_logger("client"));
  if (Status status = listener->listen(config.client_addr); !status.ok()) return status;

  storage::DiskLogOptions options;
  options.dir = config.data_dir;
  options.cluster_id = cluster_hash(config.cluster_id);
  options.node_id = config.id;
  for (const auto& [id, address] : config.peers) options.initial_conf_state.add_voters(id);
  options.sync = !config.unsafe_no_fsync;
  options.keep_entries_after_snapshot = config.keep_entries_after_snapshot;
  auto log = storage::DiskLog::open(options);
  if (!log.ok()) return log.status();
  return std::unique_ptr<Node>(new Node(io, std::move(config), std::move(log).value(),
                                        std::move(transport), std::move(listener)));
}

Node::Node(asio::io_context& io, NodeConfig config, std::unique_ptr<storage::DiskLog> log,
           std::unique_ptr<net::PeerTransport> transport,
           std::unique_ptr<net::ClientListener> listener)
    : io_(io),
      config_(std::move(config)),
      logger_(get_logger("node")),
      log_(std::move(log)),
      state_(config_.limits),
      transport_(std::move(transport)),
      listener_(std::move(listener)),
      tick_timer_(io),
      lazy_timer_(io) {
  raftpb::Snapshot snapshot = log_->snapshot();
  if (snapshot.metadata().index() > 0) {
    Status status = state_.restore(snapshot.data());
    FL_CHECK(status.ok(), "snapshot at index {} in {} does not restore: {}",
             snapshot.metadata().index(), log_->dir().string(), status.to_string());
    last_snapshot_index_ = snapshot.metadata().index();
  }
  applied_index_ = std::max(state_.applied_index(), snapshot.metadata().index());
  raft::Config raft_config;
  raft_config.id = config_.id;
  for (const auto& [id, address] : config_.peers) raft_config.voters.push_back(id);
  raft_config.election_ticks = config_.election_ticks;
  raft_config.heartbeat_ticks = config_.heartbeat_ticks;
  // At most half a tick: a lazy follower's answers must keep the leader's
  // check-quorum and heartbeat rounds fed.
  lazy_window_ = std::min(std::chrono::microseconds(config_.lazy_window_us),
                          std::chrono::microseconds(config_.tick_ms * 1000 / 2));
  if (lazy_window_.count() < static_cast<int64_t>(config_.lazy_window_us)) {
    logger_->warn("{} --lazy-window-us {} is more than half of --tick-ms {}: using {} us",
                  config_.id, config_.lazy_window_us, config_.tick_ms, lazy_window_.count());
  }
  raft_config.lazy_followers = lazy_window_.count() > 0;
  raft_config.applied = applied_index_;
  raft_config.seed = config_.seed;
  raft_ = std::make_unique<raft::RawNode>(raft_config, *log_, get_logger("raft"));

  logger_->info("{} starting: cluster {}, {} members, data {}, seed {}, applied {}, term {}",
                config_.id, config_.cluster_id, config_.peers.size(), log_->dir().string(),
                config_.seed, applied_index_, raft_->term());
  if (config_.unsafe_no_fsync) {
    logger_->warn("{} --unsafe-no-fsync: acknowledged writes can be lost if the machine crashes",
                  config_.id);
  }
}

Node::~Node() {
  // A write in flight finishes first; its completion, posted to a loop that
  // no longer runs, is dropped.
  storage_thread_.join();
  if (listener_) listener_->stop();
  if (transport_) transport_->stop();
  tick_timer_.cancel();
}

std::string Node::client_endpoint() const {
  auto endpoint = listener_->local_endpoint();
  return endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
}

std::string Node::peer_endpoint() const {
  auto endpoint = transport_->local_endpoint();
  return endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
}

void Node::start() {
  transport_->start([this](raftpb::Message message) { on_peer_message(std::move(message)); },
                    [](uint64_t, bool) {});
  listener_->start(
      [this](ConnectionId from, clientpb::Request request) { on_request(from, std::move(request)); },
      [this](ConnectionId id) {
        // Forget callers on a closed connection; their commands still apply.
        for (auto it = waiting_acquires_.begin(); it != waiting_acquires_.end();) {
          it = it->second.connection == id ? waiting_acquires_.erase(it) : std::next(it);
        }
      });
  asio::co_spawn(io_, tick_loop(), asio::detached);
  schedule_ready();
}

// --- Inputs ------------------------------------------------------------------

asio::awaitable<void> Node::tick_loop() {
  auto next = Clock::now();
  while (true) {
    next += std::chrono::milliseconds(config_.tick_ms);
    tick_timer_.expires_at(next);
    boost::system::error_code ec;
    co_await tick_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (ec || !raft_) co_return;
    on_tick();
  }
}

bool Node::defer_while_persisting(std::function<void()> input) {
  if (!persisting_) return false;
  deferred_.push_back(std::move(input));
  return true;
}

void Node::on_tick() {
  if (defer_while_persisting([this] { on_tick(); })) return;
  save_unsaved_commit();
  raft_->tick();
  auto now = Clock::now();
  // Requests whose ReadIndex round never completed: leadership moved.
  for (auto it = reads_in_flight_.begin(); it != reads_in_flight_.end();) {
    if (it->second.deadline > now) {
      ++it;
      continue;
    }
    for (auto& [caller, request] : it->second.requests) {
      respond_not_leader(caller);
    }
    it = reads_in_flight_.erase(it);
  }
  if (soft_state_.role == raft::Role::kLeader) run_leader_timers();
  if (shutting_down_) {
    bool moved = !transferring_ || soft_state_.role != raft::Role::kLeader;
    if ((moved && proposals_.empty()) || now >= shutdown_deadline_) {
      if (!proposals_.empty()) {
        logger_->warn("{} shutting down with {} proposals not yet applied", config_.id,
                      proposals_.size());
      }
      shutting_down_ = false;
      listener_->stop();
      transport_->stop();
      tick_timer_.cancel();
      auto done = std::move(shutdown_done_);
      if (done) asio::post(io_, std::move(done));
      return;
    }
  }
  schedule_ready();
}

void Node::on_peer_message(raftpb::Message message) {
  if (defer_while_persisting([this, message] { on_peer_message(message); })) return;
  Status status = raft_->step(message);
  if (!status.ok()) {
    logger_->debug("{} dropped peer message: {}", config_.id, status.to_string());
  }
  schedule_ready();
}

void Node::on_request(ConnectionId from, clientpb::Request request) {
  if (defer_while_persisting([this, from, request] { on_request(from, request); })) return;
  Caller caller{from, request.id()};
  auto kind = request.kind_case();
  if (kind == clientpb::Request::kClusterStatus) {
    clientpb::Response response;
    *response.mutable_cluster_status() = cluster_status();
    respond(caller, std::move(response));
    return;
  }
  if (shutting_down_ || soft_state_.role != raft::Role::kLeader) {
    respond_not_leader(caller);
    return;
  }
  lockpb::Command command;
  uint64_t now = wall_ms();
  switch (kind) {
    case clientpb::Request::kOpenSession:
      *command.mutable_open_session() = request.open_session();
      command.mutable_open_session()->set_now_ms(now);
      break;
    case clientpb::Request::kCloseSession:
      *command.mutable_close_session() = request.close_session();
      break;
    case clientpb::Request::kAcquire:
      *command.mutable_acquire() = request.acquire();
      command.mutable_acquire()->set_now_ms(now);
      break;
    case clientpb::Request::kRelease:
      *command.mutable_release() = request.release();
      break;
    case clientpb::Request::kCancelWait:
      *command.mutable_cancel_wait() = request.cancel_wait();
      // wait_id is for the leader's own deadline proposals only.
      command.mutable_cancel_wait()->set_wait_id(0);
      if (request.cancel_wait().key().sequence() == 0) {
        respond_error(caller, lockpb::INVALID_ARGUMENT, "cancel_wait needs a sequence number");
        return;
      }
      break;
    case clientpb::Request::kForceRelease:
      *command.mutable_force_release() = request.force_release();
      command.mutable_force_release()->set_now_ms(now);
      break;
    default:
      // Keepalives and reads: answered after a ReadIndex round
      // (serve_read answers a kind it does not know UNKNOWN_REQUEST).
      queue_read(caller, std::move(request));
      return;
  }
  propose(caller, command);
}

void Node::propose(const Caller& caller, const lockpb::Command& command) {
  std::string data;
  command.SerializeToString(&data);
  auto proposed = raft_->propose(std::move(data));
  if (!proposed.ok()) {
    respond_not_leader(caller);
    return;
  }
  auto [it, inserted] = proposals_.try_emplace(proposed.value().index,
                                               PendingProposal{caller, proposed.value().term});
  if (!inserted) {
    // An older proposal at this index was truncated away by another
    // leader: it will never apply.
    respond_error(it->second.caller, lockpb::UNAVAILABLE, "proposal lost in a leader change; retry");
    it->second = PendingProposal{caller, proposed.value().term};
  }
  schedule_ready();
}

bool Node::propose_internal(const lockpb::Command& command) {
  std::string data;
  command.SerializeToString(&data);
  if (!raft_->propose(std::move(data)).ok()) return false;
  schedule_ready();
  return true;
}

// --- The driver ----------------------------------------------------------------

void Node::schedule_ready() {
  if (ready_scheduled_) return;
  ready_scheduled_ = true;
  // Posted, not called: every request and message already queued on the
  // loop is handled first, so they share one append and one fsync.
  asio::post(io_, [this] { handle_ready(); });
}

void Node::handle_ready() {
  ready_scheduled_ = false;
  if (persisting_) return;  // finish_persist() comes back here
  flush_reads();
  while (raft_->has_ready()) {
    raft::Ready rd = raft_->ready();
    // A hard state that only moves the commit index needs no write of its
    // own: it waits for the next write, or the next tick (unsaved_commit_).
    if (!rd.hard_state && unsaved_commit_) rd.hard_state = *unsaved_commit_;
    unsaved_commit_.reset();
    // raft/ready.h step 1: the leader's own messages may go out while it writes.
    for (const auto& message : rd.messages) transport_->send(message);
    if (rd.soft_state) on_soft_state(*rd.soft_state);
    if (rd.snapshot) {
      // Rare (InstallSnapshot): the whole Ready in order, on the loop.
      Status status = log_->apply_snapshot(*rd.snapshot);
      FL_CHECK(status.ok(), "{} cannot install snapshot at {}: {}", config_.id,
               rd.snapshot->metadata().index(), status.to_string());
      save_or_die(rd);
      restore_snapshot(*rd.snapshot);
      apply_committed(rd);
      finish_ready(rd, /*apply=*/false);
      continue;
    }
    const raftpb::HardState* hard_state = rd.hard_state ? &*rd.hard_state : nullptr;
    bool sync = log_->must_sync(hard_state, rd.entries);
    bool leader = soft_state_.role == raft::Role::kLeader;
    if (leader) {
      // Step 3 may come first for committed entries (raft/ready.h): they
      // are on a quorum's disks already, so their answers need not wait
      // for this write.
      apply_committed(rd);
      if (sync) {
        // The leader's write overlaps its AppendEntries; inputs for the
        // Raft core wait in deferred_ until it is done (nothing may call
        // the core before advance()). A large batch is written on the
        // storage thread, so that this loop goes on reading and parsing the
        // next batch meanwhile. A small one (a lock hand-off, a lone client)
        // is written on this loop, posted behind the handlers already
        // queued (the writes of this Ready's AppendEntries and answers):
        // the storage thread's two wake-ups, about 50 and 25 us on a
        // 2-vCPU VM, cost more than the loop has to do meanwhile, and they
        // delayed the leader's own fsync past the first acknowledgement.
        // A follower or candidate has nothing to overlap with its write
        // (its messages wait for it), so it writes on the loop at once.
        persisting_ = true;
        persisting_ready_ = std::move(rd);
        if (persisting_ready_->entries.size() <= kLoopWriteMaxEntries) {
          asio::post(io_, [this] {
            save_or_die(*persisting_ready_);
            finish_persist();
          });
        } else {
          asio::post(storage_thread_, [this] {
            save_or_die(*persisting_ready_);
            asio::post(io_, [this] { finish_persist(); });
          });
        }
        break;
      }
    }
    if (sync && rd.persist_lazily && lazy_window_.count() > 0) {
      // A follower the leader does not wait for (raft/ready.h): hold the
      // write for the window; inputs wait in deferred_ and share the next
      // write. Its acknowledgement still follows its sync.
      persisting_ = true;
      persisting_ready_ = std::move(rd);
      lazy_timer_.expires_after(lazy_window_);
      lazy_timer_.async_wait([this](const boost::system::error_code& ec) {
        // Nothing cancels this timer: an error means the node is being
        // destroyed, and `this` must not be touched.
        if (ec || !persisting_ready_) return;
        save_or_die(*persisting_ready_);
        finish_persist();
      });
      break;
    }
    if (sync || !rd.entries.empty()) {
      save_or_die(rd);
    } else if (hard_state) {
      // A commit index is a hint the leader repeats (DiskLog::must_sync): a
      // node restarted with an older one applies less until it hears from
      // the leader. Writing it with the next write keeps a syscall and a
      // RocksDB write off every commit's path.
      unsaved_commit_ = *hard_state;
    }
    // A follower applies after step 2: its acknowledgement is what the
    // leader waits for; applying can come after it has gone.
    finish_ready(rd, /*apply=*/!leader);
  }
  serve_applied_reads();
}

// Runs on the loop, or on the storage thread while the loop leaves the log alone.
void Node::save_or_die(const raft::Ready& rd) {
  if (!rd.hard_state && rd.entries.empty()) return;
  Status status = log_->save(rd.hard_state ? &*rd.hard_state : nullptr, rd.entries);
  FL_CHECK(status.ok(), "{} cannot persist ready: {}", config_.id, status.to_string());
}

void Node::apply_committed(const raft::Ready& rd) {
  for (const auto& entry : rd.committed_entries) apply_entry(entry);
  for (const auto& read_state : rd.read_states) on_read_state(read_state);
}

void Node::finish_persist() {
  persisting_ = false;
  raft::Ready rd = std::move(*persisting_ready_);
  persisting_ready_.reset();
  // The leader applied before its write; a lazy follower applies after.
  // The role is the one of this Ready: only handle_ready changes it, and
  // not while a write is in flight.
  finish_ready(rd, /*apply=*/soft_state_.role != raft::Role::kLeader);
  // Inputs that arrived during the write, in their order; they share the
  // next write.
  for (auto& input : std::exchange(deferred_, {})) input();
  schedule_ready();
}

void Node::finish_ready(raft::Ready& rd, bool apply) {
  // Step 2: messages that promise durable state, only now.
  for (const auto& message : rd.messages_after_persist) transport_->send(message);
  // Step 3, where it did not come first.
  if (apply) apply_committed(rd);
  // Step 4.
  raft_->advance();
  maybe_snapshot();
}

void Node::save_unsaved_commit() {
  if (!unsaved_commit_ || persisting_) return;
  Status status = log_->save(&*unsaved_commit_, {});
  FL_CHECK(status.ok(), "{} cannot persist hard state: {}", config_.id, status.to_string());
  unsaved_commit_.reset();
}

void Node::serve_applied_reads() {
  while (!reads_awaiting_apply_.empty() &&
         reads_awaiting_apply_.begin()->first <= applied_index_) {
    ReadBatch batch = std::move(reads_awaiting_apply_.begin()->second);
    reads_awaiting_apply_.erase(reads_awaiting_apply_.begin());
    serve_read_batch(batch);
  }
}

void Node::on_soft_state(const raft::SoftState& soft) {
  bool was_leader = soft_state_.role == raft::Role::kLeader;
  bool is_leader = soft.role == raft::Role::kLeader;
  if (soft.leader_id != soft_state_.leader_id) {
    logger_->info("{} leader is now {} at term {}", config_.id, soft.leader_id, raft_->term());
  }
  soft_state_ = soft;
  if (is_leader && !was_leader) become_leader_timers();
  if (was_leader && !is_leader) {
    clear_leader_timers();
    fail_reads(lockpb::NOT_LEADER, "leadership lost");
    // Our uncommitted entries may be overwritten by the new leader, and
    // are answered only once the log reaches their indices — never, if
    // our tail was longer than the new leader's log and no traffic
    // follows. Tell their callers to retry now: a retry carries the same
    // (session, sequence), so one whose original does commit is answered
    // with the recorded result (DESIGN.md "Exactly once"). A node shutting
    // down handed leadership to an up-to-date follower: its proposals
    // commit, and it waits for them (operations.md).
    if (!shutting_down_) {
      for (auto& [index, proposal] : std::exchange(proposals_, {})) {
        respond_error(proposal.caller, lockpb::UNAVAILABLE, "leadership lost; retry");
      }
    }
  }
}

void Node::apply_entry(const raftpb::Entry& entry) {
  if (entry.index() <= applied_index_) return;  // already in the snapshot
  applied_index_ = entry.index();
  auto pending = proposals_.find(entry.index());
  std::optional<PendingProposal> caller;
  if (pending != proposals_.end()) {
    caller = pending->second;
    proposals_.erase(pending);
  }
  // Proposals at lower indices that never appeared were overwritten.
  while (!proposals_.empty() && proposals_.begin()->first < entry.index()) {
    respond_error(proposals_.begin()->second.caller, lockpb::UNAVAILABLE,
                  "proposal lost in a leader change; retry");
    proposals_.erase(proposals_.begin());
  }
  if (entry.type() != raftpb::ENTRY_NORMAL || entry.data().empty()) {
    if (caller) {
      respond_error(caller->caller, lockpb::UNAVAILABLE, "proposal lost in a leader change; retry");
    }
    return;
  }
  lockpb::Command command;
  bool parsed = command.ParseFromString(entry.data());
  // Bytes that do not parse still go to the state machine, which answers
  // INVALID_ARGUMENT and advances its applied index.
  sm::ApplyResult result = parsed ? state_.apply(entry.index(), command)
                                  : state_.apply(entry.index(), std::string_view(entry.data()));
  if (logger_->should_log(spdlog::level::debug)) {
    logger_->debug("{} applied {} at term {}: {} -> {}", config_.id, entry.index(), entry.term(),
                   command.ShortDebugString(), result.status.to_string());
  }
  // Waiters first: a grant is what a hand-off waits on (the new holder's
  // work, then its release), while the caller whose release or expiry
  // caused it only learns that it is done.
  answer_waits(result);
  if (caller) {
    if (caller->term != entry.term()) {
      respond_error(caller->caller, lockpb::UNAVAILABLE, "proposal lost in a leader change; retry");
    } else {
      answer_applied(caller->caller, command.kind_case(), result);
    }
  }

  if (soft_state_.role != raft::Role::kLeader || !parsed) return;
  // Leader bookkeeping for timers.
  if (command.has_open_session() && result.status.ok()) {
    track_session(result.session_id, result.ttl_ms);
  }
  if (command.has_close_session() && result.status.ok()) {
    session_seen_.erase(command.close_session().key().session_id());
    expiring_sessions_.erase(command.close_session().key().session_id());
  }
  if (command.has_expire_session()) {
    session_seen_.erase(command.expire_session().session_id());
    expiring_sessions_.erase(command.expire_session().session_id());
  }
  if (result.queued && result.wait_deadline_ms > 0) {
    wait_deadlines_.emplace(result.wait_deadline_ms, command.acquire().key().session_id(),
                            command.acquire().lock(), result.wait_id);
  }
  for (const auto& delay : result.lock_delays_started) delay_ends_.emplace(delay.until_ms, delay.lock);
}

void Node::restore_snapshot(const raftpb::Snapshot& snapshot) {
  Status status = state_.restore(snapshot.data());
  FL_CHECK(status.ok(), "{} snapshot at index {} from the leader does not restore: {}", config_.id,
           snapshot.metadata().index(), status.to_string());
  last_snapshot_index_ = snapshot.metadata().index();
  applied_index_ = std::max(applied_index_, snapshot.metadata().index());
  fail_callers_after_snapshot(snapshot.metadata().index());
  logger_->info("{} restored snapshot at index {} term {}", config_.id, snapshot.metadata().index(),
                snapshot.metadata().term());
  if (soft_state_.role == raft::Role::kLeader) {
    clear_leader_timers();
    become_leader_timers();
  }
}

void Node::fail_callers_after_snapshot(uint64_t snapshot_index) {
  // Commands inside the snapshot were applied where this node cannot see
  // their results. UNAVAILABLE makes the client retry with the same request
  // key, and the state machine answers the retry with the recorded result.
  std::vector<Caller> callers;
  while (!proposals_.empty() && proposals_.begin()->first <= snapshot_index) {
    callers.push_back(proposals_.begin()->second.caller);
    proposals_.erase(proposals_.begin());
  }
  std::set<uint64_t> pending;
  for (const auto& wait : state_.pending_waits()) pending.insert(wait.wait_id);
  for (auto it = waiting_acquires_.begin(); it != waiting_acquires_.end();) {
    if (pending.contains(it->first)) {
      ++it;
      continue;
    }
    callers.push_back(it->second);
    it = waiting_acquires_.erase(it);
  }
  for (const Caller& caller : callers) {
    respond_error(caller, lockpb::UNAVAILABLE, "state installed from a snapshot; retry");
  }
}

void Node::maybe_snapshot() {
  uint64_t applied = applied_index_;
  if (applied < last_snapshot_index_ + config_.snapshot_every) return;
  // The synced snapshot write makes the commit index written before it
  // durable too, so a restart never finds a snapshot beyond its commit.
  save_unsaved_commit();
  raftpb::ConfState conf_state;
  for (uint64_t voter : raft_->voters()) conf_state.add_voters(voter);
  Status status = log_->create_snapshot(applied, conf_state, state_.snapshot());
  FL_CHECK(status.ok(), "{} cannot save snapshot at {}: {}", config_.id, applied, status.to_string());
  status = log_->compact_to_snapshot();
  FL_CHECK(status.ok(), "{} cannot compact log: {}", config_.id, status.to_string());
  last_snapshot_index_ = applied;
  logger_->info("{} saved snapshot at index {} ({} sessions, {} locks)", config_.id, applied,
                state_.session_count(), state_.lock_count());
}

// --- Answers -------------------------------------------------------------------

void Node::respond(const Caller& caller, clientpb::Response response) {
  response.set_id(caller.request_id);
  listener_->respond(caller.connection, response);
}

void Node::respond_error(const Caller& caller, ErrorCode code, std::string message) {
  clientpb::Response response;
  response.set_code(code);
  response.set_message(std::move(message));
  respond(caller, std::move(response));
}

void Node::respond_not_leader(const Caller& caller) {
  clientpb::Response response;
  response.set_code(lockpb::NOT_LEADER);
  uint64_t leader = soft_state_.leader_id;
  if (leader != 0 && leader != config_.id) {
    response.set_leader_hint(transport_->client_address(leader));
    response.set_message("node " + std::to_string(config_.id) + " is not the leader; node " +
                         std::to_string(leader) + " is");
  } else {
    response.set_message("node " + std::to_string(config_.id) +
                         " is not the leader and knows no leader");
  }
  respond(caller, std::move(response));
}

void Node::answer_applied(const Caller& caller, lockpb::Command::KindCase kind,
                          const sm::ApplyResult& result) {
  clientpb::Response response;
  response.set_code(result.status.code());
  response.set_message(result.status.message());
  if (!result.status.ok()) {
    respond(caller, std::move(response));
    return;
  }
  switch (kind) {
    case lockpb::Command::kOpenSession:
      response.mutable_session_opened()->set_session_id(result.session_id);
      response.mutable_session_opened()->set_ttl_ms(result.ttl_ms);
      break;
    case lockpb::Command::kAcquire:
      if (result.granted) {
        *response.mutable_granted() = *result.granted;
      } else if (result.queued) {
        // Answered later, by a grant or an ended wait.
        waiting_acquires_.emplace(result.wait_id, caller);
        return;
      }
      break;
    default:
      break;
  }
  respond(caller, std::move(response));
}

std::vector<Node::Caller> Node::take_waiting(uint64_t wait_id) {
  // Taken out before answering: an answer can close a connection, whose
  // close handler edits waiting_acquires_.
  std::vector<Caller> callers;
  auto [begin, end] = waiting_acquires_.equal_range(wait_id);
  for (auto it = begin; it != end; ++it) callers.push_back(it->second);
  waiting_acquires_.erase(begin, end);
  return callers;
}

void Node::answer_waits(const sm::ApplyResult& result) {
  for (const auto& grant : result.grants) {
    for (const Caller& caller : take_waiting(grant.wait_id)) {
      clientpb::Response response;
      *response.mutable_granted() = grant.sequencer;
      respond(caller, std::move(response));
    }
  }
  for (const auto& ended : result.ended_waits) {
    std::string message = ended.reason == lockpb::TIMEOUT    ? "lock not granted before the wait deadline"
                          : ended.reason == lockpb::CANCELLED ? "wait cancelled"
                                                              : "session ended while waiting";
    for (const Caller& caller : take_waiting(ended.wait_id)) {
      respond_error(caller, ended.reason, message);
    }
  }
}

// --- Reads and keepalives ------------------------------------------------------

void Node::queue_read(const Caller& caller, clientpb::Request request) {
  unsent_reads_.emplace_back(caller, std::move(request));
  schedule_ready();
}

void Node::flush_reads() {
  if (unsent_reads_.empty()) return;
  if (soft_state_.role != raft::Role::kLeader) {
    for (auto& [caller, request] : std::exchange(unsent_reads_, {})) respond_not_leader(caller);
    return;
  }
  // One ReadIndex round confirms leadership for every read queued since the
  // last one (batching).
  std::string context = std::to_string(config_.id) + "/" + std::to_string(next_read_context_++);
  Status status = raft_->read_index(context);
  if (!status.ok()) {
    for (auto& [caller, request] : std::exchange(unsent_reads_, {})) respond_not_leader(caller);
    return;
  }
  ReadBatch batch;
  batch.requests = std::exchange(unsent_reads_, {});
  batch.deadline = Clock::now() + std::chrono::milliseconds(kReadTimeoutElections *
                                                            config_.election_ticks * config_.tick_ms);
  reads_in_flight_.emplace(std::move(context), std::move(batch));
}

void Node::on_read_state(const raft::ReadState& read_state) {
  auto it = reads_in_flight_.find(read_state.context);
  if (it == reads_in_flight_.end()) return;
  ReadBatch batch = std::move(it->second);
  reads_in_flight_.erase(it);
  batch.index = read_state.index;
  // Keepalives are confirmed now: the leader was still the leader after they arrived.
  auto now = Clock::now();
  for (auto& [caller, request] : batch.requests) {
    if (!request.has_keep_alive()) continue;
    uint64_t session = request.keep_alive().session_id();
    auto seen = session_seen_.find(session);
    if (seen == session_seen_.end() || expiring_sessions_.contains(session)) continue;
    seen->second.first = now;
  }
  reads_awaiting_apply_.emplace(batch.index, std::move(batch));
}

void Node::serve_read_batch(ReadBatch& batch) {
  for (auto& [caller, request] : batch.requests) serve_read(caller, request);
}

void Node::serve_read(const Caller& caller, const clientpb::Request& request) {
  clientpb::Response response;
  switch (request.kind_case()) {
    case clientpb::Request::kKeepAlive: {
      // Only the leader vouches for a session; one that lost office after
      // confirming this keepalive says so instead of guessing.
      if (soft_state_.role != raft::Role::kLeader) {
        respond_not_leader(caller);
        return;
      }
      uint64_t session = request.keep_alive().session_id();
      auto seen = session_seen_.find(session);
      if (seen == session_seen_.end() || expiring_sessions_.contains(session)) {
        respond_error(caller, lockpb::SESSION_EXPIRED,
                      "session " + std::to_string(session) + " does not exist or has expired");
        return;
      }
      response.mutable_keep_alive_ack()->set_ttl_ms(seen->second.second);
      break;
    }
    case clientpb::Request::kDescribe: {
      auto info = state_.describe(request.describe().lock());
      if (!info.ok()) {
        respond_error(caller, info.code(), info.status().message());
        return;
      }
      *response.mutable_lock_info() = std::move(info).value();
      break;
    }
    case clientpb::Request::kListLocks:
      *response.mutable_lock_list() =
          state_.list_locks(request.list_locks().prefix(), request.list_locks().start_after(),
                            request.list_locks().limit());
      break;
    case clientpb::Request::kCheckSequencer:
      *response.mutable_sequencer_status() =
          state_.check_sequencer(request.check_sequencer().sequencer());
      break;
    case clientpb::Request::kListSessions:
      *response.mutable_session_list() = state_.list_sessions(
          request.list_sessions().start_after(), request.list_sessions().limit());
      break;
    default:
      respond_error(caller, lockpb::UNKNOWN_REQUEST, "unknown request");
      return;
  }
  respond(caller, std::move(response));
}

void Node::fail_reads(ErrorCode code, const std::string& message) {
  auto fail = [&](std::vector<std::pair<Caller, clientpb::Request>>& requests) {
    for (auto& [caller, request] : requests) {
      if (code == lockpb::NOT_LEADER) {
        respond_not_leader(caller);
      } else {
        respond_error(caller, code, message);
      }
    }
  };
  for (auto& [context, batch] : reads_in_flight_) fail(batch.requests);
  reads_in_flight_.clear();
  fail(unsent_reads_);
  unsent_reads_.clear();
  // Reads already confirmed stay: their index is valid and they are served
  // once applied.
}

clientpb::ClusterStatusResult Node::cluster_status() const {
  clientpb::ClusterStatusResult result;
  result.set_self_id(config_.id);
  std::map<uint64_t, raft::PeerProgress> progress;
  for (auto& peer : raft_->progress()) progress[peer.id] = peer;
  for (const auto& [id, address] : config_.peers) {
    auto* member = result.add_members();
    member->set_id(id);
    member->set_address(address);
    if (id == config_.id) {
      member->set_role(std::string(raft::role_name(raft_->role())));
      member->set_term(raft_->term());
      member->set_commit_index(raft_->commit_index());
      member->set_applied_index(applied_index_);
      member->set_reachable(true);
      member->set_address(config_.client_addr);
      continue;
    }
    std::string client_address = transport_->client_address(id);
    if (!client_address.empty()) member->set_address(client_address);
    member->set_role(id == soft_state_.leader_id ? "leader" : "follower");
    member->set_term(id == soft_state_.leader_id ? raft_->term() : 0);
    if (auto it = progress.find(id); it != progress.end()) {
      member->set_commit_index(it->second.match_index);
      member->set_persist(it->second.prompt ? "prompt" : "lazy");
    }
    member->set_reachable(transport_->connected(id));
  }
  return result;
}

// --- Leader timers ---------------------------------------------------------------

uint64_t Node::wall_ms() const {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

void Node::track_session(uint64_t session_id, uint64_t ttl_ms) {
  auto now = Clock::now();
  session_seen_[session_id] = {now, ttl_ms};
  session_deadlines_.emplace(now + std::chrono::milliseconds(ttl_ms), session_id);
}

void Node::become_leader_timers() {
  clear_leader_timers();
  // DESIGN.md: a new leader gives every session a full TTL from now.
  for (const auto& session : state_.sessions()) track_session(session.session_id, session.ttl_ms);
  for (const auto& wait : state_.pending_waits()) {
    if (wait.deadline_ms > 0) {
      wait_deadlines_.emplace(wait.deadline_ms, wait.session_id, wait.lock, wait.wait_id);
    }
  }
  for (const auto& delay : state_.lock_delays()) delay_ends_.emplace(delay.until_ms, delay.lock);
  logger_->info("{} took office at term {}: {} sessions, {} waits, {} lock delays armed",
                config_.id, raft_->term(), session_seen_.size(), wait_deadlines_.size(),
                delay_ends_.size());
}

void Node::clear_leader_timers() {
  session_seen_.clear();
  expiring_sessions_.clear();
  session_deadlines_ = {};
  wait_deadlines_ = {};
  delay_ends_ = {};
}

void Node::run_leader_timers() {
  auto now = Clock::now();
  uint64_t now_ms = wall_ms();
  while (!session_deadlines_.empty() && session_deadlines_.top().first <= now) {
    uint64_t session = session_deadlines_.top().second;
    session_deadlines_.pop();
    auto seen = session_seen_.find(session);
    if (seen == session_seen_.end()) continue;  // ended
    auto deadline = seen->second.first + std::chrono::milliseconds(seen->second.second);
    // A node handing leadership over refuses keepalives (NOT_LEADER), so it
    // must not expire sessions for missing them.
    if (deadline > now || shutting_down_) {
      session_deadlines_.emplace(std::max(deadline, now + std::chrono::milliseconds(config_.tick_ms)),
                                 session);
      continue;
    }
    if (!expiring_sessions_.contains(session)) {
      logger_->info("{} session {} expired after {} ms without keepalive", config_.id, session,
                    seen->second.second);
    }
    expiring_sessions_.insert(session);
    lockpb::Command command;
    command.mutable_expire_session()->set_session_id(session);
    command.mutable_expire_session()->set_now_ms(now_ms);
    propose_internal(command);
    // Re-armed in case the proposal is lost; applying it erases the session.
    session_deadlines_.emplace(now + std::chrono::milliseconds(config_.election_ticks * config_.tick_ms),
                               session);
  }
  // Proposals refused for now (a leadership transfer under way) are tried
  // again a tick later; a stale one is ignored by the state machine.
  std::vector<std::tuple<uint64_t, uint64_t, std::string, uint64_t>> retry_waits;
  std::vector<std::pair<uint64_t, std::string>> retry_delays;
  while (!wait_deadlines_.empty() && std::get<0>(wait_deadlines_.top()) <= now_ms) {
    auto [deadline, session, lock, wait_id] = wait_deadlines_.top();
    wait_deadlines_.pop();
    lockpb::Command command;
    auto* cancel = command.mutable_cancel_wait();
    cancel->mutable_key()->set_session_id(session);
    cancel->set_lock(lock);
    cancel->set_wait_id(wait_id);
    if (!propose_internal(command)) {
      retry_waits.emplace_back(deadline + config_.tick_ms, session, lock, wait_id);
    }
  }
  for (auto& wait : retry_waits) wait_deadlines_.push(std::move(wait));
  while (!delay_ends_.empty() && delay_ends_.top().first <= now_ms) {
    auto [until, lock] = delay_ends_.top();
    delay_ends_.pop();
    lockpb::Command command;
    command.mutable_end_lock_delay()->set_lock(lock);
    command.mutable_end_lock_delay()->set_until_ms(until);
    if (!propose_internal(command)) retry_delays.emplace_back(until + config_.tick_ms, lock);
  }
  for (auto& delay : retry_delays) delay_ends_.push(std::move(delay));
}

// --- Shutdown --------------------------------------------------------------------

void Node::shutdown(std::function<void()> done) {
  if (defer_while_persisting([this, done] { shutdown(done); })) return;
  if (shutting_down_ || shutdown_done_) return;
  shutting_down_ = true;
  shutdown_done_ = std::move(done);
  shutdown_deadline_ = Clock::now() + kShutdownGrace;
  if (raft_->role() == raft::Role::kLeader && raft_->voters().size() > 1) {
    uint64_t best = 0;
    uint64_t best_match = 0;
    for (const auto& progress : raft_->progress()) {
      if (progress.id == config_.id) continue;
      if (best == 0 || progress.match_index > best_match) {
        best = progress.id;
        best_match = progress.match_index;
      }
    }
    if (best != 0) {
      logger_->info("{} shutting down: transferring leadership to {}", config_.id, best);
      Status status = raft_->transfer_leadership(best);
      transferring_ = status.ok();
      if (!status.ok()) {
        logger_->warn("{} leadership transfer failed: {}", config_.id, status.to_string());
      }
      schedule_ready();
    }
  } else {
    logger_->info("{} shutting down", config_.id);
  }
}

}  // namespace fencelock::server
