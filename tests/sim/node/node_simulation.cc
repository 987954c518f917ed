#include "tests/sim/node/node_simulation.h"

#include <fmt/format.h>
#include <spdlog/sinks/ostream_sink.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <memory>
#include <random>
#include <ranges>
#include <vector>

#include "common/check.h"
#include "common/logging.h"
#include "raft/random.h"
#include "server/node.h"
#include "server/wire.h"
#include "tests/sim/node/node_checker.h"
#include "tests/sim/node/sim_client.h"
#include "tests/sim/node/sim_clock.h"
#include "tests/sim/node/sim_disk.h"
#include "tests/sim/node/sim_operator.h"

namespace fencelock::sim {

namespace {

using raft::chance;
using raft::uniform_below;
using raft::uniform_between;
using std::chrono::microseconds;

constexpr Micros kMs = 1000;
constexpr Micros kChaosUs = 4000 * kMs;      // faults happen in [0, kChaosUs)
constexpr Micros kLivenessUs = 25'000 * kMs;  // the probe must be done this long after healing
constexpr int kMaxNodes = 5;
// A seed that changes membership may add this many nodes, each with an id
// never used before: ids nodes+1 .. nodes+kMaxFresh.
constexpr int kMaxFresh = 5;
constexpr int kMaxIds = kMaxNodes + kMaxFresh;
// The share of seeds (per million) whose operator changes membership.
constexpr uint64_t kMembershipPerMillion = 400'000;
// Principals: the clients' names, drawn per client; the share of seeds
// whose clients intrude on other principals' sessions, and of seeds with
// small per-principal bounds (and, in some of those, small cluster-wide
// ones) and values on acquires.
const char* const kPrincipals[] = {"", "alice", "bob", "carol"};
constexpr uint64_t kIntrusionPerMillion = 500'000;
constexpr uint64_t kBoundedPerMillion = 300'000;
// Steady clock rates: nodes and clients differ by less than the client's
// 5% drift bound (1.02 / 0.99 < 1.05).
constexpr double kMinNodeRate = 0.99;
constexpr double kMaxNodeRate = 1.02;
constexpr double kMinClientRate = 0.99;
constexpr double kMaxClientRate = 1.01;

std::string endpoint_of(uint64_t id) { return node_address(id); }

uint64_t id_of_endpoint(const std::string& endpoint) {
  if (endpoint.size() < 2 || endpoint[0] != 'n') return 0;
  return std::stoull(endpoint.substr(1));
}

double draw_rate(std::mt19937_64& rng, double lo, double hi) {
  return lo + (hi - lo) * static_cast<double>(uniform_below(rng, 1'000'001)) / 1'000'000.0;
}

class NodeSimulation;

// A node's Env for one life of the process: the simulator's clock of its
// machine, its event queue, disk, network and clients.
class SimEnv final : public server::Env {
 public:
  SimEnv(NodeSimulation& sim, uint64_t id, uint64_t life) : sim_(sim), id_(id), life_(life) {}
  server::SteadyTime now() const override;
  void post(std::function<void()> fn) override;
  void write(raft::WriteMode mode, size_t entries, microseconds hold, std::function<void()> write,
             std::function<void()> done) override;
  void send(const raftpb::Message& message) override;
  void send_snapshot(const raftpb::Message& message,
                     std::shared_ptr<const std::string> data) override;
  std::string peer_client_address(uint64_t id) const override { return endpoint_of(id); }
  bool peer_connected(uint64_t) const override { return true; }
  // The simulated network routes by id: there is nothing to dial.
  void set_peers(const std::map<uint64_t, std::string>&) override {}
  void respond(server::ConnectionId connection, const clientpb::Response& response) override;
  void stop() override {}
  void run_in_background(std::function<void()> work, std::function<void()> done) override;
  void applied(uint64_t index, const lockpb::Command& command, const sm::ApplyResult& result,
               bool leader) override;
  void applied_conf_change(uint64_t index, const raftpb::ConfChange& change,
                           const raftpb::ConfState& conf) override;
  void restored(const raftpb::SnapshotMetadata& metadata) override;

 private:
  NodeSimulation& sim_;
  uint64_t id_;
  uint64_t life_;
};

class NodeSimulation final : public ClientNet, public OperatorHost {
 public:
  explicit NodeSimulation(const NodeSimOptions& options);
  NodeSimResult run();

  // ClientNet and OperatorHost.
  Micros now() const override { return now_; }
  void at(Micros at, std::function<void()> fn) override;
  void connect(uint64_t client, const std::string& endpoint) override;
  void send(uint64_t connection, const clientpb::Request& request) override;
  void close(uint64_t connection) override;
  NodeChecker& checker() override { return checker_; }
  void trace(const std::string& line) override {
    if (options_.trace) *options_.trace << fmt::format("t={:>10.3f} {}\n", now_ / 1000.0, line);
  }

  // OperatorHost.
  void start_joiner(uint64_t id, const std::map<uint64_t, std::string>& peers) override;
  void removed(uint64_t id) override;
  void change_under_way(uint64_t subject) override;
  Verdict final_list(const clientpb::MemberListResult& list) override;

 private:
  friend class SimEnv;
  struct Member {
    uint64_t id = 0;
    // A process exists from its first start until it is discarded (removed
    // from the cluster and stopped for good); ids of nodes not yet added
    // have none.
    bool born = false;
    bool discarded = false;
    bool join = false;                       // started with NodeConfig::join
    std::map<uint64_t, std::string> peers;   // a joining node's NodeConfig::peers
    SimClock clock;
    std::unique_ptr<SimDisk> disk;
    std::unique_ptr<SimEnv> env;
    std::unique_ptr<server::Node> node;  // null while down
    uint64_t life = 0;
    Micros paused_until = 0;
    uint64_t led_term = 0;  // the last term it was seen leading
  };
  struct Connection {
    uint64_t client = 0;
    uint64_t member = 0;
    uint64_t life = 0;
    bool open = true;
    Micros last_to_node = 0;
    Micros last_to_client = 0;
  };

