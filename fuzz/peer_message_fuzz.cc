// Fuzz target: peer messages stepped into the Raft core
// (raft/message_check.h, RawNode::step). A small core — node 2 of voters
// {1, 2, 3}, a few entries of terms 1 and 2, optionally leader, optionally
// compacted behind a snapshot — takes a sequence of operations decoded
// from the input: raw bytes parsed as a raftpb::Message, messages built
// from a few fields relative to the core's state (so that terms and
// indices land near the ones the core checks), ticks, proposals and
// compactions. Each message goes through check_message and then, when it
// passes (or when the input's first byte asks to bypass the check, to
// test the core's own refusals), through step; every Ready is persisted
// into the MemoryStorage and advanced. After every operation the core's
// invariants must hold: commit within the log, applied within commit,
// term and commit never decreasing, a committed entry never replaced, a
// leader's match indices within its log. A broken one aborts (FL_CHECK),
// as does any check inside the core: no message may make either happen.
//
// Built as the other targets are (fuzz/CMakeLists.txt, docs/fuzzing.md).
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "common/check.h"
#include "raft/membership.h"
#include "raft/memory_storage.h"
#include "raft/message_check.h"
#include "raft/raw_node.h"

namespace {

using fencelock::raft::Config;
using fencelock::raft::MemoryStorage;
using fencelock::raft::RawNode;
using fencelock::raft::Role;
namespace raftpb = fencelock::raftpb;

constexpr uint64_t kSelf = 2;

// Reads the input front to back; past the end, zeros.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool done() const { return pos_ >= size_; }
  uint8_t u8() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint64_t u64(int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v = (v << 8) | u8();
    return v;
  }
  std::string bytes(size_t n) {
    n = std::min(n, size_ - std::min(pos_, size_));
    std::string out(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return out;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

std::shared_ptr<spdlog::logger> null_logger() {
  static auto logger = std::make_shared<spdlog::logger>(
      "fuzz", std::make_shared<spdlog::sinks::null_sink_st>());
  return logger;
}

class Harness {
 public:
  explicit Harness(uint8_t flags) : bypass_check_(flags & 1) {
    raftpb::ConfState conf;
    for (uint64_t id : {1, 2, 3}) conf.add_voters(id);
    storage_ = std::make_unique<MemoryStorage>(conf);
    std::vector<raftpb::Entry> entries;
    for (uint64_t i = 1; i <= 6; ++i) {
      raftpb::Entry e;
      e.set_index(i);
      e.set_term(i <= 3 ? 1 : 2);
      e.set_data("cmd" + std::to_string(i));
      entries.push_back(e);
    }
    storage_->append(entries);
    raftpb::HardState hs;
    hs.set_term(2);
    hs.set_commit(4);
    storage_->set_hard_state(hs);
    if (flags & 4) {
      storage_->create_snapshot(3, conf, "snapshot");
      storage_->compact(3);
    }
    Config config;
    config.id = kSelf;
    config.voters = {1, 2, 3};
    config.pre_vote = (flags & 8) != 0;
    config.check_quorum = (flags & 16) != 0;
    config.lazy_followers = (flags & 32) != 0;
    config.max_inflight_msgs = 4;
    config.applied = storage_->first_index() - 1;
    config.seed = 7;
    node_ = std::make_unique<RawNode>(config, *storage_, null_logger());
    drain();
    if (flags & 2) become_leader();
  }

  void run(Reader& in) {
    for (int ops = 0; !in.done() && ops < 512; ++ops) {
      switch (in.u8() % 6) {
        case 0: {  // raw bytes as a message
          size_t n = in.u8() | (static_cast<size_t>(in.u8()) << 8);
          raftpb::Message m;
          if (!m.ParseFromString(in.bytes(n))) break;
          if (in.u8() & 1) m.set_to(kSelf);
          deliver(m);
          break;
        }
        case 1:
        case 2:
          deliver(structured(in));
          break;
        case 3:
          for (int t = in.u8() % 32; t >= 0; --t) node_->tick();
          break;
        case 4:
          if (node_->role() == Role::kLeader) (void)node_->propose(in.bytes(in.u8() % 16));
          break;
        case 5:
          compact();
          break;
      }
      drain();
      check_invariants();
    }
  }

 private:
  // A message whose fields are chosen near the core's state.
  raftpb::Message structured(Reader& in) {
    raftpb::Message m;
    m.set_type(static_cast<raftpb::MessageType>(in.u8() % 15));
    m.set_to((in.u8() & 7) == 0 ? in.u8() % 5 : kSelf);
    m.set_from(in.u8() % 6);
    auto near = [&](uint64_t base) -> uint64_t {
      uint8_t how = in.u8();
      switch (how % 8) {
        case 0:
          return in.u64(8);  // anything
        case 1:
          return base + (how >> 3);
        case 2:
          return base > (how >> 3) ? base - (how >> 3) : 0;
        default:
          return base;
      }
    };
    m.set_term(near(node_->term()));
    m.set_index(near(node_->last_index()));
    m.set_log_term(near(node_->term()));
    m.set_commit(near(node_->commit_index()));
    m.set_reject((in.u8() & 1) != 0);
    m.set_reject_hint(near(node_->last_index()));
    m.set_lazy_persist((in.u8() & 1) != 0);
    if (in.u8() & 1) m.set_context("CampaignTransfer");
    uint8_t entries = in.u8() % 6;
    uint64_t index = m.index();
    for (uint8_t i = 0; i < entries; ++i) {
      raftpb::Entry* e = m.add_entries();
      uint8_t how = in.u8();
      e->set_index((how & 3) == 0 ? near(index) : ++index);
      e->set_term(near(m.term()));
      if (how & 4) {
        e->set_type(raftpb::ENTRY_CONF_CHANGE);
        raftpb::ConfChange cc;
        cc.set_type(static_cast<raftpb::ConfChange::Type>(in.u8() % 3));
        cc.set_node_id(in.u8() % 6);
        e->set_data(cc.SerializeAsString());
      }
    }
    if (m.type() == raftpb::MSG_SNAP || (in.u8() & 15) == 0) {
      auto* meta = m.mutable_snapshot()->mutable_metadata();
      meta->set_index(near(node_->commit_index() + 2));
      meta->set_term(near(m.term()));
      uint8_t conf = in.u8();
      for (uint64_t id = 0; id < 6; ++id) {
        if (conf & (1u << id)) meta->mutable_conf_state()->add_voters(id);
      }
      if (conf & 64) meta->mutable_conf_state()->add_learners(conf & 128 ? 1 : 4);
      m.mutable_snapshot()->set_data("snap");
    }
    return m;
  }

  void deliver(const raftpb::Message& m) {
    if (!bypass_check_ && !fencelock::raft::check_message(m, *node_).ok()) return;
    (void)node_->step(m);
  }

  void become_leader() {
    for (int t = 0; t < 64 && node_->role() == Role::kFollower; ++t) {
      node_->tick();
      drain();
    }
    for (int round = 0; round < 2 && node_->role() != Role::kLeader; ++round) {
      bool pre = node_->role() == Role::kPreCandidate;
      raftpb::Message grant;
      grant.set_type(pre ? raftpb::MSG_PRE_VOTE_RESP : raftpb::MSG_VOTE_RESP);
      grant.set_from(1);
      grant.set_to(kSelf);
      grant.set_term(node_->term() + (pre ? 1 : 0));
      (void)node_->step(grant);
      drain();
    }
  }

  void compact() {
    uint64_t applied = node_->applied_index();
    if (applied < storage_->first_index()) return;
    storage_->create_snapshot(applied, node_->conf_state_at(applied), "snapshot");
    storage_->compact(applied);
  }

  void drain() {
    for (int i = 0; i < 64 && node_->has_ready(); ++i) {
      fencelock::raft::Ready rd = node_->ready();
      if (rd.snapshot) storage_->apply_snapshot(*rd.snapshot);
      storage_->append(rd.entries);
      if (rd.hard_state) storage_->set_hard_state(*rd.hard_state);
      node_->advance();
    }
  }

  void check_invariants() {
    const RawNode& n = *node_;
    FL_CHECK(n.commit_index() <= n.last_index(), "commit {} beyond last index {}", n.commit_index(),
             n.last_index());
    FL_CHECK(n.applied_index() <= n.commit_index(), "applied {} beyond commit {}",
             n.applied_index(), n.commit_index());
    FL_CHECK(n.term() >= last_term_, "term went back from {} to {}", last_term_, n.term());
    FL_CHECK(n.commit_index() >= last_commit_, "commit went back from {} to {}", last_commit_,
             n.commit_index());
    FL_CHECK(n.term() <= fencelock::raft::kMaxTerm + 1, "term {} beyond the bound", n.term());
    last_term_ = n.term();
    last_commit_ = n.commit_index();
    // A committed entry is never replaced (Raft §5.4, State Machine Safety).
    // Only what storage holds (a snapshot may move the commit far ahead).
    uint64_t from = std::max(storage_->first_index(),
                             committed_terms_.empty() ? 1 : committed_terms_.rbegin()->first + 1);
    uint64_t to = std::min(n.commit_index(), storage_->last_index());
    for (uint64_t i = from; i <= to; ++i) committed_terms_[i] = storage_->term(i);
    for (const auto& [index, term] : committed_terms_) {
      if (index < storage_->first_index() || index > storage_->last_index()) continue;
      FL_CHECK(storage_->term(index) == term, "committed entry {} of term {} now has term {}",
               index, term, storage_->term(index));
    }
    for (const auto& peer : n.progress()) {
      FL_CHECK(peer.match_index <= n.last_index(), "leader's match index {} for {} beyond {}",
               peer.match_index, peer.id, n.last_index());
    }
  }

  bool bypass_check_;
  std::unique_ptr<MemoryStorage> storage_;
  std::unique_ptr<RawNode> node_;
  uint64_t last_term_ = 0;
  uint64_t last_commit_ = 0;
  std::map<uint64_t, uint64_t> committed_terms_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  Reader in(data, size);
  Harness harness(in.u8());
  harness.run(in);
  return 0;
}
