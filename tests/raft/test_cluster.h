#pragma once
// A tiny synchronous harness for raft unit tests: real nodes over
// MemoryStorage, driven by the one Driver (raft/driver.h) with writes done
// on the spot, over a FIFO network whose links the test can cut. No clock, no threads, no randomness beyond the
// nodes' seeded generators. Nodes may join (empty storage, no voters) and
// leave (stopped; messages to them are dropped).
//
// Thread-safety: not thread-safe.

#include <spdlog/sinks/null_sink.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "raft/driver.h"
#include "raft/membership.h"
#include "raft/memory_storage.h"
#include "raft/message_check.h"
#include "raft/raw_node.h"

namespace fencelock::raft::testing {

inline std::shared_ptr<spdlog::logger> null_logger() {
  static auto logger = std::make_shared<spdlog::logger>(
      "raft-test", std::make_shared<spdlog::sinks::null_sink_st>());
  return logger;
}

inline raftpb::Entry entry(uint64_t index, uint64_t term, std::string data = "") {
  raftpb::Entry e;
  e.set_index(index);
  e.set_term(term);
  e.set_data(std::move(data));
  return e;
}

// Entries 1..n with the given terms.
inline std::vector<raftpb::Entry> log_with_terms(const std::vector<uint64_t>& terms) {
  std::vector<raftpb::Entry> out;
  for (size_t i = 0; i < terms.size(); ++i) out.push_back(entry(i + 1, terms[i]));
  return out;
}

inline raftpb::ConfState conf_of(const std::vector<uint64_t>& ids) {
  raftpb::ConfState conf;
  for (uint64_t id : ids) conf.add_voters(id);
  return conf;
}

inline raftpb::ConfChange conf_change(raftpb::ConfChange::Type type, uint64_t id) {
  raftpb::ConfChange change;
  change.set_type(type);
  change.set_node_id(id);
  return change;
}
inline raftpb::ConfChange add_learner(uint64_t id) {
  return conf_change(raftpb::ConfChange::ADD_LEARNER, id);
}
inline raftpb::ConfChange add_voter(uint64_t id) {
  return conf_change(raftpb::ConfChange::ADD_VOTER, id);
}
inline raftpb::ConfChange remove_node(uint64_t id) {
  return conf_change(raftpb::ConfChange::REMOVE_NODE, id);
}

class TestCluster;

// A node's DriverHost: writes to its MemoryStorage at once, queues its
// messages on the cluster's network, records what it applies and reads,
// and the configurations the core reports (Ready::conf_state).
class TestHost final : public DriverHost {
 public:
  TestHost(MemoryStorage& storage, std::deque<raftpb::Message>& network,
           std::vector<raftpb::Entry>& applied, std::vector<ReadState>& read_states,
           std::vector<raftpb::ConfState>& conf_states)
      : storage_(storage),
        network_(network),
        applied_(applied),
        read_states_(read_states),
        conf_states_(conf_states) {}

  bool write(const Ready& rd, WriteMode) override {
    if (rd.snapshot) storage_.apply_snapshot(*rd.snapshot);
    storage_.append(rd.entries);
    if (rd.hard_state) storage_.set_hard_state(*rd.hard_state);
    return true;
  }
  void write_commit(const raftpb::HardState& hard_state) override {
    storage_.set_hard_state(hard_state);
  }
  void send(const raftpb::Message& message) override { network_.push_back(message); }
  void on_soft_state(const SoftState&) override {}
  void on_conf_state(const raftpb::ConfState& conf) override { conf_states_.push_back(conf); }
  void restore(const raftpb::Snapshot&) override {}
  void apply(const raftpb::Entry& entry) override { applied_.push_back(entry); }
  void on_read_state(const ReadState& read_state) override { read_states_.push_back(read_state); }

