#include "tests/sim/simulation.h"

#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <vector>

#include "common/check.h"
#include "raft/driver.h"
#include "raft/membership.h"
#include "raft/message_check.h"
#include "raft/memory_storage.h"
#include "raft/random.h"
#include "tests/sim/checker.h"

namespace fencelock::sim {

namespace {

using raft::chance;
using raft::uniform_below;
using raft::uniform_between;

constexpr uint64_t kTickMs = 10;
constexpr uint64_t kChaosMs = 3000;     // faults happen in [0, kChaosMs)
constexpr uint64_t kLivenessMs = 5000;  // after healing, progress must come within this
constexpr int kMaxNodes = 5;   // the first configuration's voters
constexpr uint64_t kMaxIds = 16;  // node ids of a run, joiners included; never reused

enum class EventKind {
  kTick,
  kDeliver,
  kFault,
  kPropose,
  kRead,
  kWriteDone,
  kCrash,
  kMembership,  // node 0: the periodic workload; node 1: one attempt, not repeated
  kDiscard,     // the node's removal committed: it goes away for good
};

struct Event {
  EventKind kind;
  uint64_t node = 0;
  raftpb::Message message;
  uint64_t incarnation = 0;  // kWriteDone, kCrash: the node's life it belongs to
};

class Simulation;

// A node's DriverHost: MemoryStorage as its disk, the simulated network,
// and a state machine that is a running hash of what it applied.
class SimHost final : public raft::DriverHost {
 public:
  SimHost(Simulation& sim, uint64_t id) : sim_(sim), id_(id) {}
  bool write(const raft::Ready& rd, raft::WriteMode mode) override;
  void write_commit(const raftpb::HardState& hard_state) override;
  void send(const raftpb::Message& message) override;
  void on_soft_state(const raft::SoftState& soft) override;
  void restore(const raftpb::Snapshot& snapshot) override;
  void apply(const raftpb::Entry& entry) override;
  void on_read_state(const raft::ReadState& read_state) override;
  void advanced() override;

  // The Ready whose write goes on (kWriteDone), while the driver holds it.
  const raft::Ready* in_flight = nullptr;

 private:
  Simulation& sim_;
  uint64_t id_;
};

struct SimNode {
  uint64_t id = 0;
  raft::MemoryStorage storage;
  std::unique_ptr<raft::RawNode> node;  // null while crashed
  std::unique_ptr<SimHost> host;
  std::unique_ptr<raft::Driver> driver;
  uint64_t sm_index = 0;             // state machine: last applied index
  uint64_t sm_hash = 0;              // and the running hash of everything applied
  // The server writes a hard state that only moves the commit index without
  // an fsync (DiskLog::must_sync); a machine crash can lose it, back to the
  // commit index of the last synced write.
  uint64_t synced_commit = 0;
  uint64_t incarnation = 0;  // counts starts, so a crashed life's events are dropped
  // Membership: a removed node's removal committed; a discarded node is
  // gone for good (never restarted, never reachable), its storage kept for
  // the checks.
  bool removed = false;
  bool discarded = false;
};

std::string describe(const raftpb::Message& m) {
  std::string out = fmt::format("{}->{} {} term={}", m.from(), m.to(),
                                raftpb::MessageType_Name(m.type()), m.term());
  switch (m.type()) {
    case raftpb::MSG_APP:
      out += fmt::format(" index={} log_term={} entries={} commit={}", m.index(), m.log_term(),
                         m.entries_size(), m.commit());
      break;
    case raftpb::MSG_APP_RESP:
      out += fmt::format(" index={} reject={} hint={} log_term={}", m.index(), m.reject(),
                         m.reject_hint(), m.log_term());
      break;
    case raftpb::MSG_VOTE:
    case raftpb::MSG_PRE_VOTE:
      out += fmt::format(" last_index={} last_term={}", m.index(), m.log_term());
      break;
    case raftpb::MSG_VOTE_RESP:
    case raftpb::MSG_PRE_VOTE_RESP:
      out += fmt::format(" reject={}", m.reject());
      break;
    case raftpb::MSG_HEARTBEAT:
      out += fmt::format(" commit={}", m.commit());
      break;
    case raftpb::MSG_SNAP:
      out += fmt::format(" snapshot_index={} snapshot_term={}", m.snapshot().metadata().index(),
                         m.snapshot().metadata().term());
      break;
    case raftpb::MSG_READ_INDEX_RESP:
      out += fmt::format(" index={}", m.index());
      break;
    default:
      break;
  }
  if (!m.context().empty()) out += fmt::format(" context={}", m.context());
  return out;
}

class Simulation {
 public:
  friend class SimHost;
  explicit Simulation(const SimOptions& options);
  SimResult run();

 private:
  template <typename... Args>
  void trace(fmt::format_string<Args...> format, Args&&... args) {
    if (options_.trace == nullptr) return;
    *options_.trace << fmt::format("t={:06} ", now_)
                    << fmt::format(format, std::forward<Args>(args)...) << '\n';
  }

  void schedule(uint64_t at, Event event) {
    queue_.emplace(std::make_pair(at, next_seq_++), std::move(event));
  }
  SimNode& node(uint64_t id) { return nodes_[id - 1]; }
  // Whether `event` belongs to its node's current life (not to one that crashed).
  bool live(const Event& event) {
    return node(event.node).node && node(event.node).incarnation == event.incarnation;
  }
  bool chaos() const { return !healed_; }

