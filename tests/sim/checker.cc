#include "tests/sim/checker.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <cstdint>

#include "raft/membership.h"

namespace fencelock::sim {

uint64_t hash_bytes(const std::string& data) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

uint64_t fold_hash(uint64_t prev, uint64_t index, uint64_t data_hash) {
  uint64_t h = prev ^ (index * 0x9E3779B97F4A7C15ULL) ^ (data_hash + 0x632BE59BD9B4E019ULL);
  h ^= h >> 31;
  h *= 0xBF58476D1CE4E5B9ULL;
  h ^= h >> 29;
  return h;
}

void Checker::fail(std::string what) {
  if (!violation_) violation_ = std::move(what);
}

std::optional<uint64_t> Checker::applied_hash(uint64_t index) const {
  if (index == 0 || index > applied_.size()) return std::nullopt;
  return applied_[index - 1].data_hash;
}

uint64_t Checker::entry_term_of(uint64_t index) const {
  if (index <= applied_.size()) return applied_[index - 1].term;
  if (index <= commit_terms_.size()) return commit_terms_[index - 1].second;
  return 0;
}

void Checker::check_leader_holds(uint64_t id, uint64_t leader_term, uint64_t index,
                                 const raft::MemoryStorage& storage) {
  uint64_t entry_term = entry_term_of(index);
  if (entry_term == 0) return;                    // unknown: nothing to compare with
  if (index + 1 < storage.first_index()) return;  // inside the leader's own snapshot
  if (index > storage.last_index()) {
    fail(
        fmt::format("leader completeness: leader {} of term {} lacks committed index {} "
                    "(its last index is {})",
                    id, leader_term, index, storage.last_index()));
    return;
  }
  uint64_t have = storage.term(index);
  if (have != entry_term) {
    fail(
        fmt::format("leader completeness: leader {} of term {} has term {} at committed "
                    "index {}, which committed with term {}",
                    id, leader_term, have, index, entry_term));
  }
}

void Checker::observe_leader(uint64_t id, uint64_t term, const raft::MemoryStorage& storage) {
  auto [it, inserted] = leaders_.emplace(term, id);
  if (!inserted && it->second != id) {
    fail(fmt::format("election safety: nodes {} and {} are both leader of term {}", it->second, id,
                     term));
    return;
  }
  auto& current = current_leaders_[id];
  if (current.first != term) {
    current = {term, 0};
  }
  // Leader completeness for everything seen committed in an earlier term.
  for (uint64_t i = current.second + 1; i <= commit_terms_.size(); ++i) {
    if (commit_terms_[i - 1].first < term) check_leader_holds(id, term, i, storage);
  }
  current.second = commit_terms_.size();
}

void Checker::observe_commit(uint64_t id, uint64_t term, uint64_t commit,
                             const raft::MemoryStorage& storage) {
  (void)id;
  while (commit_terms_.size() < commit) {
    uint64_t index = commit_terms_.size() + 1;
    uint64_t entry_term = 0;
    if (index + 1 >= storage.first_index() && index <= storage.last_index()) {
      entry_term = storage.term(index);
    }
    commit_terms_.emplace_back(term, entry_term);
  }
}

const Checker::LogConfiguration& Checker::configuration_of(uint64_t id,
                                                          const raft::MemoryStorage& storage) {
  // A log is known by its last entry (log matching): the same last index
  // and term, the same log, the same configuration, compacted or not.
  uint64_t last = storage.last_index();
  auto key = std::make_pair(last, storage.term(last));
  CachedConf& cached = confs_[id];
  if (cached.log == key && cached.known) return cached.conf;
  uint64_t first = storage.first_index();
  LogConfiguration& conf = cached.conf;
  auto replay = [&](uint64_t from) {
    if (from > last) return;
    for (const auto& e : storage.entries(from, last + 1, UINT64_MAX)) {
      if (e.type() != raftpb::ENTRY_CONF_CHANGE) continue;
      raftpb::ConfChange change;
      if (!change.ParseFromString(e.data())) continue;
      auto next = raft::apply_conf_change(conf.latest, change);
      if (!next.ok()) continue;
      conf.previous = std::move(conf.latest);
      conf.latest = std::move(next).value();
      conf.latest_index = e.index();
    }
  };
  // The log only grew since: replay the new entries.
  uint64_t old_last = cached.log.first;
  if (cached.known && old_last >= first && old_last < last &&
      storage.term(old_last) == cached.log.second) {
    replay(old_last + 1);
  } else {
    // As raft::CoreLog replays it at start-up.
    uint64_t base = std::max(first - 1, storage.snapshot().metadata().index());
    conf = LogConfiguration{storage.initial_state().conf_state, {}, 0};
    replay(base + 1);
  }
  cached.log = key;
  cached.known = true;
  return conf;
}

void Checker::check_electable(const std::vector<Candidate>& nodes) {
  uint64_t c = commit_terms_.size();
  if (c == 0 || violation_) return;
  uint64_t entry_term = entry_term_of(c);
  if (entry_term == 0) return;
  auto last_of = [](const raft::MemoryStorage& s) {
    return std::make_pair(s.term(s.last_index()), s.last_index());
  };
  const raft::MemoryStorage* by_id[kMaxNodeId + 1] = {};
  for (const auto& n : nodes) {
    if (n.id <= kMaxNodeId) by_id[n.id] = n.storage;
  }
  for (const auto& n : nodes) {
    const raft::MemoryStorage& s = *n.storage;
    bool holds = c + 1 < s.first_index() || (c <= s.last_index() && s.term(c) == entry_term);
    if (holds) continue;
    const LogConfiguration& log_conf = configuration_of(n.id, s);
    const raftpb::ConfState& conf = log_conf.latest;
    if (!raft::is_voter(conf, n.id)) {
      bool removal_pending = raft::is_voter(log_conf.previous, n.id) &&
                             log_conf.latest_index > s.hard_state().commit();
      if (!removal_pending) continue;  // it cannot campaign
    }
    auto candidate = last_of(s);
    std::vector<uint64_t> grant;
    for (uint64_t v : conf.voters()) {
      if (v > kMaxNodeId || by_id[v] == nullptr) continue;  // gone for good
      auto voter = last_of(*by_id[v]);
      // Raft §5.4.1: v grants if the candidate's log is at least as up to date.
      if (candidate.first > voter.first ||
          (candidate.first == voter.first && candidate.second >= voter.second)) {
        grant.push_back(v);
      }
    }
    if (grant.size() >= static_cast<size_t>(conf.voters_size()) / 2 + 1) {
      fail(fmt::format(
          "leader completeness: node {} lacks committed index {} (term {}) yet its "
          "log (last term {}, last index {}) could win the votes of {} (voters {})",
          n.id, c, entry_term, candidate.first, candidate.second, fmt::join(grant, ","),
          fmt::join(conf.voters(), ",")));
      return;
    }
  }
}

void Checker::observe_persist(uint64_t id, uint64_t leader_term,
                              const std::vector<raftpb::Entry>& entries,
                              const raft::MemoryStorage& storage) {
  if (entries.empty()) return;
  if (leader_term != 0) {
    auto it = leader_logs_.find(id);
    if (it != leader_logs_.end() && it->second.first == leader_term &&
        entries.front().index() <= it->second.second) {
      fail(
          fmt::format("leader append-only: leader {} of term {} rewrites index {} "
                      "(it had entries up to {})",
                      id, leader_term, entries.front().index(), it->second.second));
      return;
    }
    leader_logs_[id] = {leader_term, entries.back().index()};
  } else {
    leader_logs_.erase(id);
  }
  uint64_t prev_term = 0;
  bool prev_known = false;
  uint64_t first = entries.front().index();
  if (first == 1) {
    prev_known = true;
  } else if (first - 1 + 1 >= storage.first_index() && first - 1 <= storage.last_index()) {
    prev_term = storage.term(first - 1);
    prev_known = true;
  }
  for (const auto& e : entries) {
    uint64_t data_hash = hash_bytes(e.data());
    auto [it, inserted] = written_.emplace(std::make_pair(e.index(), e.term()),
                                           Written{data_hash, prev_known ? prev_term : 0});
    if (!inserted) {
      if (it->second.data_hash != data_hash) {
        fail(fmt::format("log matching: node {} writes different data at index {} term {}", id,
                         e.index(), e.term()));
        return;
      }
      if (prev_known && it->second.prev_term != 0 && it->second.prev_term != prev_term) {
        fail(
            fmt::format("log matching: node {} has term {} before index {} term {}, "
                        "another log has term {}",
                        id, prev_term, e.index(), e.term(), it->second.prev_term));
        return;
      }
    }
    prev_term = e.term();
    prev_known = true;
  }
}

void Checker::observe_apply(uint64_t id, const raftpb::Entry& e, uint64_t state_hash) {
  uint64_t data_hash = hash_bytes(e.data());
  uint64_t index = e.index();
  if (index <= applied_.size()) {
    const Applied& a = applied_[index - 1];
    if (a.term != e.term() || a.data_hash != data_hash) {
      fail(
          fmt::format("state machine safety: node {} applies term {} at index {}, another node "
                      "applied term {} there with different data",
                      id, e.term(), index, a.term));
      return;
    }
    if (a.state_hash != state_hash) {
      fail(fmt::format("state machine safety: node {} state after index {} differs", id, index));
    }
    return;
  }
  if (index != applied_.size() + 1) {
    fail(
        fmt::format("state machine safety: node {} applies index {} but nothing is known "
                    "applied after {}",
                    id, index, applied_.size()));
    return;
  }
  uint64_t prev = applied_.empty() ? 0 : applied_.back().state_hash;
  if (fold_hash(prev, index, data_hash) != state_hash) {
    fail(fmt::format("state machine safety: node {} state after index {} differs", id, index));
    return;
  }
  auto p = proposals_.find({index, e.term()});
  if (p != proposals_.end() && p->second != data_hash) {
    fail(
        fmt::format("proposal id: entry applied at index {} term {} is not the proposal "
                    "accepted there",
                    index, e.term()));
    return;
  }
  applied_.push_back(Applied{e.term(), data_hash, state_hash});
}

void Checker::observe_restore(uint64_t id, uint64_t index, uint64_t state_hash) {
  if (index == 0) return;
  if (index > applied_.size()) {
    fail(
        fmt::format("state machine safety: node {} restores a snapshot at {} beyond anything "
                    "applied ({})",
                    id, index, applied_.size()));
    return;
  }
  if (applied_[index - 1].state_hash != state_hash) {
    fail(
        fmt::format("state machine safety: node {} restores a snapshot at {} whose state "
                    "differs from the applied log",
                    id, index));
  }
}

void Checker::observe_proposal(uint64_t index, uint64_t term, const std::string& data) {
  uint64_t data_hash = hash_bytes(data);
  auto [it, inserted] = proposals_.emplace(std::make_pair(index, term), data_hash);
  if (!inserted && it->second != data_hash) {
    fail(fmt::format("proposal id: two proposals got index {} term {}", index, term));
  }
}

}  // namespace fencelock::sim