 private:
  MemoryStorage& storage_;
  std::deque<raftpb::Message>& network_;
  std::vector<raftpb::Entry>& applied_;
  std::vector<ReadState>& read_states_;
  std::vector<raftpb::ConfState>& conf_states_;
};

// How a TestCluster's first nodes learn their configuration.
enum class Start {
  kConfigVoters,      // Config::voters and storage's ConfState (no configuration in the log)
  kBootstrapEntries,  // bootstrap_entries() in every log, committed; Config::voters empty
};

class TestCluster {
 public:
  // Nodes `ids`, each with a fresh storage; `tweak` may edit each config.
  explicit TestCluster(std::vector<uint64_t> ids, std::function<void(Config&)> tweak = nullptr,
                       Start how = Start::kConfigVoters)
      : ids_(std::move(ids)), initial_(ids_), tweak_(std::move(tweak)), how_(how) {
    if (how_ == Start::kConfigVoters) {
      for (uint64_t id : ids_) storages_.emplace(id, MemoryStorage(conf_of(ids_)));
      return;
    }
    std::vector<raftpb::Member> members;
    for (uint64_t id : ids_) {
      raftpb::Member member;
      member.set_id(id);
      members.push_back(member);
    }
    std::vector<raftpb::Entry> boot = bootstrap_entries(members);
    for (uint64_t id : ids_) {
      MemoryStorage& storage = storages_.emplace(id, MemoryStorage()).first->second;
      storage.append(boot);
      raftpb::HardState hs;
      hs.set_term(1);
      hs.set_commit(boot.size());
      storage.set_hard_state(hs);
    }
  }

  // A node joining the running cluster: empty storage, no voters; it waits
  // for a leader to add it and send it the log (or a snapshot).
  void add_joiner(uint64_t id) {
    storages_.emplace(id, MemoryStorage());
    joiners_.insert(id);
    ids_.push_back(id);
    restart(id);
  }

  // Stops node `id` for good: it is no longer ticked or processed, and
  // messages to it are dropped. Its storage stays readable.
  void remove(uint64_t id) {
    ids_.erase(std::remove(ids_.begin(), ids_.end(), id), ids_.end());
    drivers_.erase(id);
    hosts_.erase(id);
    nodes_.erase(id);
  }
  bool running(uint64_t id) const { return nodes_.contains(id); }

  // Preloads a node's persisted state before start().
  void preload(uint64_t id, const std::vector<raftpb::Entry>& entries, uint64_t term,
               uint64_t vote = 0, uint64_t commit = 0) {
    storages_.at(id).append(entries);
    raftpb::HardState hs;
    hs.set_term(term);
    hs.set_vote(vote);
    hs.set_commit(commit);
    storages_.at(id).set_hard_state(hs);
  }

  void start() {
    for (uint64_t id : ids_) restart(id);
  }

  // (Re)creates the node from what its storage holds (a stopped node too).
  void restart(uint64_t id) {
    if (std::find(ids_.begin(), ids_.end(), id) == ids_.end()) ids_.push_back(id);
    Config config;
    config.id = id;
    if (how_ == Start::kConfigVoters && !joiners_.contains(id)) config.voters = initial_;
    config.seed = id * 7919;
    config.applied = storages_.at(id).first_index() - 1;
    if (tweak_) tweak_(config);
    drivers_.erase(id);
    hosts_.erase(id);
    nodes_[id] = std::make_unique<RawNode>(config, storages_.at(id), null_logger());
    applied_[id].clear();
    hosts_[id] = std::make_unique<TestHost>(storages_.at(id), queue_, applied_[id],
                                            read_states_[id], conf_states_[id]);
    drivers_[id] = std::make_unique<Driver>(*nodes_[id], *hosts_[id]);
  }

  RawNode& node(uint64_t id) { return *nodes_.at(id); }
  MemoryStorage& storage(uint64_t id) { return storages_.at(id); }
  const std::vector<raftpb::Entry>& applied(uint64_t id) { return applied_[id]; }
  void clear_applied(uint64_t id) { applied_[id].clear(); }
  std::vector<ReadState>& read_states(uint64_t id) { return read_states_[id]; }
  // Every configuration node `id` reported in a Ready, in order.
  std::vector<raftpb::ConfState>& conf_states(uint64_t id) { return conf_states_[id]; }

