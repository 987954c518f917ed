#pragma once
// Members: the node's view of the cluster's membership, and the member
// requests (list, add, promote, remove; docs/operations.md "Membership").
//
// The configuration comes from the Raft core (the latest in the log,
// raft/membership.h), with every member's addresses. A data directory made
// before members carried addresses falls back to --peers for peer
// addresses; client addresses not in the configuration come from the
// peers' Hellos.
//
// A change is proposed by the leader and answered once the entry applies
// (or UNAVAILABLE if another entry took its index: retry). Adding a member
// that is already one with the same addresses, promoting a voter and
// removing a node that is not a member answer OK too, so a client's retry
// after a lost answer does not fail — but only once an empty entry of the
// leader's term applies with the configuration there still satisfying it
// (a leader deposed without knowing it holds a stale configuration), and
// never while the latest change is uncommitted: such requests are answered
// UNAVAILABLE then (an OK read from an entry that another leader may still
// overwrite would be lost with it). Removing the leader first hands
// leadership to the most up-to-date voter and answers UNAVAILABLE: the
// client's retry reaches the new leader, which removes the old one.
//
// Thread-safety: not thread-safe; the node's loop only.

#include <spdlog/logger.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <vector>
#include <string>

#include "proto/client.pb.h"
#include "raft/raw_node.h"
#include "server/config.h"
#include "server/env.h"
#include "server/responder.h"

namespace fencelock::server {

// How far (in log entries) a learner may trail the leader's last index and
// still be promoted: the rest arrives within a few appends.
inline constexpr uint64_t kPromoteMaxLag = 1000;

class Members {
 public:
  Members(Env& env, Responder& responder, const NodeConfig& config,
          std::shared_ptr<spdlog::logger> logger);

  // The latest configuration changed (and at start): remembers it and hands
  // the Env the peers to connect to: the members, and the removed nodes
  // the leader still replicates to so they learn of their removal
  // (raft::RawNode::leaving).
  void on_conf_state(const raftpb::ConfState& conf, const std::vector<uint64_t>& leaving);
  // The leader's leaving nodes changed (checked every tick).
  void set_leaving(const std::vector<uint64_t>& leaving);

  // Whether this node is a voter or learner of the latest configuration. A
  // removed node (or one not yet added) does not serve clients.
  bool self_is_member() const;
  // `id`'s client address: from the configuration, else its Hello; "" if unknown.
  std::string client_address(uint64_t id) const;
  // Every member's peer address (this node's included).
  std::map<uint64_t, std::string> peer_addresses() const;

  // A MemberList/Add/Promote/Remove request. `raft` must be the leader's
  // core when `leader`; a follower answers NOT_LEADER.
  void handle(raft::RawNode& raft, bool leader, const Caller& caller,
              const clientpb::Request& request);

  // A ConfChange entry applied: answers the change proposed at its index.
  void applied(const raftpb::Entry& entry, const raft::RawNode& raft);

  // The members as `raft` sees them (the leader adds match indices).
  clientpb::MemberListResult list(const raft::RawNode& raft) const;

 private:
  struct Pending {
    Caller caller;
    uint64_t term = 0;
    // A request the configuration already satisfied: checked again once
    // the empty entry proposed for it applies (confirm()).
    std::optional<clientpb::Request> check;
  };

  // Answers a proposal the core refused: NOT_LEADER with a hint, or the
  // error its code maps to.
  void refuse(const Caller& caller, const raft::Status& status);
  void propose(raft::RawNode& raft, const Caller& caller, const raftpb::ConfChange& change);
  // Answers `request`, which needs no change, once an empty entry of this
  // leader's term applies, if the configuration there still satisfies it.
  void confirm(raft::RawNode& raft, const Caller& caller, const clientpb::Request& request);
  void remember(const raft::ProposalId& id, Pending pending);
  void remove_leader(raft::RawNode& raft, const Caller& caller);
  void answer_list(const Caller& caller, const raft::RawNode& raft, std::string note = "");

  Env& env_;
  Responder& responder_;
  uint64_t self_id_;
  std::string self_client_address_;
  std::map<uint64_t, std::string> fallback_peers_;  // --peers, or what --join learnt
  std::shared_ptr<spdlog::logger> logger_;
  raftpb::ConfState conf_;
  std::set<uint64_t> leaving_;
  std::map<uint64_t, std::string> departed_;  // peer addresses of removed members
  std::map<uint64_t, Pending> pending_;  // proposed changes by log index
};

}  // namespace fencelock::server