  void start_node(SimNode& n);
  void crash(SimNode& n, const char* how);
  void handle_ready(SimNode& n) {
    if (n.driver) n.driver->handle_ready();
  }
  // The DriverHost's work, for node n.
  bool write(SimNode& n, const raft::Ready& rd, raft::WriteMode mode);
  void persist(SimNode& n, const raft::Ready& rd);
  void write_done(SimNode& n);
  void restore(SimNode& n, const raftpb::Snapshot& snapshot);
  void apply(SimNode& n, const raftpb::Entry& entry);
  void on_read_state(SimNode& n, const raft::ReadState& read_state);
  // A tick of node n, now or after its write in flight.
  void tick(uint64_t id);
  void maybe_snapshot(SimNode& n);
  void send(raftpb::Message m);
  void deliver(const raftpb::Message& m);
  void fault();
  void heal();
  // Membership workload: adds learners (fresh nodes with empty storage),
  // promotes them once caught up, removes voters and learners, replaces a
  // voter (add learner, promote, remove the old one), through the leader.
  void membership();
  SimNode* leader();
  SimNode& create_joiner();
  bool propose_conf_change(SimNode& leader, raftpb::ConfChange::Type type, uint64_t id);
  void on_committed_conf_change(const raftpb::Entry& e);
  void discard(SimNode& n, const char* why);
  // Ids of nodes that are not discarded (running or crashed).
  std::vector<uint64_t> present_ids() const;
  void propose();
  void read();
  void check_step();
  bool liveness_reached();
  void check_teardown();

  SimOptions options_;
  std::mt19937_64 rng_;
  std::shared_ptr<spdlog::logger> logger_;
  std::deque<SimNode> nodes_;  // node id i is nodes_[i - 1]; a deque keeps storages in place
  std::vector<uint64_t> first_ids_;  // the first configuration's voters
  Checker checker_;
  std::map<std::pair<uint64_t, uint64_t>, Event> queue_;  // (time, seq) -> event
  uint64_t next_seq_ = 0;
  uint64_t now_ = 0;

  // Network.
  bool blocked_[kMaxIds + 1][kMaxIds + 1] = {};
  uint64_t drop_per_million_ = 0;
  uint64_t duplicate_per_million_ = 0;
  uint64_t crash_mid_ready_per_million_ = 0;

  // Per-seed node settings.
  int heartbeat_ticks_ = 1;
  size_t max_inflight_ = 256;
  uint64_t max_size_per_msg_ = 1 << 20;
  bool pre_vote_ = true;
  bool check_quorum_ = true;
  uint64_t snapshot_every_ = 20;
  uint64_t fault_gap_max_ms_ = 300;
  size_t payload_max_ = 0;
  uint64_t lazy_window_ms_ = 0;  // 0: lazy appends persisted at once

  // Clients.
  uint64_t proposals_ = 0;
  uint64_t reads_ = 0;
  std::map<std::string, uint64_t> read_floor_;  // context -> commit index seen before the read
  bool healed_ = false;
  uint64_t heal_time_ = 0;
  std::vector<std::pair<uint64_t, uint64_t>> post_heal_proposals_;  // (index, data hash)