  // Cuts (or restores) both directions between `id` and everyone else.
  void isolate(uint64_t id) {
    for (uint64_t other : ids_) {
      if (other != id) {
        cut_.insert({id, other});
        cut_.insert({other, id});
      }
    }
  }
  void cut(uint64_t from, uint64_t to) { cut_.insert({from, to}); }
  void heal() { cut_.clear(); }
  // Drops every message for which `filter` returns true (until cleared).
  void set_drop(std::function<bool(const raftpb::Message&)> filter) { drop_ = std::move(filter); }

  // Handles one node's Readies through the driver; queues its messages.
  // Commit-only hard states are written at the end (the server writes them
  // at the next tick), so storage shows the latest commit index.
  void process(uint64_t id) {
    if (!running(id)) return;
    Driver& driver = *drivers_.at(id);
    driver.handle_ready();
    driver.flush_commit();
  }

  // Delivers queued messages (and the work they cause) until quiet.
  void stabilize() {
    for (uint64_t id : ids_) process(id);
    while (!queue_.empty()) {
      raftpb::Message m = std::move(queue_.front());
      queue_.pop_front();
      if (cut_.contains({m.from(), m.to()}) || (drop_ && drop_(m)) || !running(m.to())) continue;
      // Every message a node sends must pass the server's check
      // (raft/message_check.h); it is still stepped, so a refusal changes
      // nothing else in the test.
      if (MessageCheck check = check_message(m, node(m.to())); !check.ok()) {
        refused_.push_back(fmt::format("{} from {} to {}: {}",
                                       raftpb::MessageType_Name(m.type()), m.from(), m.to(),
                                       check.reason));
      }
      (void)node(m.to()).step(m);
      process(m.to());
    }
  }

  // Messages between the cluster's nodes that check_message refused
  // (none, if it drops no legitimate traffic).
  const std::vector<std::string>& refused() const { return refused_; }

  // Delivers one message directly (bypassing the queue) and processes.
  void deliver(const raftpb::Message& m) {
    (void)node(m.to()).step(m);
    process(m.to());
  }

  // Ticks `id` until it starts campaigning, then stabilizes.
  void campaign(uint64_t id) {
    RawNode& n = node(id);
    for (int i = 0; i < 100 && n.role() == Role::kFollower; ++i) {
      n.tick();
      process(id);
    }
    stabilize();
  }

  // Ticks every node `ticks` times, stabilizing after each round.
  void tick_all(int ticks) {
    for (int t = 0; t < ticks; ++t) {
      for (uint64_t id : ids_) {
        node(id).tick();
        process(id);
      }
      stabilize();
    }
  }

  std::deque<raftpb::Message>& queue() { return queue_; }

  std::vector<uint64_t> terms_of(uint64_t id) {
    std::vector<uint64_t> out;
    MemoryStorage& s = storage(id);
    for (uint64_t i = s.first_index(); i <= s.last_index(); ++i) out.push_back(s.term(i));
    return out;
  }

 private:
  std::vector<uint64_t> ids_;      // running nodes
  std::vector<uint64_t> initial_;  // the first configuration's voters
  std::set<uint64_t> joiners_;     // started with empty storage and no voters
  std::function<void(Config&)> tweak_;
  Start how_;
  std::map<uint64_t, MemoryStorage> storages_;
  std::map<uint64_t, std::unique_ptr<RawNode>> nodes_;
  std::map<uint64_t, std::unique_ptr<TestHost>> hosts_;
  std::map<uint64_t, std::unique_ptr<Driver>> drivers_;
  std::map<uint64_t, std::vector<raftpb::Entry>> applied_;
  std::map<uint64_t, std::vector<ReadState>> read_states_;
  std::map<uint64_t, std::vector<raftpb::ConfState>> conf_states_;
  std::set<std::pair<uint64_t, uint64_t>> cut_;
  std::function<bool(const raftpb::Message&)> drop_;
  std::deque<raftpb::Message> queue_;
  std::vector<std::string> refused_;
};

}  // namespace fencelock::raft::testing
