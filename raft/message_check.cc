#include "raft/message_check.h"

#include <fmt/format.h>

#include <set>

#include "raft/raw_node.h"

namespace fencelock::raft {

namespace {

using raftpb::Message;

MessageCheck fail(MessageFault fault, std::string reason) {
  return MessageCheck{fault, std::move(reason)};
}

MessageCheck check_entries(const Message& m) {
  if (m.index() > kMaxIndex - static_cast<uint64_t>(m.entries_size())) {
    return fail(MessageFault::kIndexOutOfRange,
                fmt::format("{} entries after index {}", m.entries_size(), m.index()));
  }
  uint64_t previous_term = m.log_term();
  for (int i = 0; i < m.entries_size(); ++i) {
    const raftpb::Entry& e = m.entries(i);
    uint64_t expected = m.index() + 1 + static_cast<uint64_t>(i);
    if (e.index() != expected) {
      return fail(MessageFault::kBadEntries,
                  fmt::format("entry {} has index {}, expected {}", i, e.index(), expected));
    }
    if (!raftpb::EntryType_IsValid(e.type())) {
      return fail(MessageFault::kBadEntries,
                  fmt::format("entry {} has unknown type {}", e.index(), static_cast<int>(e.type())));
    }
    // Raft §5.3: terms in a log never decrease, and a leader holds no
    // entry of a term after its own.
    if (e.term() < previous_term || e.term() > m.term()) {
      return fail(MessageFault::kBadEntries,
                  fmt::format("entry {} has term {}, outside [{}, {}]", e.index(), e.term(),
                              previous_term, m.term()));
    }
    previous_term = e.term();
  }
  return {};
}

MessageCheck check_snapshot(const Message& m) {
  if (!m.has_snapshot()) return fail(MessageFault::kBadSnapshot, "no snapshot");
  const raftpb::SnapshotMetadata& meta = m.snapshot().metadata();
  if (meta.index() == 0 || meta.index() > kMaxIndex) {
    return fail(MessageFault::kBadSnapshot, fmt::format("snapshot index {}", meta.index()));
  }
  if (meta.term() == 0 || meta.term() > m.term()) {
    return fail(MessageFault::kBadSnapshot,
                fmt::format("snapshot term {} at message term {}", meta.term(), m.term()));
  }
  if (std::string why = conf_state_fault(meta.conf_state()); !why.empty()) {
    return fail(MessageFault::kBadSnapshot, "snapshot configuration: " + why);
  }
  return {};
}

}  // namespace

std::string_view message_fault_name(MessageFault fault) {
  switch (fault) {
    case MessageFault::kNone:
      return "none";
    case MessageFault::kUnknownType:
      return "unknown type";
    case MessageFault::kNotFromPeer:
      return "not a peer message";
    case MessageFault::kWrongRecipient:
      return "wrong recipient";
    case MessageFault::kBadSender:
      return "bad sender";
    case MessageFault::kTermOutOfRange:
      return "term out of range";
    case MessageFault::kIndexOutOfRange:
      return "index out of range";
    case MessageFault::kCommitOutOfRange:
      return "commit out of range";
    case MessageFault::kBadEntries:
      return "bad entries";
    case MessageFault::kBadSnapshot:
      return "bad snapshot";
  }
  return "unknown fault";
}

ReceiverView ReceiverView::from_node(const RawNode& node) {
  return ReceiverView{node.id(), node.term(), node.last_index(), node.role() == Role::kLeader};
}

std::string conf_state_fault(const raftpb::ConfState& conf) {
  std::set<uint64_t> seen;
  for (const auto* ids : {&conf.voters(), &conf.learners()}) {
    for (uint64_t id : *ids) {
      if (id == 0) return "node id 0";
      if (!seen.insert(id).second) return fmt::format("node {} listed twice", id);
    }
  }
  std::set<uint64_t> members;
  for (const auto& member : conf.members()) {
    if (member.id() == 0) return "member id 0";
    if (!members.insert(member.id()).second) {
      return fmt::format("member {} listed twice", member.id());
    }
  }
  return "";
}

MessageCheck check_message(const Message& m, const ReceiverView& receiver) {
  if (m.type() == raftpb::MSG_NONE || !raftpb::MessageType_IsValid(m.type())) {
    return fail(MessageFault::kUnknownType, fmt::format("type {}", static_cast<int>(m.type())));
  }
  if (m.type() == raftpb::MSG_PROP) {
    return fail(MessageFault::kNotFromPeer, "MSG_PROP: proposals are never forwarded");
  }
  if (m.to() != receiver.id) {
    return fail(MessageFault::kWrongRecipient, fmt::format("addressed to {}", m.to()));
  }
  if (m.from() == 0 || m.from() == receiver.id) {
    return fail(MessageFault::kBadSender, fmt::format("from {}", m.from()));
  }
  if (m.term() > kMaxTerm || m.term() > receiver.term + kMaxTermAhead) {
    return fail(MessageFault::kTermOutOfRange,
                fmt::format("term {} at receiver term {}", m.term(), receiver.term));
  }
  // A message of an older term is answered or ignored on its type and
  // term alone (RawNode::step): its other fields are never read.
  bool forwarded_read = m.type() == raftpb::MSG_READ_INDEX && m.term() == 0;
  if (m.term() < receiver.term && !forwarded_read) return {};

  if (m.index() > kMaxIndex || m.commit() > kMaxIndex || m.reject_hint() > kMaxIndex) {
    return fail(MessageFault::kIndexOutOfRange,
                fmt::format("index {}, commit {}, reject hint {}", m.index(), m.commit(),
                            m.reject_hint()));
  }
  if (m.log_term() > m.term()) {
    return fail(MessageFault::kIndexOutOfRange,
                fmt::format("log term {} after message term {}", m.log_term(), m.term()));
  }
  switch (m.type()) {
    case raftpb::MSG_APP:
      return check_entries(m);
    case raftpb::MSG_HEARTBEAT:
      if (m.entries_size() > 0) return fail(MessageFault::kBadEntries, "a heartbeat with entries");
      // The leader sends min(its commit, our match index): never more than
      // we hold (RawNode::send_heartbeat).
      if (m.commit() > receiver.last_index) {
        return fail(MessageFault::kCommitOutOfRange,
                    fmt::format("commit {} beyond last index {}", m.commit(), receiver.last_index));
      }
      return {};
    case raftpb::MSG_SNAP:
      return check_snapshot(m);
    case raftpb::MSG_APP_RESP:
      // A follower acknowledges entries its leader sent it, in this term:
      // the leader holds them.
      if (receiver.leader && m.term() == receiver.term && !m.reject() &&
          m.index() > receiver.last_index) {
        return fail(MessageFault::kIndexOutOfRange,
                    fmt::format("acknowledges index {} beyond last index {}", m.index(),
                                receiver.last_index));
      }
      return {};
    default:
      return {};
  }
}

MessageCheck check_message(const Message& m, const RawNode& receiver) {
  return check_message(m, ReceiverView::from_node(receiver));
}

}  // namespace fencelock::raft
