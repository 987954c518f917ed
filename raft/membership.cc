#include "raft/membership.h"

#include <algorithm>

#include "common/check.h"

namespace fencelock::raft {

namespace {

bool contains(const google::protobuf::RepeatedField<uint64_t>& ids, uint64_t id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

void insert_sorted(google::protobuf::RepeatedField<uint64_t>* ids, uint64_t id) {
  ids->Add(id);
  std::sort(ids->begin(), ids->end());
}

void erase(google::protobuf::RepeatedField<uint64_t>* ids, uint64_t id) {
  ids->erase(std::remove(ids->begin(), ids->end(), id), ids->end());
}

// Records `member`'s addresses, replacing what was known of its id; an
// empty address keeps the one already known.
void upsert_member(raftpb::ConfState* conf, uint64_t id, const raftpb::Member& member) {
  auto* members = conf->mutable_members();
  auto it = std::find_if(members->begin(), members->end(),
                         [id](const raftpb::Member& m) { return m.id() == id; });
  if (it == members->end()) {
    raftpb::Member* added = members->Add();
    added->set_id(id);
    it = members->end() - 1;
  }
  if (!member.peer_address().empty()) it->set_peer_address(member.peer_address());
  if (!member.client_address().empty()) it->set_client_address(member.client_address());
  std::sort(members->begin(), members->end(),
            [](const raftpb::Member& a, const raftpb::Member& b) { return a.id() < b.id(); });
}

void erase_member(raftpb::ConfState* conf, uint64_t id) {
  auto* members = conf->mutable_members();
  members->erase(std::remove_if(members->begin(), members->end(),
                                [id](const raftpb::Member& m) { return m.id() == id; }),
                 members->end());
}

Result<raftpb::ConfState> invalid(std::string message) {
  return Result<raftpb::ConfState>(Error::kInvalidArgument, std::move(message));
}

}  // namespace

bool is_voter(const raftpb::ConfState& conf, uint64_t id) { return contains(conf.voters(), id); }

bool is_learner(const raftpb::ConfState& conf, uint64_t id) {
  return contains(conf.learners(), id);
}

bool is_member(const raftpb::ConfState& conf, uint64_t id) {
  return is_voter(conf, id) || is_learner(conf, id);
}

Result<raftpb::ConfState> apply_conf_change(const raftpb::ConfState& conf,
                                            const raftpb::ConfChange& change) {
  uint64_t id = change.node_id();
  if (id == 0) return invalid("node id 0 is not a valid member");
  raftpb::ConfState next = conf;
  switch (change.type()) {
    case raftpb::ConfChange::ADD_LEARNER:
      if (is_member(conf, id)) return invalid(fmt::format("node {} is already a member", id));
      insert_sorted(next.mutable_learners(), id);
      upsert_member(&next, id, change.member());
      return next;
    case raftpb::ConfChange::ADD_VOTER:
      if (is_voter(conf, id)) return invalid(fmt::format("node {} is already a voter", id));
      erase(next.mutable_learners(), id);
      insert_sorted(next.mutable_voters(), id);
      upsert_member(&next, id, change.member());
      return next;
    case raftpb::ConfChange::REMOVE_NODE:
      if (!is_member(conf, id)) return invalid(fmt::format("node {} is not a member", id));
      if (is_voter(conf, id) && conf.voters_size() == 1) {
        return invalid(fmt::format("node {} is the last voter", id));
      }
      erase(next.mutable_voters(), id);
      erase(next.mutable_learners(), id);
      erase_member(&next, id);
      return next;
    default:
      return invalid(fmt::format("unknown change type {}", static_cast<int>(change.type())));
  }
}

std::vector<raftpb::Entry> bootstrap_entries(std::vector<raftpb::Member> members) {
  std::sort(members.begin(), members.end(),
            [](const raftpb::Member& a, const raftpb::Member& b) { return a.id() < b.id(); });
  std::vector<raftpb::Entry> entries;
  for (auto& member : members) {
    raftpb::ConfChange change;
    change.set_type(raftpb::ConfChange::ADD_VOTER);
    change.set_node_id(member.id());
    *change.mutable_member() = std::move(member);
    raftpb::Entry entry;
    entry.set_term(1);
    entry.set_index(entries.size() + 1);
    entry.set_type(raftpb::ENTRY_CONF_CHANGE);
    entry.set_data(change.SerializeAsString());
    entries.push_back(std::move(entry));
  }
  return entries;
}

void Membership::reset(uint64_t base_index, raftpb::ConfState base) {
  by_index_.clear();
  by_index_.emplace(base_index, std::move(base));
  ++generation_;
}

void Membership::truncate_from(uint64_t index) {
  FL_CHECK(index > by_index_.begin()->first, "truncating at {}, at or below the base at {}", index,
           by_index_.begin()->first);
  auto from = by_index_.lower_bound(index);
  if (from == by_index_.end()) return;
  by_index_.erase(from, by_index_.end());
  ++generation_;
}

bool Membership::append(const raftpb::Entry& entry) {
  if (entry.type() != raftpb::ENTRY_CONF_CHANGE) return true;
  FL_CHECK(entry.index() > latest_index(), "configuration entry {} is not after {}", entry.index(),
           latest_index());
  raftpb::ConfChange change;
  if (!change.ParseFromString(entry.data())) return false;
  auto next = apply_conf_change(latest(), change);
  if (!next.ok()) return false;
  by_index_.emplace(entry.index(), std::move(next).value());
  ++generation_;
  return true;
}

const raftpb::ConfState& Membership::latest() const { return by_index_.rbegin()->second; }

uint64_t Membership::latest_index() const { return by_index_.rbegin()->first; }

const raftpb::ConfState& Membership::at(uint64_t index) const {
  auto it = by_index_.upper_bound(index);
  FL_CHECK(it != by_index_.begin(), "no configuration known at {} (base at {})", index,
           by_index_.begin()->first);
  return std::prev(it)->second;
}

}  // namespace fencelock::raft