  // Membership workload (per-seed settings, state and counts).
  bool membership_ = false;
  uint64_t membership_gap_max_ms_ = 300;
  size_t min_voters_ = 3;
  size_t max_voters_ = 5;
  uint64_t replace_old_ = 0;  // a replacement under way: retire this voter
  uint64_t replace_new_ = 0;  // for this node
  uint64_t conf_applied_ = 0;  // highest ConfChange index seen committed
  SimResult counts_;
};

Simulation::Simulation(const SimOptions& options)
    : options_(options), rng_(options.seed * 0x9E3779B97F4A7C15ULL + options.nodes) {
  FL_CHECK(options.nodes >= 1 && options.nodes <= kMaxNodes, "nodes must be 1..{}", kMaxNodes);
  static_assert(kMaxNodes <= kMaxIds);
  if (options_.trace != nullptr) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(*options_.trace);
    sink->set_pattern("         %v");
    logger_ = std::make_shared<spdlog::logger>("raft", sink);
    logger_->set_level(spdlog::level::debug);
  } else {
    logger_ =
        std::make_shared<spdlog::logger>("raft", std::make_shared<spdlog::sinks::null_sink_st>());
    logger_->set_level(spdlog::level::off);
  }
  heartbeat_ticks_ = static_cast<int>(uniform_between(rng_, 1, 3));
  const size_t inflight_choices[] = {1, 2, 4, 256};
  max_inflight_ = inflight_choices[uniform_below(rng_, 4)];
  const uint64_t size_choices[] = {60, 60, 100, 600, 1 << 20};
  max_size_per_msg_ = size_choices[uniform_below(rng_, 5)];
  fault_gap_max_ms_ = chance(rng_, 500'000) ? 300 : 100;
  pre_vote_ = chance(rng_, 850'000);
  check_quorum_ = chance(rng_, 850'000);
  snapshot_every_ = uniform_between(rng_, 5, 60);
  payload_max_ = chance(rng_, 300'000) ? 200 : 0;
  const uint64_t drop_choices[] = {0, 10'000, 50'000, 150'000};
  drop_per_million_ = drop_choices[uniform_below(rng_, 4)];
  duplicate_per_million_ = chance(rng_, 500'000) ? 20'000 : 0;
  crash_mid_ready_per_million_ = chance(rng_, 500'000) ? 2'000 : 0;
  {
    // Its own generator, so every other draw (and so each older seed's
    // run) stays as it was.
    std::mt19937_64 lazy_rng(options.seed * 0xD1B54A32D192ED03ULL + options.nodes);
    const uint64_t window_choices[] = {0, 1, 3, 8};
    lazy_window_ms_ = window_choices[uniform_below(lazy_rng, 4)];
  }

  {
    // Membership draws come from a generator of their own too.
    std::mt19937_64 membership_rng(options.seed * 0x94D049BB133111EBULL + options.nodes);
    // Half the seeds change the configuration; the others keep the first
    // one all along, as before membership change existed (and cost less).
    bool half = chance(membership_rng, 500'000);
    membership_ = options.membership == Membership::kAlways ||
                  (options.membership == Membership::kHalf && half);
    membership_gap_max_ms_ = chance(membership_rng, 500'000) ? 300 : 100;
    const size_t min_choices[] = {1, 2, 3, 3, 3, 3};
    min_voters_ = std::min(min_choices[uniform_below(membership_rng, 6)],
                           static_cast<size_t>(options.nodes));
    max_voters_ = kMaxNodes;
  }

  // Every first node's log starts with the same bootstrap entries, committed.
  std::vector<raftpb::Member> members;
  for (int i = 1; i <= options.nodes; ++i) {
    first_ids_.push_back(static_cast<uint64_t>(i));
    raftpb::Member member;
    member.set_id(static_cast<uint64_t>(i));
    member.set_peer_address(fmt::format("sim-{}", i));
    members.push_back(member);
  }
  std::vector<raftpb::Entry> boot = raft::bootstrap_entries(members);
  raftpb::HardState hard_state;
  hard_state.set_term(1);
  hard_state.set_commit(boot.size());
  for (uint64_t id : first_ids_) {
    SimNode& n = nodes_.emplace_back();
    n.id = id;
    n.storage.append(boot);
    n.storage.set_hard_state(hard_state);
    n.synced_commit = boot.size();
  }
}

void Simulation::start_node(SimNode& n) {
  raft::Config config;
  config.id = n.id;  // no Config::voters: the log names them
  config.election_ticks = 10;
  config.heartbeat_ticks = heartbeat_ticks_;
  config.max_inflight_msgs = max_inflight_;
  config.max_size_per_msg = max_size_per_msg_;
  config.pre_vote = pre_vote_;
  config.check_quorum = check_quorum_;
  config.seed = rng_();
  config.test_only_inject_bug = options_.bug;
  // The state machine comes back from the persisted snapshot only.
  raftpb::Snapshot snapshot = n.storage.snapshot();
  n.sm_index = snapshot.metadata().index();
  n.sm_hash = 0;
  if (n.sm_index != 0) {
    std::istringstream in(snapshot.data());
    uint64_t index = 0;
    in >> index >> n.sm_hash;
    FL_CHECK(index == n.sm_index, "snapshot data index {} != metadata index {}", index, n.sm_index);
  }
  config.applied = n.sm_index;
  n.node = std::make_unique<raft::RawNode>(config, n.storage, logger_);
  n.host = std::make_unique<SimHost>(*this, n.id);
  n.driver = std::make_unique<raft::Driver>(*n.node, *n.host);
  ++n.incarnation;
}

void Simulation::crash(SimNode& n, const char* how) {
  trace("crash {}{}", n.id, how);
  // A write in flight never happened; what waited for it is lost with the
  // process (the driver holds both).
  n.driver.reset();
  n.host.reset();
  n.node.reset();
  raftpb::HardState hard_state = n.storage.hard_state();
  if (hard_state.commit() != n.synced_commit && chance(rng_, 500'000)) {
    trace("crash {} loses its unsynced commit index {} (back to {})", n.id, hard_state.commit(),
          n.synced_commit);
    hard_state.set_commit(n.synced_commit);
    n.storage.set_hard_state(hard_state);
  }
}

void Simulation::send(raftpb::Message m) {
  uint64_t from = m.from();
  uint64_t to = m.to();
  if (to == 0 || to > nodes_.size()) return;
  if (chaos()) {
    if (blocked_[from][to]) {
      if (options_.trace) trace("drop {} (partition)", describe(m));
      return;
    }
    if (chance(rng_, drop_per_million_)) {
      if (options_.trace) trace("drop {} (loss)", describe(m));
      return;
    }
  }
  auto delay = [&] {
    return chance(rng_, 100'000) ? uniform_between(rng_, 10, 60) : uniform_between(rng_, 1, 10);
  };
  if (chaos() && chance(rng_, duplicate_per_million_)) {
    schedule(now_ + delay(), Event{EventKind::kDeliver, to, m});
  }
  schedule(now_ + delay(), Event{EventKind::kDeliver, to, std::move(m)});
}

void Simulation::deliver(const raftpb::Message& m) {
  SimNode& n = node(m.to());
  if (!n.node) {
    if (options_.trace) trace("drop {} (node down)", describe(m));
    return;
  }
  if (n.driver->defer([this, m] { deliver(m); })) return;
  if (options_.trace) trace("deliver {}", describe(m));
  // The server's check (raft/message_check.h) runs on every message here
  // too: it must never drop one a correct node sent.
  if (raft::MessageCheck check = raft::check_message(m, *n.node); !check.ok()) {
    checker_.fail(fmt::format("node {} would drop {}: {}", m.to(), describe(m), check.reason));
  }
  raft::Status status = n.node->step(m);
  FL_CHECK(status.ok(), "step failed: {}", status.to_string());
  handle_ready(n);
}

void Simulation::tick(uint64_t id) {
  SimNode& n = node(id);
  if (!n.node || n.driver->defer([this, id] { tick(id); })) return;
  n.node->tick();
  handle_ready(n);
}

bool SimHost::write(const raft::Ready& rd, raft::WriteMode mode) {
  return sim_.write(sim_.node(id_), rd, mode);
}
void SimHost::write_commit(const raftpb::HardState& hard_state) {
  // Unsynced: a crash may lose it (back to SimNode::synced_commit).
  sim_.node(id_).storage.set_hard_state(hard_state);
}
void SimHost::send(const raftpb::Message& message) { sim_.send(message); }
void SimHost::on_soft_state(const raft::SoftState& soft) {
  sim_.trace("node {} is {} at term {} (leader {})", id_, raft::role_name(soft.role),
             sim_.node(id_).node->term(), soft.leader_id);
  // An operator's retry loop finds a new leader at once: try a change
  // right away (a leader must refuse until an entry of its term commits).
  if (soft.role == raft::Role::kLeader && sim_.membership_ && sim_.chaos() &&
      chance(sim_.rng_, 500'000)) {
    sim_.schedule(sim_.now_ + uniform_below(sim_.rng_, 3), Event{EventKind::kMembership, 1, {}});
  }
}
void SimHost::restore(const raftpb::Snapshot& snapshot) { sim_.restore(sim_.node(id_), snapshot); }
void SimHost::apply(const raftpb::Entry& entry) { sim_.apply(sim_.node(id_), entry); }
void SimHost::on_read_state(const raft::ReadState& read_state) {
  sim_.on_read_state(sim_.node(id_), read_state);
}
void SimHost::advanced() { sim_.maybe_snapshot(sim_.node(id_)); }

bool Simulation::write(SimNode& n, const raft::Ready& rd, raft::WriteMode mode) {
  Event later{EventKind::kWriteDone, n.id, {}};
  later.incarnation = n.incarnation;
  if (!rd.snapshot && chaos() && chance(rng_, crash_mid_ready_per_million_)) {
    // The messages of step 1 are out; the write never lands.
    later.kind = EventKind::kCrash;
    schedule(now_, std::move(later));
    trace("node {} will crash during its write", n.id);
    return false;
  }
  uint64_t delay = 0;
  if (mode == raft::WriteMode::kLazy) {
    // As the server does: the write waits for the window, and the inputs
    // that arrive meanwhile wait for it.
    delay = lazy_window_ms_;
  } else if (mode == raft::WriteMode::kOverlap && chance(rng_, 500'000)) {
    // The leader's write goes on while its loop takes more input.
    delay = uniform_below(rng_, 3);
  }
  if (delay == 0) {
    persist(n, rd);
    return true;
  }
  trace("node {} writes {} entries ({}) in {} ms", n.id, rd.entries.size(),
        raft::write_mode_name(mode), delay);
  n.host->in_flight = &rd;
  schedule(now_ + delay, std::move(later));
  return false;
}

void Simulation::write_done(SimNode& n) {
  const raft::Ready* rd = std::exchange(n.host->in_flight, nullptr);
  FL_CHECK(rd != nullptr, "node {}: a write finished that was not started", n.id);
  trace("node {} finishes its write of {} entries", n.id, rd->entries.size());
  persist(n, *rd);
  n.driver->write_done();
  handle_ready(n);
}

void Simulation::persist(SimNode& n, const raft::Ready& rd) {
  uint64_t leader_term = n.node->role() == raft::Role::kLeader ? n.node->term() : 0;
  checker_.observe_persist(n.id, leader_term, rd.entries, n.storage);
  if (rd.snapshot) n.storage.apply_snapshot(*rd.snapshot);
  n.storage.append(rd.entries);
  if (rd.hard_state) n.storage.set_hard_state(*rd.hard_state);
  if (rd.must_sync) n.synced_commit = n.storage.hard_state().commit();
}

void Simulation::restore(SimNode& n, const raftpb::Snapshot& snapshot) {
  std::istringstream in(snapshot.data());
  uint64_t index = 0;
  in >> index >> n.sm_hash;
  n.sm_index = snapshot.metadata().index();
  trace("node {} restores snapshot at {}", n.id, n.sm_index);
  checker_.observe_restore(n.id, n.sm_index, n.sm_hash);
}

void Simulation::apply(SimNode& n, const raftpb::Entry& e) {
  if (!checker_.ok()) return;
  if (e.index() != n.sm_index + 1) {
    checker_.fail(fmt::format("node {} applies index {} after {}", n.id, e.index(), n.sm_index));
    return;
  }
  n.sm_hash = fold_hash(n.sm_hash, e.index(), hash_bytes(e.data()));
  n.sm_index = e.index();
  checker_.observe_apply(n.id, e, n.sm_hash);
  if (e.type() == raftpb::ENTRY_CONF_CHANGE && checker_.ok()) on_committed_conf_change(e);
}

void Simulation::on_read_state(SimNode& n, const raft::ReadState& rs) {
  auto it = read_floor_.find(rs.context);
  if (it != read_floor_.end() && rs.index < it->second) {
    checker_.fail(
        fmt::format("linearizable read: read {} on node {} got index {} but {} "
                    "was committed before it started",
                    rs.context, n.id, rs.index, it->second));
  }
  trace("node {} read {} at index {}", n.id, rs.context, rs.index);
}

void Simulation::maybe_snapshot(SimNode& n) {
  uint64_t snapshot_index = n.storage.first_index() - 1;
  if (n.sm_index < snapshot_index + snapshot_every_) return;
  // The configuration in force at the snapshot's index, not the latest.
  const raftpb::ConfState& conf = n.node->conf_state_at(n.sm_index);
  n.storage.create_snapshot(n.sm_index, conf, fmt::format("{} {}", n.sm_index, n.sm_hash));
  n.synced_commit = n.storage.hard_state().commit();  // a synced write
  uint64_t keep = uniform_below(rng_, 3);
  if (n.sm_index > keep) n.storage.compact(n.sm_index - keep);
  trace("node {} snapshots at {} and compacts to {}", n.id, n.sm_index,
        n.storage.first_index() - 1);
}

std::vector<uint64_t> Simulation::present_ids() const {
  std::vector<uint64_t> out;
  for (const auto& n : nodes_) {
    if (!n.discarded) out.push_back(n.id);
  }
  return out;
}

void Simulation::fault() {
  uint64_t roll = uniform_below(rng_, 105);
  const std::vector<uint64_t> ids = present_ids();
  size_t count = ids.size();
  if (roll < 20 && count > 1) {
    std::set<uint64_t> side;
    while (side.empty() || side.size() == count) {
      side.clear();
      for (uint64_t id : ids) {
        if (chance(rng_, 500'000)) side.insert(id);
      }
    }
    for (uint64_t a : ids) {
      for (uint64_t b : ids) blocked_[a][b] = side.contains(a) != side.contains(b);
    }
    trace("partition {} | rest", fmt::join(side, ","));
  } else if (roll < 30 && count > 1) {
    uint64_t a = ids[uniform_below(rng_, count)];
    uint64_t b = ids[uniform_below(rng_, count)];
    if (a != b) {
      blocked_[a][b] = true;
      trace("one-way partition: {} cannot reach {}", a, b);
    }
  } else if (roll < 40 && count > 1) {
    uint64_t a = ids[uniform_below(rng_, count)];
    for (uint64_t b : ids) {
      blocked_[a][b] = a != b;
      blocked_[b][a] = a != b;
    }
    trace("isolate {}", a);
  } else if (roll < 60) {
    for (auto& row : blocked_) {
      for (bool& cell : row) cell = false;
    }
    trace("heal network");
  } else if (roll < 75) {
    SimNode& n = node(ids[uniform_below(rng_, count)]);
    if (n.node) crash(n, "");
  } else if (roll < 90) {
    std::vector<SimNode*> down;
    for (auto& n : nodes_) {
      if (!n.node && !n.discarded) down.push_back(&n);
    }
    if (!down.empty()) {
      SimNode& n = *down[uniform_below(rng_, down.size())];
      trace("restart {}{}", n.id, n.removed ? " (removed)" : "");
      start_node(n);
      handle_ready(n);
    }
  } else if (roll < 95) {
    const uint64_t drop_choices[] = {0, 10'000, 50'000, 150'000, 400'000};
    drop_per_million_ = drop_choices[uniform_below(rng_, 5)];
    trace("message loss now {} per million", drop_per_million_);
  } else if (roll < 98) {
    // Figure 8's executions: the leader fails right after appending entries.
    for (auto& n : nodes_) {
      if (n.node && n.node->role() == raft::Role::kLeader) {
        if (chance(rng_, 500'000)) {
          crash(n, " (the leader)");
        } else {
          for (uint64_t b : ids) {
            blocked_[n.id][b] = n.id != b;
            blocked_[b][n.id] = n.id != b;
          }
          trace("isolate the leader {}", n.id);
        }
        break;
      }
    }
  } else {
    for (auto& n : nodes_) {
      if (n.node && n.node->role() == raft::Role::kLeader && !n.driver->writing()) {
        // Any node: the core refuses learners, removed nodes and itself.
        uint64_t to = ids[uniform_below(rng_, count)];
        raft::Status status = n.node->transfer_leadership(to);
        trace("transfer leadership {} -> {}: {}", n.id, to, status.to_string());
        handle_ready(n);
        break;
      }
    }
  }
}

void Simulation::heal() {
  healed_ = true;
  heal_time_ = now_;
  for (auto& row : blocked_) {
    for (bool& cell : row) cell = false;
  }
  trace("heal everything: network repaired, removed nodes discarded, crashed nodes restart");
  for (auto& n : nodes_) {
    if (n.removed && !n.discarded) discard(n, "removed");
  }
  for (auto& n : nodes_) {
    if (!n.node && !n.discarded) {
      start_node(n);
      handle_ready(n);
    }
  }
}

// ---------------------------------------------------------------- membership

SimNode* Simulation::leader() {
  SimNode* out = nullptr;
  for (auto& n : nodes_) {
    if (!n.node || n.node->role() != raft::Role::kLeader) continue;
    if (out == nullptr || n.node->term() > out->node->term()) out = &n;
  }
  return out;
}

void Simulation::discard(SimNode& n, const char* why) {
  if (n.node) crash(n, "");
  n.discarded = true;
  trace("discard {} ({}): it never comes back", n.id, why);
}

SimNode& Simulation::create_joiner() {
  SimNode& n = nodes_.emplace_back();
  n.id = nodes_.size();
  ++counts_.joiners;
  trace("joiner {} starts with an empty log", n.id);
  start_node(n);
  schedule(now_ + uniform_below(rng_, kTickMs), Event{EventKind::kTick, n.id, {}});
  return n;
}

bool Simulation::propose_conf_change(SimNode& l, raftpb::ConfChange::Type type, uint64_t id) {
  raftpb::ConfChange change;
  change.set_type(type);
  change.set_node_id(id);
  if (type != raftpb::ConfChange::REMOVE_NODE) {
    change.mutable_member()->set_id(id);
    change.mutable_member()->set_peer_address(fmt::format("sim-{}", id));
  }
  auto result = l.node->propose_conf_change(change);
  ++counts_.conf_proposals;
  if (!result.ok()) {
    ++counts_.conf_refusals;
    trace("conf change {} {} at {}: {}", raftpb::ConfChange::Type_Name(type), id, l.id,
          result.status().to_string());
    return false;
  }
  trace("conf change {} {} at {}: index={} term={}", raftpb::ConfChange::Type_Name(type), id,
        l.id, result.value().index, result.value().term);
  handle_ready(l);
  return true;
}

void Simulation::membership() {
  SimNode* l = leader();
  if (l == nullptr || l->driver->writing()) return;
  raft::RawNode& core = *l->node;
  const raftpb::ConfState conf = core.conf_state();
  std::vector<uint64_t> voters(conf.voters().begin(), conf.voters().end());
  std::vector<uint64_t> learners(conf.learners().begin(), conf.learners().end());
  auto caught_up = [&](uint64_t id) {
    auto match = core.match_index(id);
    return (match && *match >= core.commit_index()) || chance(rng_, 100'000);
  };
  // A node to add: one that joined but is in no configuration yet (an
  // earlier attempt failed or was lost), else a fresh one.
  auto joiner = [&]() -> SimNode* {
    for (auto& n : nodes_) {
      if (n.id > first_ids_.size() && !n.removed && !n.discarded && !raft::is_member(conf, n.id) &&
          n.id != replace_new_) {
        return &n;
      }
    }
    if (nodes_.size() >= kMaxIds) return nullptr;
    return &create_joiner();
  };
  // Removing the leader: it hands over first (the core refuses otherwise).
  auto remove = [&](uint64_t id) {
    if (id == l->id) {
      std::vector<uint64_t> others;
      for (uint64_t v : voters) {
        if (v != id) others.push_back(v);
      }
      if (others.empty()) return;
      uint64_t to = others[uniform_below(rng_, others.size())];
      raft::Status status = core.transfer_leadership(to);
      trace("transfer leadership {} -> {} to remove it: {}", l->id, to, status.to_string());
      handle_ready(*l);
      return;
    }
    propose_conf_change(*l, raftpb::ConfChange::REMOVE_NODE, id);
  };

  if (replace_old_ != 0) {
    // A replacement: add a learner, promote it once caught up, remove the old voter.
    if (!raft::is_voter(conf, replace_old_) || node(replace_new_).removed) {
      trace("replacement of {} by {} is over", replace_old_, replace_new_);
      replace_old_ = replace_new_ = 0;
    } else if (!raft::is_member(conf, replace_new_)) {
      propose_conf_change(*l, raftpb::ConfChange::ADD_LEARNER, replace_new_);
    } else if (raft::is_learner(conf, replace_new_)) {
      if (caught_up(replace_new_)) {
        propose_conf_change(*l, raftpb::ConfChange::ADD_VOTER, replace_new_);
      }
    } else {
      remove(replace_old_);
    }
    return;
  }
  uint64_t roll = uniform_below(rng_, 100);
  if (roll < 30) {
    if (learners.size() >= 2) return;
    if (SimNode* n = joiner()) propose_conf_change(*l, raftpb::ConfChange::ADD_LEARNER, n->id);
  } else if (roll < 55) {
    if (learners.empty() || voters.size() >= max_voters_) return;
    uint64_t id = learners[uniform_below(rng_, learners.size())];
    if (caught_up(id)) propose_conf_change(*l, raftpb::ConfChange::ADD_VOTER, id);
  } else if (roll < 80) {
    if (voters.size() <= min_voters_) return;
    remove(voters[uniform_below(rng_, voters.size())]);
  } else if (roll < 88) {
    if (learners.empty()) return;
    propose_conf_change(*l, raftpb::ConfChange::REMOVE_NODE,
                        learners[uniform_below(rng_, learners.size())]);
  } else {
    if (voters.size() >= max_voters_ || voters.empty()) return;
    SimNode* n = joiner();
    if (n == nullptr) return;
    replace_old_ = voters[uniform_below(rng_, voters.size())];
    replace_new_ = n->id;
    trace("replacement of {} by {} begins", replace_old_, replace_new_);
    propose_conf_change(*l, raftpb::ConfChange::ADD_LEARNER, replace_new_);
  }
}

// A ConfChange entry applied for the first time anywhere: it is committed.
void Simulation::on_committed_conf_change(const raftpb::Entry& e) {
  if (e.index() <= conf_applied_) return;
  conf_applied_ = e.index();
  if (e.index() <= first_ids_.size()) return;  // a bootstrap entry
  raftpb::ConfChange change;
  if (!change.ParseFromString(e.data())) return;
  uint64_t id = change.node_id();
  trace("committed at {}: {} {}", e.index(), raftpb::ConfChange::Type_Name(change.type()), id);
  switch (change.type()) {
    case raftpb::ConfChange::ADD_LEARNER:
      ++counts_.learners_added;
      break;
    case raftpb::ConfChange::ADD_VOTER:
      ++counts_.promotions;
      break;
    case raftpb::ConfChange::REMOVE_NODE: {
      ++counts_.removals;
      if (id == 0 || id > nodes_.size()) break;
      SimNode& n = node(id);
      n.removed = true;
      // Gone now, or left running (it may crash and restart) until healing.
      // (Not here: this runs inside some node's driver, maybe the node's own.)
      if (chance(rng_, 500'000)) schedule(now_, Event{EventKind::kDiscard, id, {}});
      break;
    }
    default:
      break;
  }
}

void Simulation::propose() {
  // Clients mostly find the leader; sometimes they ask a random node.
  const std::vector<uint64_t> ids = present_ids();
  SimNode* target = &node(ids[uniform_below(rng_, ids.size())]);
  if (chance(rng_, 800'000)) {
    for (auto& n : nodes_) {
      if (n.node && n.node->role() == raft::Role::kLeader) target = &n;
    }
  }
  // A node with a write in flight takes no call: the client moves on.
  if (!target->node || target->driver->writing()) return;
  std::string data = fmt::format("s{}-p{}", options_.seed, ++proposals_);
  if (payload_max_ > 0) data.append(uniform_below(rng_, payload_max_), 'x');
  auto result = target->node->propose(data);
  if (result.ok()) {
    trace("propose p{} at {}: index={} term={}", proposals_, target->id, result.value().index,
          result.value().term);
    checker_.observe_proposal(result.value().index, result.value().term, data);
    if (healed_) post_heal_proposals_.emplace_back(result.value().index, hash_bytes(data));
    handle_ready(*target);
  } else if (options_.trace) {
    trace("propose p{} at {}: {}", proposals_, target->id, result.status().to_string());
  }
}

void Simulation::read() {
  const std::vector<uint64_t> ids = present_ids();
  SimNode& n = node(ids[uniform_below(rng_, ids.size())]);
  if (!n.node || n.driver->writing()) return;
  std::string context = fmt::format("r{}", ++reads_);
  read_floor_[context] = checker_.highest_committed();
  raft::Status status = n.node->read_index(context);
  trace("read {} at {}: {}", context, n.id, status.to_string());
  handle_ready(n);
}

void Simulation::check_step() {
  for (auto& n : nodes_) {
    if (!n.node) continue;
    checker_.observe_commit(n.id, n.node->term(), n.node->commit_index(), n.storage);
  }
  for (auto& n : nodes_) {
    if (!n.node || n.node->role() != raft::Role::kLeader) continue;
    checker_.observe_leader(n.id, n.node->term(), n.storage);
  }
  std::vector<Checker::Candidate> present;
  for (const auto& n : nodes_) {
    if (!n.discarded) present.push_back(Checker::Candidate{n.id, &n.storage});
  }
  checker_.check_electable(present);
}

// A proposal made after healing is applied on every member (voter or
// learner) of the leader's configuration.
bool Simulation::liveness_reached() {
  SimNode* l = leader();
  if (l == nullptr) return false;
  const raftpb::ConfState& conf = l->node->conf_state();
  for (const auto& [index, data_hash] : post_heal_proposals_) {
    if (checker_.applied_hash(index) != data_hash) continue;
    bool everywhere = true;
    for (const auto& n : nodes_) {
      if (!raft::is_member(conf, n.id)) continue;
      if (!n.node || n.sm_index < index) everywhere = false;
    }
    if (everywhere) return true;
  }
  return false;
}

// Log matching over whole logs, once at the end: any two nodes agree on
// every index both hold up to the smaller commit index.
void Simulation::check_teardown() {
  for (size_t a = 0; a < nodes_.size(); ++a) {
    for (size_t b = a + 1; b < nodes_.size(); ++b) {
      const raft::MemoryStorage& sa = nodes_[a].storage;
      const raft::MemoryStorage& sb = nodes_[b].storage;
      uint64_t hi =
          std::min({sa.hard_state().commit(), sb.hard_state().commit(),
                    sa.last_index(), sb.last_index()});
      uint64_t lo = std::max(sa.first_index(), sb.first_index());
      for (uint64_t i = lo; i <= hi; ++i) {
        if (sa.term(i) != sb.term(i)) {
          checker_.fail(
              fmt::format("log matching at teardown: nodes {} and {} differ at "
                          "committed index {}",
                          nodes_[a].id, nodes_[b].id, i));
          return;
        }
      }
    }
  }
}

SimResult Simulation::run() {
  trace(
      "seed {} nodes {}: heartbeat_ticks={} max_inflight={} max_size_per_msg={} pre_vote={} "
      "check_quorum={} snapshot_every={} fault_gap_max_ms={} drop={} duplicate={} "
      "crash_mid_ready={} lazy_window_ms={} membership={} membership_gap_max_ms={} "
      "voters={}..{} bug={}",
      options_.seed, nodes_.size(), heartbeat_ticks_, max_inflight_, max_size_per_msg_, pre_vote_,
      check_quorum_, snapshot_every_, fault_gap_max_ms_, drop_per_million_, duplicate_per_million_,
      crash_mid_ready_per_million_, lazy_window_ms_, membership_, membership_gap_max_ms_,
      min_voters_, max_voters_, bug_name(options_.bug));
  for (auto& n : nodes_) {
    start_node(n);
    schedule(uniform_below(rng_, kTickMs), Event{EventKind::kTick, n.id, {}});
  }
  schedule(uniform_between(rng_, 100, 400), Event{EventKind::kFault, 0, {}});
  schedule(uniform_between(rng_, 10, 50), Event{EventKind::kPropose, 0, {}});
  schedule(uniform_between(rng_, 50, 200), Event{EventKind::kRead, 0, {}});
  if (membership_) {
    schedule(uniform_between(rng_, 50, 300), Event{EventKind::kMembership, 0, {}});
  }

  SimResult result;
  while (!queue_.empty() && checker_.ok()) {
    auto handle = queue_.extract(queue_.begin());
    now_ = handle.key().first;
    Event& event = handle.mapped();
    if (!healed_ && now_ >= kChaosMs) heal();
    if (healed_ && now_ > heal_time_ + kLivenessMs) {
      checker_.fail(
          fmt::format("liveness: no new proposal applied on every node within {} ms "
                      "of healing",
                      kLivenessMs));
      break;
    }
    switch (event.kind) {
      case EventKind::kTick: {
        if (node(event.node).discarded) break;
        tick(event.node);
        schedule(now_ + kTickMs, std::move(event));
        break;
      }
      case EventKind::kDeliver:
        deliver(event.message);
        break;
      case EventKind::kFault:
        if (!healed_) {
          fault();
          schedule(now_ + uniform_between(rng_, 20, fault_gap_max_ms_), std::move(event));
        }
        break;
      case EventKind::kPropose:
        propose();
        schedule(now_ + uniform_between(rng_, 10, 60), std::move(event));
        break;
      case EventKind::kRead:
        read();
        schedule(now_ + uniform_between(rng_, 50, 300), std::move(event));
        break;
      case EventKind::kWriteDone:
        if (live(event)) write_done(node(event.node));
        break;
      case EventKind::kCrash:
        if (live(event)) crash(node(event.node), " after sending, before persisting");
        break;
      case EventKind::kMembership:
        if (healed_) break;
        membership();
        if (event.node == 0) {
          schedule(now_ + uniform_between(rng_, 20, membership_gap_max_ms_), std::move(event));
        }
        break;
      case EventKind::kDiscard:
        if (!node(event.node).discarded) discard(node(event.node), "removal committed");
        break;
    }
    check_step();
    if (healed_ && checker_.ok() && liveness_reached()) {
      trace("liveness reached {} ms after healing", now_ - heal_time_);
      break;
    }
  }
  if (checker_.ok()) check_teardown();
  result = counts_;
  result.ok = checker_.ok();
  if (!result.ok) {
    result.violation = *checker_.violation();
    trace("VIOLATION: {}", result.violation);
  }
  result.commits = checker_.commits();
  result.elections = checker_.elections();
  result.end_time_ms = now_;
  return result;
}

}  // namespace

SimResult run_simulation(const SimOptions& options) {
  Simulation simulation(options);
  return simulation.run();
}

bool parse_bug(const std::string& name, raft::InjectedBug* bug) {
  if (name == "none") {
    *bug = raft::InjectedBug::kNone;
  } else if (name == "commit-previous-term") {
    *bug = raft::InjectedBug::kCommitPreviousTermByCounting;
  } else if (name == "vote-without-log-check") {
    *bug = raft::InjectedBug::kVoteWithoutLogCheck;
  } else if (name == "conf-change-before-leader-commit") {
    *bug = raft::InjectedBug::kConfChangeBeforeLeaderCommit;
  } else if (name == "two-uncommitted-conf-changes") {
    *bug = raft::InjectedBug::kTwoUncommittedConfChanges;

  } else {
    return false;
  }
  return true;
}

std::string bug_name(raft::InjectedBug bug) {
  switch (bug) {
    case raft::InjectedBug::kNone:
      return "none";
    case raft::InjectedBug::kCommitPreviousTermByCounting:
      return "commit-previous-term";
    case raft::InjectedBug::kVoteWithoutLogCheck:
      return "vote-without-log-check";
    case raft::InjectedBug::kConfChangeBeforeLeaderCommit:
      return "conf-change-before-leader-commit";
    case raft::InjectedBug::kTwoUncommittedConfChanges:
      return "two-uncommitted-conf-changes";

  }
  return "unknown";
}

}  // namespace fencelock::sim