  Member& member(uint64_t id) { return members_[id - 1]; }
  SimClient& client(uint64_t id) { return *clients_[id - 1]; }
  bool tracing() const { return options_.trace != nullptr; }
  // The processes that exist (running or down), in id order.
  std::vector<Member*> processes();
  Member* leader_process();
  void observe_leader(Member& m);
  void discard(Member& m);
  // The state machine of node `id`, when it runs: its counters against a
  // recount (LockStateMachine::check_invariants) and its usage within the
  // Limits.
  void check_state(uint64_t id);

  // Runs `fn` on member `id` in life `life`, now or when a pause ends;
  // dropped if that life has ended.
  void on_member(uint64_t id, uint64_t life, std::function<void()> fn);
  void on_member_at(Micros at, uint64_t id, uint64_t life, std::function<void()> fn);
  void start_member(Member& m);
  void tick(uint64_t id, uint64_t life);
  // Crashes `m` as `how`, or as a process crash or power loss at random.
  void crash(Member& m, std::optional<CrashKind> how = std::nullopt);
  void drop_connections(uint64_t member, std::optional<uint64_t> client, Micros after);
  Micros link_delay();
  // Returns whether the message is on its way (not dropped or blocked).
  bool send_peer(const raftpb::Message& message);
  void deliver_peer(Member& m, const raftpb::Message& message);
  void respond(uint64_t member, uint64_t life, server::ConnectionId connection,
               const clientpb::Response& response);
  void fault();
  // Cuts node `id` off from every other process, both ways.
  void isolate(uint64_t id, const char* who = "");
  void heal();

  NodeSimOptions options_;
  std::mt19937_64 rng_;
  NodeChecker checker_;
  std::map<std::pair<Micros, uint64_t>, std::function<void()>> queue_;
  uint64_t next_seq_ = 0;
  Micros now_ = 0;

  server::NodeConfig config_;  // shared settings; id, seed and peer set per member
  uint64_t keep_entries_ = 0;
  std::vector<Member> members_;  // by id - 1, every id the seed may use
  // The workload's clients (ids 1..client_count_), the probe, then the
  // operator's client when membership changes.
  std::vector<std::unique_ptr<SimClient>> clients_;
  size_t client_count_ = 0;
  bool membership_ = false;
  bool busy_operator_ = false;  // MembershipMode::kEvery
  std::unique_ptr<SimOperator> operator_;
  SimClient* operator_client_ = nullptr;
  std::vector<std::string> locks_;
  std::map<uint64_t, Connection> connections_;
  uint64_t next_connection_ = 1;

  bool intrusion_ = false;
  bool bounded_ = false;

