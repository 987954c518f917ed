#pragma once
// SimOperator: a simulated administrator changing the cluster's membership
// during the node-level simulator's chaos, through the member requests of
// proto/client.proto (MemberList, MemberAdd, MemberPromote, MemberRemove)
// sent over its own SimClient — the same simulated connections and the
// same client::CallPolicy retry rules as every other client.
//
// One operation at a time, each retried until it is acknowledged (the
// cluster's answers can be lost, time out, or come from a leader that is
// being deposed; a retry of an acknowledged change is answered OK):
//   add       start a new node with a never-used id (a fresh disk,
//             NodeConfig::join, the members it was told of) and add it as
//             a learner; usually wait for it to catch up and promote it
//   remove    remove a voter, sometimes the leader (which hands its office
//             over first and answers UNAVAILABLE meanwhile), or a learner
//   replace   add and promote a new node, then remove an old one
// keeping the number of voters within [min_voters, 5]. Its own record of
// the acknowledged changes is exact (no one else changes the membership),
// so it never asks for a change the rules would refuse.
//
// After healing it finishes the operation under way, starts no other, and
// asks for the final member list until the host is satisfied with it.
//
// Thread-safety: not thread-safe; the simulator's thread.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "proto/client.pb.h"
#include "tests/sim/node/sim_client.h"
#include "tests/sim/node/sim_clock.h"

namespace fencelock::sim {

// The address (peer and client alike) of node `id` on the simulated network.
inline std::string node_address(uint64_t id) { return "n" + std::to_string(id); }

// What the operator needs from the simulation.
class OperatorHost {
 public:
  virtual ~OperatorHost() = default;
  virtual Micros now() const = 0;
  virtual void at(Micros at, std::function<void()> fn) = 0;
  virtual void trace(const std::string& line) = 0;
  // Starts node `id` for the first time: a fresh disk, joining, knowing
  // `peers` (id -> address) as fencelockd --join would.
  virtual void start_joiner(uint64_t id, const std::map<uint64_t, std::string>& peers) = 0;
  // The removal of node `id` was acknowledged: its process is stopped and
  // discarded, now or after a while.
  virtual void removed(uint64_t id) = 0;
  // A change concerning node `subject` was just sent: a chance to strike
  // the cluster while it is under way.
  virtual void change_under_way(uint64_t subject) = 0;
  // After healing: whether `list` (a MemberList answer) is the final one.
  enum class Verdict { kDone, kWait, kAskAgain };
  virtual Verdict final_list(const clientpb::MemberListResult& list) = 0;
};

struct SimOperatorOptions {
  uint64_t seed = 0;
  std::vector<uint64_t> founders;   // the first voters
  std::vector<uint64_t> fresh_ids;  // ids it may add, in this order
  size_t min_voters = 3;
  size_t max_voters = 5;
  Micros start_at = 0;
  // Between two operations it pauses pause_min_ms + [0, pause_span_ms).
  uint64_t pause_min_ms = 20;
  uint64_t pause_span_ms = 500;
};

class SimOperator {
 public:
  SimOperator(OperatorHost& host, SimClient& client, SimOperatorOptions options);
  SimOperator(const SimOperator&) = delete;
  SimOperator& operator=(const SimOperator&) = delete;

  void start();
  // No new operation from now on: the one under way finishes, then the
  // final member list.
  void heal();
  bool done() const { return done_; }
  const std::optional<clientpb::MemberListResult>& last_list() const { return last_list_; }

  // The acknowledged membership, as the operator recorded it.
  const std::set<uint64_t>& voters() const { return voters_; }
  const std::set<uint64_t>& learners() const { return learners_; }
  const std::set<uint64_t>& removed_ids() const { return removed_; }

  uint64_t adds() const { return adds_; }
  uint64_t promotes() const { return promotes_; }
  uint64_t removes() const { return removes_; }
  uint64_t leader_removals() const { return leader_removals_; }

 private:
  using Then = std::function<void()>;

  void trace(const std::string& line);
  uint64_t pick(uint64_t n) { return n == 0 ? 0 : rng_() % n; }
  bool chance(uint64_t percent) { return pick(100) < percent; }
  void after_ms(uint64_t ms, Then then);

  void next();
  void finish();
  void ask_final();
  void judge_final(const clientpb::MemberListResult& list);
  // Sends `request` until it is answered OK (a new attempt 20-220 ms after
  // any other final answer, TIMEOUT included), then `then(answer)`.
  void until_ok(clientpb::Request request, std::string what,
                std::function<void(const clientpb::Response&)> then);
  void list(std::function<void(const clientpb::MemberListResult&)> then);

  // Adds a fresh node as a learner, then `then(id)`.
  void add(std::function<void(uint64_t)> then);
  void catch_up(uint64_t id, int polls, Then then);
  void promote(uint64_t id, Then then);
  void remove(uint64_t id, Then then);
  void remove_some_voter(Then then);
  std::map<uint64_t, std::string> peers_from(const clientpb::MemberListResult& list) const;

  OperatorHost& host_;
  SimClient& client_;
  SimOperatorOptions options_;
  std::mt19937_64 rng_;
  size_t next_fresh_ = 0;
  bool healed_ = false;
  bool busy_ = false;
  bool done_ = false;
  std::set<uint64_t> voters_;
  std::set<uint64_t> learners_;
  std::set<uint64_t> removed_;
  std::optional<clientpb::MemberListResult> last_list_;

  uint64_t adds_ = 0;
  uint64_t promotes_ = 0;
  uint64_t removes_ = 0;
  uint64_t leader_removals_ = 0;
};

}  // namespace fencelock::sim
