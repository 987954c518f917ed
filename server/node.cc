#include "server/node.h"

#include "server/lock_stats_result.h"

#include <spdlog/spdlog.h>

#include <set>

#include "common/check.h"
#include "common/logging.h"
#include "server/commands.h"
#include "storage/snapshot_file.h"

namespace fencelock::server {

namespace {

// Reads and keepalives not confirmed by a ReadIndex round within this many
// election timeouts are answered NOT_LEADER (leadership was lost).
constexpr int kReadTimeoutElections = 2;
// Room a read's answer needs beside its page: id, code, an empty message,
// the result's tag and length.
constexpr size_t kResponseHeadroomBytes = 1024;

// A founding member's brand-new log gets the cluster's first configuration
// as entries 1..n, committed (identical on every founding member); a node
// joining a running cluster (config.join) learns it from the leader.
void bootstrap_if_new(storage::LogStore& log, const NodeConfig& config) {
  raft::InitialState initial = log.initial_state();
  bool fresh = log.last_index() == 0 && log.snapshot_metadata().index() == 0 &&
               initial.hard_state.term() == 0 && initial.conf_state.voters_size() == 0;
  if (!fresh || config.join) return;
  std::vector<raftpb::Member> members;
  for (const auto& [id, address] : config.peers) {
    raftpb::Member member;
    member.set_id(id);
    member.set_peer_address(address);
    members.push_back(std::move(member));
  }
  std::vector<raftpb::Entry> entries = raft::bootstrap_entries(std::move(members));
  raftpb::HardState hard_state;
  hard_state.set_term(1);
  hard_state.set_commit(entries.size());
  Status status = log.save(&hard_state, entries, /*sync=*/true);
  FL_CHECK(status.ok(), "{} cannot write the bootstrap configuration to {}: {}", config.id,
           log.location(), status.to_string());
}

// Bootstraps a new cluster's log, restores `state` from the log's
// snapshot; returns the index applied.
uint64_t restore_from_log(sm::LockStateMachine& state, storage::LogStore& log,
                          const NodeConfig& config) {
  bootstrap_if_new(log, config);
  const uint64_t index = log.snapshot_metadata().index();
  if (index > 0) {
    sm::Status status = state.restore(*log.snapshot_data());
    FL_CHECK(status.ok(), "snapshot at index {} in {} does not restore: {}", index, log.location(),
             status.to_string());
  }
  return std::max(state.applied_index(), index);
}


std::chrono::microseconds lazy_window(const NodeConfig& config) {
  // At most half a tick: a lazy follower's answers must keep the leader's
  // check-quorum and heartbeat rounds fed.
  return std::min(std::chrono::microseconds(config.lazy_window_us),
                  std::chrono::microseconds(config.tick_ms * 1000 / 2));
}

std::unique_ptr<raft::RawNode> make_raft(const NodeConfig& config, const storage::LogStore& log,
                                         uint64_t applied) {
  raft::Config raft_config;
  raft_config.id = config.id;
  // The configuration comes from the log (bootstrap entries, snapshots and
  // changes), or from a data directory made before membership change.
  raft_config.election_ticks = config.election_ticks;
  raft_config.heartbeat_ticks = config.heartbeat_ticks;
  raft_config.lazy_followers = lazy_window(config).count() > 0;
  raft_config.applied = applied;
  raft_config.seed = config.seed;
  return std::make_unique<raft::RawNode>(raft_config, log, get_logger("raft"));
}

}  // namespace

Node::Node(Env& env, storage::LogStore& log, NodeConfig config)
    : env_(env),
      log_(log),
      config_(std::move(config)),
      logger_(get_logger("node")),
      lazy_window_(lazy_window(config_)),
      state_(config_.limits),
      applied_index_(restore_from_log(state_, log_, config_)),
      raft_(make_raft(config_, log_, applied_index_)),
      driver_(*raft_, *this),
      responder_(env_, config_.id),
      timers_(config_.id, config_.tick_ms, config_.election_ticks * config_.tick_ms,
              config_.test_only_inject_bug, get_logger("node")),
      requests_(responder_, logger_),
      reads_(config_.id,
             std::chrono::milliseconds(kReadTimeoutElections * config_.election_ticks *
                                       config_.tick_ms),
             config_.max_frame_bytes > kResponseHeadroomBytes
                 ? config_.max_frame_bytes - kResponseHeadroomBytes
                 : 0,
             responder_, state_, timers_),
      members_(env_, responder_, config_, logger_),
      backups_(config_.id, config_.seed, config_.max_frame_bytes, responder_, logger_),
      peer_guard_(logger_),
      lock_stats_(LockStatsOptions{config_.observability.prefix_segments,
                                   config_.observability.max_prefixes,
                                   config_.observability.top_k}) {
  lock_stats_.restored(env_.now(), state_);
  last_snapshot_index_ = log_.snapshot_metadata().index();
  applied_term_ = log_.snapshot_metadata().term();
  responder_.set_address_book([this](uint64_t id) { return members_.client_address(id); });
  members_.on_conf_state(raft_->conf_state(), {});
  // BackupBegin is a read: served after a ReadIndex round, at an applied
  // index at or past the read index (server/backups.h).
  reads_.set_fallback([this](const Caller& caller, const clientpb::Request& request) {
    if (!request.has_backup_begin()) return false;
    Backups::Source source{applied_index_, applied_term_, config_.cluster_id,
                           raft_->conf_state_at(applied_index_)};
    backups_.begin(caller, env_.now(), source, state_.snapshot());
    return true;
  });
  if (lazy_window_.count() < static_cast<int64_t>(config_.lazy_window_us)) {
    logger_->warn("{} --lazy-window-us {} is more than half of --tick-ms {}: using {} us",
                  config_.id, config_.lazy_window_us, config_.tick_ms, lazy_window_.count());
  }
  follow_term();
  logger_->info("{} starting: cluster {}, {} members, data {}, seed {}, applied {}, term {}",
                config_.id, config_.cluster_id, config_.peers.size(), log_.location(),
                config_.seed, applied_index_, raft_->term());
  if (config_.unsafe_no_fsync) {
    logger_->warn("{} --unsafe-no-fsync: acknowledged writes can be lost if the machine crashes",
                  config_.id);
  }
}

Node::~Node() = default;

void Node::start() { schedule_ready(); }

// --- Inputs ------------------------------------------------------------------

void Node::on_tick() {
  if (driver_.defer([this] { on_tick(); })) return;
  driver_.flush_commit();
  raft_->tick();
  members_.set_leaving(raft_->leaving());
  SteadyTime now = env_.now();
  reads_.expire(now);
  backups_.expire(now);
  if (leader()) {
    timers_.run(now, shutting_down_,
                [this](const lockpb::Command& command) { return propose_internal(command); });
  }
  if (shutting_down_) {
    finish_shutdown_if_done(now);
    if (!shutting_down_) return;
  }
  schedule_ready();
}

void Node::on_peer_message(const raftpb::Message& message) {
  // Checked first: the deferred copy of an InstallSnapshot is hundreds of MiB.
  if (driver_.writing() && driver_.defer([this, message] { on_peer_message(message); })) return;
  // Checked against the core as it is now, right before the step.
  if (!peer_guard_.admit(message, *raft_, env_.now())) return;
  if (message.type() == raftpb::MSG_SNAP && !try_snapshot(message)) return;
  peer_guard_.stepped(message, raft_->step(message), *raft_, env_.now());
  const raftpb::SnapshotMetadata& meta = message.snapshot().metadata();
  // Taken, the core's log is the snapshot; else the trial is not needed.
  if (trial_ && !(raft_->last_index() == meta.index() && raft_->commit_index() == meta.index())) {
    trial_.reset();
  }
  schedule_ready();
}

void Node::on_request(ConnectionId from, const std::string& principal,
                      const clientpb::Request& request) {
  if (driver_.defer([this, from, principal, request] { on_request(from, principal, request); })) {
    return;
  }
  Caller caller{from, request.id()};
  if (request.kind_case() == clientpb::Request::kClusterStatus) {
    clientpb::Response response;
    *response.mutable_cluster_status() = cluster_status();
    responder_.respond(caller, std::move(response));
    return;
  }
  if (request.kind_case() == clientpb::Request::kLockStats) {
    clientpb::Response response;
    *response.mutable_lock_stats() = lock_stats_result(lock_stats_, state_, config_.id,
                                                       applied_index_, request.lock_stats().prefix());
    responder_.respond(caller, std::move(response));
    return;
  }
  if (!members_.self_is_member()) {
    responder_.not_member(caller);
    return;
  }
  switch (request.kind_case()) {
    case clientpb::Request::kMemberList:
    case clientpb::Request::kMemberAdd:
    case clientpb::Request::kMemberPromote:
    case clientpb::Request::kMemberRemove:
      members_.handle(*raft_, leader() && !shutting_down_, caller, request);
      schedule_ready();
      return;
    default:
      break;
  }
  if (Backups::handles(request)) {  // on any node: the bytes are fixed
    backups_.serve(caller, request, env_.now());
    return;
  }
  if (shutting_down_ || !leader()) {
    responder_.not_leader(caller);
    return;
  }
  std::string invalid;
  auto command = to_command(request, &invalid);
  // The connection's principal, never one the client names: the state
  // machine decides session ownership and bounds with it.
  if (command) command->set_principal(principal);
  if (!invalid.empty()) {
    responder_.error(caller, lockpb::INVALID_ARGUMENT, invalid);
    return;
  }
  if (command) {
    if (requests_.propose(*raft_, caller, *command)) {
      ++metrics_.proposals;
    } else {
      ++metrics_.proposals_refused;
    }
  } else {
    // Keepalives and reads, after a ReadIndex round (a kind Reads does not
    // know is answered UNKNOWN_REQUEST).
    reads_.queue(caller, principal, request);
  }
  schedule_ready();
}

void Node::on_connection_closed(ConnectionId connection) {
  requests_.forget_connection(connection);
}

void Node::report_snapshot(uint64_t peer, bool ok) {
  if (driver_.defer([this, peer, ok] { report_snapshot(peer, ok); })) return;
  raft_->report_snapshot(peer, ok);
  schedule_ready();
}

bool Node::propose_internal(const lockpb::Command& command) {
  std::string data;
  command.SerializeToString(&data);
  if (!raft_->propose(std::move(data)).ok()) {
    ++metrics_.proposals_refused;
    return false;
  }
  ++metrics_.proposals;
  schedule_ready();
  return true;
}

// --- The driver's host -----------------------------------------------------------

void Node::schedule_ready() {
  if (ready_scheduled_) return;
  ready_scheduled_ = true;
  // Posted, not called: every request and message already queued on the
  // loop is handled first, so they share one append and one fsync.
  env_.post([this] { handle_ready(); });
}

void Node::handle_ready() {
  ready_scheduled_ = false;
  if (driver_.writing()) return;  // the write's completion comes back here
  reads_.flush(*raft_, leader() && !shutting_down_, env_.now());
  driver_.handle_ready();
  reads_.serve_applied(applied_index_, leader());
}

bool Node::write(const raft::Ready& rd, raft::WriteMode mode) {
  if (rd.hard_state) follow_term();
  if (rd.snapshot) {
    Status status = log_.apply_snapshot(*rd.snapshot);
    FL_CHECK(status.ok(), "{} cannot install snapshot at {}: {}", config_.id,
             rd.snapshot->metadata().index(), status.to_string());
  }
  if (mode == raft::WriteMode::kNow || (mode == raft::WriteMode::kLazy && lazy_window_.count() == 0)) {
    save_or_die(rd);
    return true;
  }
  // The driver keeps `rd` until write_done(); inputs wait in it meanwhile.
  env_.write(
      mode, rd.entries.size(), mode == raft::WriteMode::kLazy ? lazy_window_ : std::chrono::microseconds(0),
      [this, &rd] { save_or_die(rd); },
      [this] {
        driver_.write_done();
        schedule_ready();
      });
  return false;
}

// Runs on the loop, or on the Env's storage thread while the loop leaves the log alone.
void Node::save_or_die(const raft::Ready& rd) {
  if (!rd.hard_state && rd.entries.empty()) return;
  bool sync = rd.must_sync && config_.test_only_inject_bug != InjectedBug::kAckBeforeSync;
  const SteadyTime start = env_.now();
  Status status = log_.save(rd.hard_state ? &*rd.hard_state : nullptr, rd.entries, sync);
  FL_CHECK(status.ok(), "{} cannot persist ready: {}", config_.id, status.to_string());
  metrics_.log_writes.observe(env_.now() - start);
  if (!rd.entries.empty()) metrics_.log_write_entries.observe(static_cast<double>(rd.entries.size()));
}

void Node::send(const raftpb::Message& message) {
  if (message.type() != raftpb::MSG_SNAP || !message.snapshot().data().empty()) {
    env_.send(message);
    return;
  }
  // The core's MSG_SNAP carries the metadata alone
  // (raft::LogStorage::snapshot_to_send): the data goes beside it, shared
  // with the log rather than copied for every follower and retry.
  raftpb::SnapshotMetadata metadata = log_.snapshot_metadata();
  if (metadata.index() == message.snapshot().metadata().index()) {
    env_.send_snapshot(message, log_.snapshot_data());
    return;
  }
  // A newer snapshot was recorded between the core's send and this Ready
  // (finish_snapshot ran in between); the log keeps only the newest. It is
  // of committed entries too, and a follower acknowledging it acknowledges
  // the older one's index as well.
  logger_->debug("{} sends its newer snapshot at {} in place of the one at {}", config_.id,
                 metadata.index(), message.snapshot().metadata().index());
  raftpb::Message newer = message;
  *newer.mutable_snapshot()->mutable_metadata() = std::move(metadata);
  env_.send_snapshot(newer, log_.snapshot_data());
}

void Node::write_commit(const raftpb::HardState& hard_state) {
  Status status = log_.save(&hard_state, {}, /*sync=*/false);
  FL_CHECK(status.ok(), "{} cannot persist hard state: {}", config_.id, status.to_string());
}

void Node::apply(const raftpb::Entry& entry) {
  if (entry.index() <= applied_index_) return;  // already in the snapshot
  applied_index_ = entry.index();
  members_.applied(entry, *raft_);
  applied_term_ = entry.term();
  std::optional<Caller> caller = requests_.take_caller(entry);
  if (entry.type() == raftpb::ENTRY_CONF_CHANGE) {
    raftpb::ConfChange change;
    if (change.ParseFromString(entry.data())) {
      env_.applied_conf_change(entry.index(), change, raft_->conf_state_at(entry.index()));
    }
    return;
  }
  if (entry.type() != raftpb::ENTRY_NORMAL || entry.data().empty()) return;
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
  requests_.answer_waits(result);
  if (caller) requests_.answer_applied(*caller, command.kind_case(), result);
  if (leader() && parsed) timers_.applied(env_.now(), command, result);
  if (parsed) lock_stats_.applied(env_.now(), command, result);
  env_.applied(entry.index(), command, result, leader());
}

void Node::on_read_state(const raft::ReadState& read_state) {
  reads_.confirmed(read_state, env_.now());
}

}  // namespace fencelock::server
