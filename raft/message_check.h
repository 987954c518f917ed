#pragma once
// check_message: the first line of defence between the network and the
// Raft core. Every message a peer sends is checked against what the
// receiving core knows before RawNode::step sees it; a message that fails
// is dropped (the caller logs and counts it), never stepped. A correct
// node never sends a message that fails: the simulators check every
// message they deliver (docs/simulator.md), with membership changes,
// crashes and partitions, so the rules below drop no legitimate traffic.
//
// What it checks (docs/architecture.md "Network", "Peer messages"):
//   - the type is one a peer sends (MSG_NONE, unknown values and MSG_PROP,
//     which this core never forwards, are not);
//   - `to` is the receiver and `from` is a node id that is not the
//     receiver's. Not membership: a node whose log lags does not know a
//     newer member that may lead it, a joiner knows no one, and a removed
//     node talks until it learns its removal (raft/membership.h). The peer
//     transport admits only the configuration's members, and a message
//     whose `from` is not its connection's Hello;
//   - the term is below kMaxTerm and at most kMaxTermAhead beyond the
//     receiver's (a correct node's term grows one election at a time;
//     nothing near 2^64 may reach the core, whose term + 1 must not wrap);
//   - for a message the core acts on (its term is not older than the
//     receiver's, or a forwarded MSG_READ_INDEX): every index below
//     kMaxIndex; a log_term no newer than the message's term; an
//     AppendEntries' entries contiguous after `index`, of known types, with
//     terms from log_term up to the message's term, never decreasing; a
//     heartbeat's commit within the receiver's log (the leader sends
//     min(its commit, the follower's match index): never more than the
//     follower holds); a leader's acknowledgement within the leader's log
//     (a follower acknowledges only entries the leader sent it); a
//     snapshot's metadata (an index, a term no newer than the message's,
//     a configuration whose voters and learners are distinct and
//     non-zero).
// RawNode itself also refuses, without aborting, what would break its log
// (Error::kInvalidMessage): defence in depth.
//
// Thread-safety: pure functions of their arguments.

#include <cstdint>
#include <string>
#include <string_view>

#include "proto/raft.pb.h"

namespace fencelock::raft {

class RawNode;

// No term or index reaches these: a log growing by a million entries a
// second takes 36,000 years to reach 2^60.
inline constexpr uint64_t kMaxTerm = uint64_t{1} << 60;
inline constexpr uint64_t kMaxIndex = uint64_t{1} << 60;
// How far beyond the receiver's term a message may be: four billion
// elections, more than any correct node holds (with pre-vote a partitioned
// node does not even raise its term).
inline constexpr uint64_t kMaxTermAhead = uint64_t{1} << 32;

enum class MessageFault {
  kNone,
  kUnknownType,     // MSG_NONE or a value outside MessageType
  kNotFromPeer,     // a type no peer sends (MSG_PROP)
  kWrongRecipient,  // `to` is not the receiver
  kBadSender,       // `from` is 0 or the receiver itself
  kTermOutOfRange,  // beyond kMaxTerm or kMaxTermAhead past the receiver's
  kIndexOutOfRange, // an index or log_term no correct sender could use
  kCommitOutOfRange,// a heartbeat's commit beyond the receiver's log
  kBadEntries,      // not contiguous after `index`, unknown type, or a term out of order
  kBadSnapshot,     // missing, or inconsistent metadata
};
inline constexpr int kMessageFaultCount = 10;

std::string_view message_fault_name(MessageFault fault);

struct MessageCheck {
  MessageFault fault = MessageFault::kNone;
  std::string reason;  // for the log line; empty when ok
  bool ok() const { return fault == MessageFault::kNone; }
};

// The facts about the receiver the checks use; from_node() reads them off
// a core.
struct ReceiverView {
  uint64_t id = 0;
  uint64_t term = 0;
  uint64_t last_index = 0;
  bool leader = false;

  static ReceiverView from_node(const RawNode& node);
};

// Checks `m`, which arrived from the network, against `receiver`. Call it
// right before stepping `m` (the receiver's state at that moment counts).
MessageCheck check_message(const raftpb::Message& m, const ReceiverView& receiver);
MessageCheck check_message(const raftpb::Message& m, const RawNode& receiver);

// The checks of a snapshot's configuration: voters and learners non-zero
// and distinct (no id twice, none both), members' ids non-zero and
// distinct. Returns why not, or empty.
std::string conf_state_fault(const raftpb::ConfState& conf);

}  // namespace fencelock::raft