  bool blocked_[kMaxIds + 1][kMaxIds + 1] = {};
  std::set<std::pair<uint64_t, uint64_t>> client_cut_;  // (client, member)
  uint64_t drop_per_million_ = 0;
  uint64_t duplicate_per_million_ = 0;
  Micros fsync_min_us_ = 200;
  Micros fsync_max_us_ = 2000;
  uint64_t faults_ = 0;
  bool healed_ = false;
  bool reported_peer_drop_ = false;
  Micros heal_time_ = 0;
  SimClient* probe_ = nullptr;
};

// --- SimEnv ------------------------------------------------------------------------

server::SteadyTime SimEnv::now() const { return sim_.member(id_).clock.steady(sim_.now_); }

void SimEnv::post(std::function<void()> fn) {
  sim_.on_member_at(sim_.now_, id_, life_, std::move(fn));
}

void SimEnv::write(raft::WriteMode mode, size_t entries, microseconds hold,
                   std::function<void()> write, std::function<void()> done) {
  Micros latency = uniform_between(sim_.rng_, sim_.fsync_min_us_, sim_.fsync_max_us_);
  if (mode == raft::WriteMode::kLazy) latency += sim_.member(id_).clock.real_span(hold);
  if (sim_.tracing()) {
    sim_.trace(fmt::format("node {} writes {} entries ({}) in {} us", id_, entries,
                           raft::write_mode_name(mode), latency));
  }
  sim_.on_member_at(sim_.now_ + latency, id_, life_, [write = std::move(write), done = std::move(done)] {
    write();
    done();
  });
}

void SimEnv::send(const raftpb::Message& message) { sim_.send_peer(message); }

void SimEnv::send_snapshot(const raftpb::Message& message, std::shared_ptr<const std::string> data) {
  // One message in the simulated network, whole; the sender hears whether
  // it got through about when a real stream's status would come back.
  raftpb::Message whole = message;
  whole.mutable_snapshot()->set_data(*data);
  const bool sent = sim_.send_peer(whole);
  const uint64_t to = message.to();
  sim_.on_member_at(sim_.now_ + 2 * sim_.link_delay(), id_, life_, [this, to, sent] {
    sim_.member(id_).node->report_snapshot(to, sent);
  });
}

void SimEnv::run_in_background(std::function<void()> work, std::function<void()> done) {
  // Later on the loop, as if on another thread: the node goes on applying
  // (and may install a newer snapshot) meanwhile.
  Micros latency = uniform_between(sim_.rng_, sim_.fsync_min_us_, 300 * kMs);
  if (sim_.tracing()) sim_.trace(fmt::format("node {} takes a snapshot in {} us", id_, latency));
  sim_.on_member_at(sim_.now_ + latency, id_, life_,
                    [work = std::move(work), done = std::move(done)] {
                      work();
                      done();
                    });
}

void SimEnv::respond(server::ConnectionId connection, const clientpb::Response& response) {
  sim_.respond(id_, life_, connection, response);
}

void SimEnv::applied(uint64_t index, const lockpb::Command& command, const sm::ApplyResult& result,
                     bool leader) {
  if (sim_.tracing()) {
    sim_.trace(fmt::format("node {} applies {}{}: {} -> {}", id_, index, leader ? " (leader)" : "",
                           command.ShortDebugString(), result.status.to_string()));
  }
  sim_.checker_.applied(id_, index, command, result, static_cast<double>(sim_.now_));
  sim_.check_state(id_);
}

void SimEnv::applied_conf_change(uint64_t index, const raftpb::ConfChange& change,
                                 const raftpb::ConfState& conf) {
  if (sim_.tracing()) {
    sim_.trace(fmt::format("node {} applies {}: {} of node {} -> voters {} learners {}", id_, index,
                           raftpb::ConfChange::Type_Name(change.type()), change.node_id(),
                           fmt::join(conf.voters(), ","), fmt::join(conf.learners(), ",")));
  }
  sim_.checker_.conf_change_applied(id_, index, change, conf, static_cast<double>(sim_.now_));
}

void SimEnv::restored(const raftpb::SnapshotMetadata& metadata) {
  sim_.checker_.snapshot_restored(id_, metadata.index(), metadata.conf_state(),
                                  static_cast<double>(sim_.now_));
  sim_.check_state(id_);
}

// --- The simulation ------------------------------------------------------------------

NodeSimulation::NodeSimulation(const NodeSimOptions& options)
    : options_(options),
      rng_(options.seed * 0xA24BAED4963EE407ULL + static_cast<uint64_t>(options.nodes)),
      checker_(kMaxNodeRate) {
  FL_CHECK(options.nodes >= 1 && options.nodes <= kMaxNodes, "nodes must be 1..{}", kMaxNodes);
  config_.cluster_id = "sim";
  config_.tick_ms = 10;
  config_.election_ticks = 10;
  config_.heartbeat_ticks = static_cast<int>(uniform_between(rng_, 1, 2));
  const uint32_t windows[] = {0, 1000, 3000};
  config_.lazy_window_us = windows[uniform_below(rng_, 3)];
  config_.snapshot_every = uniform_between(rng_, 20, 300);
  config_.test_only_inject_bug = options.bug;
  keep_entries_ = uniform_between(rng_, 0, 20);
  const uint64_t drops[] = {0, 10'000, 50'000};
  drop_per_million_ = drops[uniform_below(rng_, 3)];
  duplicate_per_million_ = chance(rng_, 500'000) ? 20'000 : 0;
  fsync_min_us_ = uniform_between(rng_, 100, 500);
  fsync_max_us_ = fsync_min_us_ + uniform_between(rng_, 100, 3000);

  // Membership change, in some seeds, is drawn from a generator of its own:
  // the seeds without it run exactly as they did before it existed.
  std::mt19937_64 membership_rng(options.seed * 0x9E3779B97F4A7C15ULL +
                                 static_cast<uint64_t>(options.nodes) + 17);
  membership_ = chance(membership_rng, kMembershipPerMillion);
  if (options.membership != MembershipMode::kSome) {
    membership_ = options.membership == MembershipMode::kEvery;
  }
  busy_operator_ = options.membership == MembershipMode::kEvery;

  // Each founding node's first start writes the bootstrap configuration
  // (server::Node); a node added later joins with an empty log.
  raftpb::ConfState conf;
  for (int i = 1; i <= options.nodes; ++i) {
    config_.peers[static_cast<uint64_t>(i)] = endpoint_of(static_cast<uint64_t>(i));
  }
  members_.resize(static_cast<size_t>(options.nodes + (membership_ ? kMaxFresh : 0)));
  for (size_t i = 0; i < members_.size(); ++i) members_[i].id = i + 1;
  for (int i = 0; i < options.nodes; ++i) {
    Member& m = members_[static_cast<size_t>(i)];
    m.born = true;
    m.clock.rate = draw_rate(rng_, kMinNodeRate, kMaxNodeRate);
    m.clock.steady_base_us = static_cast<int64_t>(uniform_below(rng_, 1'000'000'000));
    m.disk = std::make_unique<SimDisk>(m.id, conf, keep_entries_);
  }
  size_t lock_count = uniform_between(rng_, 1, 3);
  for (size_t i = 0; i < lock_count; ++i) locks_.push_back(fmt::format("jobs/{}", i));
  if (chance(rng_, 400'000)) {
    locks_.push_back(fmt::format("{}0", kSemaphorePrefix));
    checker_.set_semaphore(locks_.back(), kSemaphoreHolders);
  }
  size_t client_count = uniform_between(rng_, 2, 6);
  client_count_ = client_count;
  // Principals, intrusions and bounds come from a generator of their own,
  // like membership: the other draws of a seed stay as they were.
  std::mt19937_64 principal_rng(options.seed * 0xD1B54A32D192ED03ULL +
                                static_cast<uint64_t>(options.nodes) + 29);
  intrusion_ = chance(principal_rng, kIntrusionPerMillion);
  bounded_ = chance(principal_rng, kBoundedPerMillion);
  size_t max_value_bytes = 0;
  if (bounded_) {
    sm::Limits& limits = config_.limits;
    limits.max_sessions_per_principal = uniform_between(principal_rng, 1, 3);
    limits.max_holders_and_waiters_per_principal = uniform_between(principal_rng, 1, 4);
    limits.max_value_bytes_per_principal = uniform_between(principal_rng, 100, 1500);
    if (chance(principal_rng, 300'000)) {
      limits.max_holders_and_waiters = uniform_between(principal_rng, 2, 8);
      limits.max_value_bytes = uniform_between(principal_rng, 500, 4000);
    }
    max_value_bytes = uniform_between(principal_rng, 50, 600);
  }
  // Every address the cluster may ever use: nodes added later included,
  // as a DNS name or a list kept by the deployment would name them.
  std::vector<std::string> endpoints;
  for (auto& m : members_) endpoints.push_back(endpoint_of(m.id));
  for (size_t i = 0; i <= client_count; ++i) {  // the last one is the probe
    SimClientOptions client_options;
    client_options.id = i + 1;
    client_options.clock.rate = draw_rate(rng_, kMinClientRate, kMaxClientRate);
    client_options.clock.steady_base_us = static_cast<int64_t>(uniform_below(rng_, 1'000'000'000));
    client_options.seed = rng_();
    client_options.endpoints = endpoints;
    // Clients start at different members.
    std::rotate(client_options.endpoints.begin(),
                client_options.endpoints.begin() + static_cast<long>(i % endpoints.size()),
                client_options.endpoints.end());
    client_options.locks = locks_;
    client_options.probe = i == client_count;
    client_options.principal = kPrincipals[uniform_below(principal_rng, std::size(kPrincipals))];
    client_options.side_seed = principal_rng();
    client_options.intrude = intrusion_ && !client_options.probe;
    if (!client_options.probe) client_options.max_value_bytes = max_value_bytes;
    clients_.push_back(std::make_unique<SimClient>(*this, client_options));
  }
  probe_ = clients_.back().get();

  if (membership_) {
    SimClientOptions admin;
    admin.id = clients_.size() + 1;
    admin.clock.rate = draw_rate(membership_rng, kMinClientRate, kMaxClientRate);
    admin.clock.steady_base_us = static_cast<int64_t>(uniform_below(membership_rng, 1'000'000'000));
    admin.seed = membership_rng();
    admin.endpoints = endpoints;
    admin.locks = locks_;
    clients_.push_back(std::make_unique<SimClient>(*this, admin));
    operator_client_ = clients_.back().get();

    SimOperatorOptions ops;
    ops.seed = membership_rng();
    for (int i = 1; i <= options.nodes; ++i) ops.founders.push_back(static_cast<uint64_t>(i));
    for (int i = 1; i <= kMaxFresh; ++i) ops.fresh_ids.push_back(static_cast<uint64_t>(options.nodes + i));
    // Mostly 3 voters or more; now and then down to 2, or to 1.
    uint64_t roll = uniform_below(membership_rng, 100);
    ops.min_voters = roll < 70 ? 3 : roll < 85 ? 2 : 1;
    ops.max_voters = kMaxNodes;
    ops.start_at = uniform_between(membership_rng, 100, 1500) * kMs;
    if (busy_operator_) {
      ops.pause_min_ms = 0;
      ops.pause_span_ms = 100;
    }
    operator_ = std::make_unique<SimOperator>(*this, *operator_client_, ops);
  }
}

std::vector<NodeSimulation::Member*> NodeSimulation::processes() {
  std::vector<Member*> out;
  for (auto& m : members_) {
    if (m.born && !m.discarded) out.push_back(&m);
  }
  return out;
}

NodeSimulation::Member* NodeSimulation::leader_process() {
  for (auto& m : members_) {
    if (m.node && m.node->raft().role() == raft::Role::kLeader) return &m;
  }
  return nullptr;
}

void NodeSimulation::observe_leader(Member& m) {
  const raft::RawNode& raft = m.node->raft();
  if (raft.role() != raft::Role::kLeader || raft.term() == m.led_term) return;
  m.led_term = raft.term();
  checker_.leading(m.id, raft.term(), raft.voters().contains(m.id), raft.removal_pending(),
                   static_cast<double>(now_));
}

void NodeSimulation::check_state(uint64_t id) {
  Member& m = member(id);
  if (!m.node || !checker_.ok()) return;
  const sm::LockStateMachine& state = m.node->state();
  if (auto broken = state.check_invariants()) {
    checker_.fail(fmt::format("state machine of node {} at index {}: {}", id,
                              state.applied_index(), *broken));
    return;
  }
  const sm::Limits& limits = config_.limits;
  for (const auto& [principal, usage] : state.usage_by_principal()) {
    if (usage.sessions > limits.max_sessions_per_principal ||
        usage.holders_and_waiters > limits.max_holders_and_waiters_per_principal ||
        usage.value_bytes > limits.max_value_bytes_per_principal) {
      checker_.fail(fmt::format("limits: node {} at index {}: principal \"{}\" has {} sessions, "
                                "{} holders and waiters, {} value bytes",
                                id, state.applied_index(), principal, usage.sessions,
                                usage.holders_and_waiters, usage.value_bytes));
      return;
    }
  }
  const sm::Usage total = state.total_usage();
  if (total.holders_and_waiters > limits.max_holders_and_waiters ||
      total.value_bytes > limits.max_value_bytes) {
    checker_.fail(fmt::format("limits: node {} at index {}: the cluster has {} holders and "
                              "waiters, {} value bytes",
                              id, state.applied_index(), total.holders_and_waiters,
                              total.value_bytes));
  }
}

void NodeSimulation::at(Micros at, std::function<void()> fn) {
  queue_.emplace(std::make_pair(std::max(at, now_), next_seq_++), std::move(fn));
}

void NodeSimulation::on_member_at(Micros at_time, uint64_t id, uint64_t life,
                                  std::function<void()> fn) {
  at(at_time, [this, id, life, fn = std::move(fn)]() mutable { on_member(id, life, std::move(fn)); });
}

void NodeSimulation::on_member(uint64_t id, uint64_t life, std::function<void()> fn) {
  Member& m = member(id);
  if (!m.node || m.life != life) return;
  if (m.paused_until > now_) {
    // Held, in order, until the pause ends.
    on_member_at(m.paused_until, id, life, std::move(fn));
    return;
  }
  fn();
  if (m.node && m.life == life) observe_leader(m);
}

void NodeSimulation::start_member(Member& m) {
  ++m.life;
  server::NodeConfig config = config_;
  config.id = m.id;
  config.client_addr = endpoint_of(m.id);
  config.seed = rng_() | 1;
  if (m.join) {
    config.join = true;
    config.peers = m.peers;
  }
  m.env = std::make_unique<SimEnv>(*this, m.id, m.life);
  m.node = std::make_unique<server::Node>(*m.env, *m.disk, config);
  m.paused_until = 0;
  trace(fmt::format("node {} starts (life {}{}): term {}, log {}..{}", m.id, m.life,
                    m.join ? ", joining" : "", m.node->raft().term(), m.disk->first_index(),
                    m.disk->last_index()));
  if (raftpb::SnapshotMetadata snapshot = m.disk->snapshot().metadata(); snapshot.index() > 0) {
    checker_.snapshot_restored(m.id, snapshot.index(), snapshot.conf_state(),
                               static_cast<double>(now_));
  }
  m.node->start();
  uint64_t id = m.id;
  uint64_t life = m.life;
  on_member_at(now_ + uniform_below(rng_, config_.tick_ms * kMs), id, life,
               [this, id, life] { tick(id, life); });
}

void NodeSimulation::tick(uint64_t id, uint64_t life) {
  Member& m = member(id);
  m.node->on_tick();
  if (!m.node || m.life != life) return;
  Micros period = m.clock.real_span(microseconds(config_.tick_ms * kMs));
  on_member_at(now_ + period, id, life, [this, id, life] { tick(id, life); });
}

void NodeSimulation::crash(Member& m, std::optional<CrashKind> how) {
  CrashKind kind = how ? *how : chance(rng_, 500'000) ? CrashKind::kProcess : CrashKind::kPowerLoss;
  size_t lost = m.disk->crash(kind, rng_);
  trace(fmt::format("crash node {} ({}, {} unsynced writes lost)", m.id,
                    kind == CrashKind::kProcess ? "process" : "power loss", lost));
  m.node.reset();
  m.env.reset();
  drop_connections(m.id, std::nullopt, uniform_between(rng_, 100, 2000));
}

void NodeSimulation::drop_connections(uint64_t member_id, std::optional<uint64_t> only_client,
                                      Micros after) {
  for (auto& [id, connection] : connections_) {
    if (!connection.open || connection.member != member_id) continue;
    if (only_client && connection.client != *only_client) continue;
    connection.open = false;
    uint64_t conn = id;
    uint64_t client_id = connection.client;
    uint64_t life = connection.life;
    at(now_ + after, [this, conn, client_id] { client(client_id).connection_lost(conn); });
    on_member_at(now_ + after, member_id, life, [this, member_id, conn] {
      member(member_id).node->on_connection_closed(conn);
    });
  }
}

Micros NodeSimulation::link_delay() {
  return chance(rng_, 50'000) ? uniform_between(rng_, 1000, 20'000) : uniform_between(rng_, 50, 400);
}

bool NodeSimulation::send_peer(const raftpb::Message& message) {
  uint64_t from = message.from();
  uint64_t to = message.to();
  // Routed by id to the process that has it now: none for an id not yet
  // added or a node discarded after its removal.
  if (to == 0 || to > members_.size() || !member(to).born || member(to).discarded) return false;
  if (!healed_) {
    if (blocked_[from][to] || chance(rng_, drop_per_million_)) return false;
    if (chance(rng_, duplicate_per_million_)) {
      at(now_ + link_delay(), [this, message] {
        Member& m = member(message.to());
        if (m.node) on_member(m.id, m.life, [this, &m, message] { deliver_peer(m, message); });
      });
    }
  }
  at(now_ + link_delay(), [this, message] {
    Member& m = member(message.to());
    if (m.node) on_member(m.id, m.life, [this, &m, message] { deliver_peer(m, message); });
  });
  return true;
}

void NodeSimulation::deliver_peer(Member& m, const raftpb::Message& message) {
  m.node->on_peer_message(message);
  // The server's check (server/peer_guard.h) must never drop what a
  // correct node sent; a message it defers is counted when it runs.
  if (m.node && m.node->peer_message_stats().dropped > 0 && !reported_peer_drop_) {
    reported_peer_drop_ = true;
    checker_.fail(fmt::format("node {} dropped a peer message from a correct node (the last: {} "
                              "from {})",
                              m.id, raftpb::MessageType_Name(message.type()), message.from()));
  }
}

void NodeSimulation::connect(uint64_t client_id, const std::string& endpoint) {
  uint64_t member_id = id_of_endpoint(endpoint);
  at(now_ + uniform_between(rng_, 100, 500), [this, client_id, member_id, endpoint] {
    bool reachable = member_id >= 1 && member_id <= members_.size() && member(member_id).node &&
                     !client_cut_.contains({client_id, member_id});
    if (!reachable) {
      client(client_id).connect_failed();
      return;
    }
    uint64_t conn = next_connection_++;
    connections_[conn] = Connection{client_id, member_id, member(member_id).life, true, now_, now_};
    client(client_id).connected(conn, endpoint);
  });
}

void NodeSimulation::send(uint64_t connection, const clientpb::Request& request) {
  Connection& c = connections_.at(connection);
  if (!c.open) return;
  // TCP: in order, nothing lost while the connection lives.
  c.last_to_node = std::max(now_ + link_delay(), c.last_to_node + 1);
  on_member_at(c.last_to_node, c.member, c.life, [this, connection, request] {
    Connection& conn = connections_.at(connection);
    if (conn.open) {
      member(conn.member).node->on_request(connection, client(conn.client).principal(), request);
    }
  });
}

void NodeSimulation::close(uint64_t connection) {
  Connection& c = connections_.at(connection);
  if (!c.open) return;
  c.open = false;
  uint64_t member_id = c.member;
  on_member_at(now_ + link_delay(), c.member, c.life, [this, member_id, connection] {
    member(member_id).node->on_connection_closed(connection);
  });
}

void NodeSimulation::respond(uint64_t member_id, uint64_t life, server::ConnectionId connection,
                             const clientpb::Response& response) {
  if (response.code() == lockpb::OK && !response.has_cluster_status()) {
    checker_.answered_ok(member_id, static_cast<double>(now_));
  }
  auto it = connections_.find(connection);
  if (it == connections_.end() || !it->second.open || it->second.life != life ||
      it->second.member != member_id) {
    return;
  }
  Connection& c = it->second;
  c.last_to_client = std::max(now_ + link_delay(), c.last_to_client + 1);
  uint64_t client_id = c.client;
  at(c.last_to_client, [this, client_id, connection, response] {
    if (connections_.at(connection).open) client(client_id).response(connection, response);
  });
}

void NodeSimulation::fault() {
  ++faults_;
  uint64_t roll = uniform_below(rng_, 100);
  std::vector<Member*> procs = processes();
  size_t count = procs.size();
  auto random_member = [&]() -> Member& { return *procs[uniform_below(rng_, count)]; };
  if (roll < 12) {
    if (count < 2) return;  // one process left: nothing to split
    std::set<uint64_t> side;
    while (side.empty() || side.size() == count) {
      side.clear();
      for (Member* m : procs) {
        if (chance(rng_, 500'000)) side.insert(m->id);
      }
    }
    for (Member* a : procs) {
      for (Member* b : procs) blocked_[a->id][b->id] = side.contains(a->id) != side.contains(b->id);
    }
    trace(fmt::format("partition {} | rest", fmt::join(side, ",")));
  } else if (roll < 18) {
    uint64_t a = random_member().id;
    uint64_t b = random_member().id;
    if (a != b) {
      blocked_[a][b] = true;
      trace(fmt::format("one-way partition: {} cannot reach {}", a, b));
    }
  } else if (roll < 26) {
    isolate(random_member().id);
  } else if (roll < 40) {
    for (auto& row : blocked_) {
      for (bool& cell : row) cell = false;
    }
    client_cut_.clear();
    trace("heal network");
  } else if (roll < 50) {
    Member& m = random_member();
    if (m.node) crash(m);
  } else if (roll < 62) {
    for (Member* m : procs) {
      if (!m->node) {
        trace(fmt::format("restart node {}", m->id));
        start_member(*m);
        break;
      }
    }
  } else if (roll < 70) {
    Member& m = random_member();
    if (m.node && m.paused_until <= now_) {
      Micros pause = chance(rng_, 300'000) ? uniform_between(rng_, 500, 2500) * kMs
                                           : uniform_between(rng_, 20, 300) * kMs;
      m.paused_until = now_ + pause;
      trace(fmt::format("pause node {} for {} ms", m.id, pause / kMs));
    }
  } else if (roll < 76) {
    // A long pause of the leader: its steady clock runs on, and so do its
    // followers' election timers.
    for (Member* m : procs) {
      if (!m->node || m->node->raft().role() != raft::Role::kLeader || m->paused_until > now_) continue;
      m->paused_until = now_ + uniform_between(rng_, 100, 1500) * kMs;
      trace(fmt::format("pause the leader {} for {} ms", m->id, (m->paused_until - now_) / kMs));
      break;
    }
  } else if (roll < 84) {
    // A workload client, or (when membership changes) the operator.
    uint64_t client_id = uniform_between(rng_, 1, client_count_ + (operator_client_ ? 1 : 0));
    if (client_id > client_count_) client_id = operator_client_->id();
    uint64_t member_id = random_member().id;
    client_cut_.insert({client_id, member_id});
    drop_connections(member_id, client_id, uniform_between(rng_, 1, 300) * kMs);
    trace(fmt::format("cut client {} from node {}", client_id, member_id));
  } else if (roll < 87) {
    const uint64_t drops[] = {0, 10'000, 50'000, 200'000};
    drop_per_million_ = drops[uniform_below(rng_, 4)];
    trace(fmt::format("peer message loss now {} per million", drop_per_million_));
  } else if (roll < 90) {
    // The whole room loses power: every node at once.
    trace("power failure: every node goes down");
    for (Member* m : procs) {
      if (m->node) crash(*m, CrashKind::kPowerLoss);
    }
  } else {
    // The leader fails: crashes, or is cut off.
    for (Member* m : procs) {
      if (!m->node || m->node->raft().role() != raft::Role::kLeader) continue;
      if (chance(rng_, 500'000)) {
        trace(fmt::format("the leader {} crashes", m->id));
        crash(*m);
      } else {
        isolate(m->id, "the leader ");
      }
      break;
    }
  }
}

void NodeSimulation::isolate(uint64_t id, const char* who) {
  for (Member* b : processes()) {
    blocked_[id][b->id] = id != b->id;
    blocked_[b->id][id] = id != b->id;
  }
  trace(fmt::format("isolate {}{}", who, id));
}

void NodeSimulation::heal() {
  healed_ = true;
  heal_time_ = now_;
  trace("heal everything: network repaired, nodes restart and resume, clients wind down");
  for (auto& row : blocked_) {
    for (bool& cell : row) cell = false;
  }
  client_cut_.clear();
  for (Member* m : processes()) {
    if (!m->node) start_member(*m);
    m->paused_until = std::min(m->paused_until, now_);
  }
  for (auto& c : clients_) {
    if (c.get() != probe_ && c.get() != operator_client_) c->wind_down();
  }
  at(now_ + uniform_between(rng_, 0, 500) * kMs, [this] { probe_->start(); });
  if (operator_) operator_->heal();
}

// --- Membership: the operator's hands on the machines --------------------------------

void NodeSimulation::start_joiner(uint64_t id, const std::map<uint64_t, std::string>& peers) {
  Member& m = member(id);
  FL_CHECK(!m.born, "node {} started twice", id);
  m.born = true;
  m.join = true;
  m.peers = peers;
  m.clock.rate = draw_rate(rng_, kMinNodeRate, kMaxNodeRate);
  m.clock.steady_base_us = static_cast<int64_t>(uniform_below(rng_, 1'000'000'000));
  m.disk = std::make_unique<SimDisk>(m.id, raftpb::ConfState(), keep_entries_);
  trace(fmt::format("new node {} (clock rate {:.4f}) joins, told of {}", id, m.clock.rate,
                    fmt::join(std::views::keys(peers), ",")));
  start_member(m);
}

void NodeSimulation::discard(Member& m) {
  if (m.discarded) return;
  trace(fmt::format("node {} is stopped and discarded", m.id));
  if (m.node) crash(m, CrashKind::kProcess);
  m.discarded = true;
}

void NodeSimulation::removed(uint64_t id) {
  Member& m = member(id);
  if (!m.born) return;
  if (chance(rng_, 500'000)) {
    discard(m);
    return;
  }
  // Left running a while: it must stop serving and leave the cluster be.
  Micros keep = uniform_between(rng_, 200, 3000) * kMs;
  trace(fmt::format("removed node {} keeps running for {} ms", id, keep / kMs));
  at(now_ + keep, [this, id] { discard(member(id)); });
}

void NodeSimulation::change_under_way(uint64_t subject) {
  if (healed_ || !chance(rng_, busy_operator_ ? 600'000 : 300'000)) return;
  // Often within the few milliseconds the change takes to commit.
  Micros when = now_ + (chance(rng_, 500'000) ? uniform_below(rng_, 3 * kMs)
                                              : uniform_below(rng_, 30) * kMs);
  uint64_t kind = uniform_below(rng_, 100);
  at(when, [this, subject, kind] {
    if (healed_) return;
    ++faults_;
    Member* leader = leader_process();
    Member& target = member(subject);
    if (kind < 30 && leader) {
      trace(fmt::format("during a change of node {}: the leader {} crashes", subject, leader->id));
      crash(*leader);
    } else if (kind < 55 && target.node) {
      trace(fmt::format("during its change: node {} crashes", subject));
      crash(target);
    } else if (kind < 75 && leader) {
      isolate(leader->id, "(during a change) the leader ");
    } else if (kind < 90 && leader && leader->paused_until <= now_) {
      leader->paused_until = now_ + uniform_between(rng_, 50, 800) * kMs;
      trace(fmt::format("during a change of node {}: pause the leader {} for {} ms", subject,
                        leader->id, (leader->paused_until - now_) / kMs));
    } else {
      fault();
      --faults_;
    }
  });
}

OperatorHost::Verdict NodeSimulation::final_list(const clientpb::MemberListResult& list) {
  std::set<uint64_t> voters;
  std::set<uint64_t> learners;
  for (const auto& m : list.members()) (m.learner() ? learners : voters).insert(m.id());
  trace(fmt::format("final member list: voters {} learners {}, leader {}, conf index {}{}",
                    fmt::join(voters, ","), fmt::join(learners, ","), list.leader_id(),
                    list.conf_index(), list.conf_committed() ? "" : " (not committed)"));
  if (!list.conf_committed()) return Verdict::kAskAgain;
  // Every member the list or the operator names must have applied the
  // listed configuration (or, if the list is stale, a later one).
  std::set<uint64_t> ids = voters;
  ids.insert(learners.begin(), learners.end());
  ids.insert(operator_->voters().begin(), operator_->voters().end());
  ids.insert(operator_->learners().begin(), operator_->learners().end());
  std::optional<std::string> mismatch;
  for (uint64_t id : ids) {
    if (id == 0 || id > members_.size()) {
      checker_.fail(fmt::format("membership: the final member list names node {}, never started", id));
      return Verdict::kDone;
    }
    Member& m = member(id);
    if (!m.node || m.discarded) {
      checker_.fail(fmt::format("membership: node {} is a member after healing but has no process",
                                id));
      return Verdict::kDone;
    }
    const NodeChecker::AppliedConf* applied = checker_.applied_conf(id);
    if (m.node->applied_index() < list.conf_index() || applied == nullptr) return Verdict::kWait;
    std::set<uint64_t> applied_voters(applied->conf.voters().begin(), applied->conf.voters().end());
    std::set<uint64_t> applied_learners(applied->conf.learners().begin(),
                                        applied->conf.learners().end());
    if (applied_voters == voters && applied_learners == learners) continue;
    // A later configuration than the list's: the answer came from a leader
    // about to learn it was deposed. Ask again.
    if (applied->index > list.conf_index()) return Verdict::kAskAgain;
    if (!mismatch) {
      mismatch = fmt::format("node {} applied voters {{{}}} learners {{{}}} (index {})", id,
                             fmt::join(applied_voters, ","), fmt::join(applied_learners, ","),
                             applied->index);
    }
  }
  if (mismatch) {
    checker_.fail(fmt::format("membership: the final member list (conf index {}) has voters {{{}}} "
                              "learners {{{}}}, but {}",
                              list.conf_index(), fmt::join(voters, ","), fmt::join(learners, ","),
                              *mismatch));
    return Verdict::kDone;
  }
  if (voters != operator_->voters() || learners != operator_->learners()) {
    checker_.fail(fmt::format("membership: the final member list has voters {{{}}} learners {{{}}}, "
                              "but the changes acknowledged to the operator make voters {{{}}} "
                              "learners {{{}}}",
                              fmt::join(voters, ","), fmt::join(learners, ","),
                              fmt::join(operator_->voters(), ","),
                              fmt::join(operator_->learners(), ",")));
  }
  return Verdict::kDone;
}

NodeSimResult NodeSimulation::run() {
  trace(fmt::format("seed {} nodes {}: heartbeat_ticks={} lazy_window_us={} snapshot_every={} "
                    "keep_entries={} locks={} clients={} drop={} duplicate={} fsync_us={}..{} bug={}{}",
                    options_.seed, options_.nodes, config_.heartbeat_ticks, config_.lazy_window_us,
                    config_.snapshot_every, keep_entries_, locks_.size(), client_count_,
                    drop_per_million_, duplicate_per_million_, fsync_min_us_, fsync_max_us_,
                    static_cast<int>(options_.bug), membership_ ? " membership=on" : ""));
  for (size_t i = 0; i < clients_.size(); ++i) {
    trace(fmt::format("client {}: principal \"{}\"", clients_[i]->id(), clients_[i]->principal()));
  }
  if (intrusion_) trace("clients intrude on other principals' sessions");
  if (bounded_) {
    const sm::Limits& l = config_.limits;
    trace(fmt::format("bounds per principal: {} sessions, {} holders and waiters, {} value bytes; "
                      "cluster: {} holders and waiters, {} value bytes",
                      l.max_sessions_per_principal, l.max_holders_and_waiters_per_principal,
                      l.max_value_bytes_per_principal, l.max_holders_and_waiters,
                      l.max_value_bytes));
  }
  for (Member* m : processes()) {
    trace(fmt::format("node {}: clock rate {:.4f}", m->id, m->clock.rate));
    start_member(*m);
  }
  for (size_t i = 0; i < client_count_; ++i) {
    SimClient* c = clients_[i].get();
    at(uniform_below(rng_, 300) * kMs, [c] { c->start(); });
  }
  if (operator_) operator_->start();
  std::function<void()> next_fault = [this, &next_fault] {
    if (healed_) return;
    fault();
    at(now_ + uniform_between(rng_, 20, 300) * kMs, next_fault);
  };
  at(uniform_between(rng_, 100, 400) * kMs, next_fault);

  NodeSimResult result;
  while (!queue_.empty() && checker_.ok()) {
    auto handle = queue_.extract(queue_.begin());
    now_ = handle.key().first;
    if (!healed_ && now_ >= kChaosUs) heal();
    if (healed_ && now_ > heal_time_ + kLivenessUs) {
      checker_.fail(fmt::format("liveness: {} within {} ms of healing",
                                !probe_->probe_done() ? "the probe did not acquire every lock"
                                                      : "the operator did not settle the membership",
                                kLivenessUs / kMs));
      break;
    }
    handle.mapped()();
    if (probe_->probe_done() && (!operator_ || operator_->done())) break;
  }
  result.ok = checker_.ok();
  if (!result.ok) {
    result.violation = *checker_.violation();
    trace("VIOLATION: " + result.violation);
    if (tracing()) {
      for (auto& m : members_) {
        if (!m.node) continue;
        for (const auto& lock : locks_) {
          auto info = m.node->state().describe(lock);
          trace(fmt::format("node {} ({}) sees {}: {}", m.id, raft::role_name(m.node->raft().role()),
                            lock, info.ok() ? server::to_wire(info.value()).ShortDebugString() : info.status().to_string()));
        }
      }
    }
  }
  result.intrusion = intrusion_;
  result.bounded = bounded_;
  for (auto& c : clients_) result.intrusions += c->intrusions();
  result.denied = checker_.denied();
  result.exhausted = checker_.exhausted();
  result.grants = checker_.grants();
  result.client_grants = checker_.client_grants();
  result.expiries = checker_.expiries();
  for (auto& c : clients_) result.operations += c->operations();
  result.faults = faults_;
  result.end_time_ms = now_ / kMs;
  if (operator_) {
    result.membership = true;
    result.adds = operator_->adds();
    result.promotes = operator_->promotes();
    result.removes = operator_->removes();
    result.leader_removals = operator_->leader_removals();
  }
  return result;
}

}  // namespace

NodeSimResult run_node_simulation(const NodeSimOptions& options) {
  set_log_level(options.trace ? "debug" : "off");
  // While traced, the nodes' own log lines join the trace, without
  // wall-clock stamps, so two traces of one seed compare byte for byte.
  std::vector<std::pair<std::shared_ptr<spdlog::logger>, std::vector<spdlog::sink_ptr>>> saved;
  if (options.trace) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(*options.trace);
    sink->set_pattern("           [%n] %v");
    for (const char* name : {"node", "raft"}) {
      auto logger = get_logger(name);
      saved.emplace_back(logger, logger->sinks());
      logger->sinks().assign({sink});
    }
  }
  NodeSimResult result = NodeSimulation(options).run();
  for (auto& [logger, sinks] : saved) logger->sinks() = std::move(sinks);
  set_log_level("off");
  return result;
}

bool parse_membership_mode(const std::string& name, MembershipMode* mode) {
  if (name == "some") {
    *mode = MembershipMode::kSome;
  } else if (name == "every") {
    *mode = MembershipMode::kEvery;
  } else if (name == "none") {
    *mode = MembershipMode::kNone;
  } else {
    return false;
  }
  return true;
}

bool parse_node_bug(const std::string& name, server::InjectedBug* bug) {
  if (name == "none") {
    *bug = server::InjectedBug::kNone;
  } else if (name == "ack-before-sync") {
    *bug = server::InjectedBug::kAckBeforeSync;
  } else if (name == "expire-on-old-deadline") {
    *bug = server::InjectedBug::kExpireOnOldDeadline;
  } else if (name == "early-lock-delay") {
    *bug = server::InjectedBug::kEarlyLockDelay;
  } else if (name == "snapshot-latest-conf") {
    *bug = server::InjectedBug::kSnapshotLatestConf;
  } else {
    return false;
  }
  return true;
}

}  // namespace fencelock::sim
