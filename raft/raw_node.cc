#include "raft/raw_node.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/check.h"
#include "raft/membership.h"
#include "raft/message_check.h"
#include "raft/random.h"

namespace fencelock::raft {

namespace {

using raftpb::Message;
using raftpb::MessageType;

// Marks a vote request sent because of TimeoutNow: voters grant it even
// inside a leader lease (dissertation §3.10, §4.2.3).
constexpr std::string_view kCampaignTransfer = "CampaignTransfer";

}  // namespace

std::string_view role_name(Role role) {
  switch (role) {
    case Role::kFollower:
      return "follower";
    case Role::kPreCandidate:
      return "pre-candidate";
    case Role::kCandidate:
      return "candidate";
    case Role::kLeader:
      return "leader";
  }
  return "unknown";
}

RawNode::RawNode(Config config, const LogStorage& storage, std::shared_ptr<spdlog::logger> logger)
    : id_(config.id),
      config_(std::move(config)),
      logger_(std::move(logger)),
      rng_(config_.seed),
      log_(storage) {
  FL_CHECK(id_ != 0, "node id must be non-zero");
  FL_CHECK(logger_ != nullptr, "node {} needs a logger", id_);
  FL_CHECK(config_.heartbeat_ticks > 0, "heartbeat_ticks must be positive");
  FL_CHECK(config_.election_ticks > config_.heartbeat_ticks,
           "election_ticks ({}) must exceed heartbeat_ticks ({})", config_.election_ticks,
           config_.heartbeat_ticks);
  FL_CHECK(config_.max_inflight_msgs > 0, "max_inflight_msgs must be positive");

  InitialState initial = storage.initial_state();
  if (!config_.voters.empty()) {
    raftpb::ConfState conf;
    std::set<uint64_t> sorted(config_.voters.begin(), config_.voters.end());
    for (uint64_t voter : sorted) conf.add_voters(voter);
    log_.set_default_configuration(conf);
  }
  // A node with no configuration yet joins a running cluster: it waits,
  // never campaigning, until a leader sends it the log.
  refresh_configuration();
  reported_conf_bytes_ = conf_bytes_;

  const raftpb::HardState& hs = initial.hard_state;
  FL_CHECK(hs.commit() <= log_.last_index(),
           "damaged store: hard state commit {} beyond last log index {}", hs.commit(),
           log_.last_index());
  // Whatever the state machine applied was committed, even when the hard
  // state's commit index is older (it is written without fsync, and a
  // snapshot can be durable before it).
  log_.commit_to(std::max(hs.commit(), config_.applied));
  if (config_.applied > 0) log_.applied_to(config_.applied);
  term_ = hs.term();
  become_follower(hs.term(), 0);
  vote_ = hs.vote();
  prev_hard_state_ = hs;
  prev_soft_state_ = SoftState{0, Role::kFollower};
  logger_->info(
      "{} started at term {} (seed {}): commit {}, applied {}, last index {}, {} voters, {} "
      "learners",
      id_, term_, config_.seed, log_.committed(), log_.applied(), log_.last_index(),
      voters_.size(), learners_.size());
}

void RawNode::check_not_awaiting_advance(const char* call) const {
  FL_CHECK(!awaiting_advance_, "node {}: {}() called between ready() and advance()", id_, call);
}

bool RawNode::promotable() const {
  if (log_.unstable_snapshot().has_value()) return false;
  return voters_.contains(id_) || removal_pending();
}

// The latest configuration removed this voter and is not known committed.
// It may still campaign (counting the votes of the latest configuration,
// not its own) and lead until the removal commits (dissertation §4.2.2):
// its log may be the only one that holds the removal, and then no other
// node can win an election without it, since the removed node's log is
// ahead of theirs.
bool RawNode::removal_pending() const {
  const Membership& membership = log_.membership();
  uint64_t latest = membership.latest_index();
  if (voters_.contains(id_) || latest <= log_.committed() || latest <= membership.base_index()) {
    return false;
  }
  return is_voter(membership.at(latest - 1), id_);
}

bool RawNode::committed_entry_in_current_term() const {
  return log_.term(log_.committed()) == term_;
}

size_t RawNode::voter_count(const std::set<uint64_t>& ids) const {
  return static_cast<size_t>(
      std::count_if(ids.begin(), ids.end(), [this](uint64_t id) { return voters_.contains(id); }));
}

// ---------------------------------------------------------------- membership

void RawNode::refresh_configuration() {
  if (log_.membership().generation() == conf_generation_) return;
  conf_generation_ = log_.membership().generation();
  const raftpb::ConfState& conf = log_.membership().latest();
  std::string bytes = conf.SerializeAsString();
  if (bytes == conf_bytes_) return;
  conf_bytes_ = std::move(bytes);
  voters_ = std::set<uint64_t>(conf.voters().begin(), conf.voters().end());
  learners_ = std::set<uint64_t>(conf.learners().begin(), conf.learners().end());
  logger_->info("{} configuration at index {} (term {}): voters {}, learners {}", id_,
                log_.membership().latest_index(), term_, fmt::join(voters_, ","),
                fmt::join(learners_, ","));
  if (lead_transferee_ != 0 && !voters_.contains(lead_transferee_)) abort_leader_transfer();
  if (role_ != Role::kLeader) return;
  for (const std::set<uint64_t>* ids : {&voters_, &learners_}) {
    for (uint64_t id : *ids) {
      auto [it, added] =
          progress_.emplace(id, Progress(log_.last_index() + 1, config_.max_inflight_msgs));
      // A new member gets one check-quorum round to answer (etcd does the same).
      if (added) it->second.set_recent_active(true);
    }
  }
  for (const auto& [id, pr] : progress_) {
    if (!voters_.contains(id) && !learners_.contains(id)) {
      removed_at_.emplace(id, log_.membership().latest_index());
    }
  }
  for (auto it = prompt_.begin(); it != prompt_.end();) {
    it = voters_.contains(*it) ? std::next(it) : prompt_.erase(it);
  }
  pending_broadcast_ = true;
  maybe_commit();  // fewer voters may make a quorum already
  drop_removed_progress();
}

// A removed node keeps its progress while the leader replicates its
// removal, and after the removal commits until it holds the entry that
// removed it (it stops campaigning as soon as it appends it): then one
// last heartbeat tells it the commit, so its host can apply the removal.
// The removal may well commit before the removed node has the entry: it
// is not needed for the commit. A removed node that does not answer for a
// whole round (`round_over`: an election timeout, as check-quorum counts)
// is dropped without hearing of it; it may be gone, and pre-vote and
// leader leases keep it from disrupting the cluster if it is not.
void RawNode::drop_removed_progress(bool round_over) {
  if (role_ != Role::kLeader || log_.membership().latest_index() > log_.committed()) return;
  for (auto it = progress_.begin(); it != progress_.end();) {
    uint64_t id = it->first;
    Progress& pr = it->second;
    if (id == id_ || voters_.contains(id) || learners_.contains(id)) {
      ++it;
      continue;
    }
    auto at = removed_at_.find(id);
    bool holds_removal = at == removed_at_.end() || pr.match_index() >= at->second;
    if (!holds_removal && !(round_over && !pr.recent_active())) {
      if (round_over) pr.set_recent_active(false);
      ++it;
      continue;
    }
    if (holds_removal) {
      logger_->info("{} stops replicating to removed node {} at term {}: it holds its removal",
                    id_, id, term_);
      send_heartbeat(id, "");
    } else {
      logger_->info("{} stops replicating to removed node {} at term {}: no answer for a round",
                    id_, id, term_);
    }
    prompt_.erase(id);
    removed_at_.erase(id);
    it = progress_.erase(it);
  }
}

// A leader that led while its own removal was pending sees it commit: it
// asks the most up-to-date voter to campaign at once, and steps down.
void RawNode::step_down_removed() {
  uint64_t best = 0;
  uint64_t best_match = 0;
  for (const auto& [id, pr] : progress_) {
    if (voters_.contains(id) && pr.match_index() > best_match) {
      best = id;
      best_match = pr.match_index();
    }
  }
  logger_->info("{} steps down at term {}: its removal committed", id_, term_);
  for (const auto& [id, pr] : progress_) {
    if (id != id_) send_heartbeat(id, "");  // the commit, so they know it too
  }
  if (best != 0 && best_match == log_.last_index()) send_timeout_now(best);
  become_follower(term_, 0);
}

// ---------------------------------------------------------------- roles

void RawNode::reset(uint64_t term) {
  if (term_ != term) {
    term_ = term;
    vote_ = 0;
  }
  lead_ = 0;
  election_elapsed_ = 0;
  heartbeat_elapsed_ = 0;
  reset_randomized_election_timeout();
  abort_leader_transfer();
  votes_.clear();
  progress_.clear();
  removed_at_.clear();
  read_requests_.clear();
  reads_awaiting_commit_.clear();
  pending_broadcast_ = false;
  prompt_.clear();
  answered_.clear();
}

void RawNode::reset_randomized_election_timeout() {
  randomized_election_timeout_ =
      config_.election_ticks +
      static_cast<int>(uniform_below(rng_, static_cast<uint64_t>(config_.election_ticks)));
}

void RawNode::become_follower(uint64_t term, uint64_t lead) {
  reset(term);
  lead_ = lead;
  role_ = Role::kFollower;
  logger_->info("{} became follower at term {}", id_, term_);
}

void RawNode::become_pre_candidate() {
  FL_CHECK(role_ != Role::kLeader, "node {}: leader cannot become pre-candidate", id_);
  // Pre-vote changes neither term nor vote (dissertation §9.6).
  votes_.clear();
  lead_ = 0;
  role_ = Role::kPreCandidate;
  logger_->info("{} became pre-candidate at term {}", id_, term_);
}

void RawNode::become_candidate() {
  FL_CHECK(role_ != Role::kLeader, "node {}: leader cannot become candidate", id_);
  reset(term_ + 1);
  vote_ = id_;
  role_ = Role::kCandidate;
  logger_->info("{} became candidate at term {}", id_, term_);
}

void RawNode::become_leader() {
  FL_CHECK(role_ == Role::kCandidate, "node {}: only a candidate becomes leader", id_);
  reset(term_);
  lead_ = id_;
  role_ = Role::kLeader;
  std::set<uint64_t> members = voters_;
  members.insert(learners_.begin(), learners_.end());
  members.insert(id_);  // a leader whose removal is pending is no member
  for (uint64_t voter : members) {
    auto [it, inserted] =
        progress_.emplace(voter, Progress(log_.last_index() + 1, config_.max_inflight_msgs));
    if (voter == id_) {
      // Only what is on our disk counts toward a quorum (docs/design.md "Durability").
      it->second.maybe_update(log_.last_stable_index());
      it->second.become_replicate();
      it->second.set_recent_active(true);
    }
  }
  // Raft §8 / dissertation §6.4: an empty entry of the new term lets the
  // leader commit (and so learn the commit index) without client traffic.
  raftpb::Entry noop;
  noop.set_term(term_);
  noop.set_index(log_.last_index() + 1);
  log_.append({noop});
  logger_->info("{} became leader at term {}", id_, term_);
}

void RawNode::campaign(CampaignKind kind) {
  MessageType type;
  uint64_t vote_term;
  if (kind == CampaignKind::kPreElection) {
    become_pre_candidate();
    type = raftpb::MSG_PRE_VOTE;
    vote_term = term_ + 1;  // the term we would campaign at; not adopted yet
  } else {
    become_candidate();
    type = raftpb::MSG_VOTE;
    vote_term = term_;
  }
  logger_->info("{} is starting a new {} at term {}", id_,
                kind == CampaignKind::kPreElection ? "pre-election" : "election", term_);
  size_t rejections = 0;
  if (poll(id_, true, &rejections)) {
    // A single-voter cluster wins at once.
    if (kind == CampaignKind::kPreElection) {
      campaign(CampaignKind::kElection);
    } else {
      become_leader();
    }
    return;
  }
  for (uint64_t voter : voters_) {
    if (voter == id_) continue;
    Message m;
    m.set_type(type);
    m.set_to(voter);
    m.set_term(vote_term);
    m.set_index(log_.last_index());
    m.set_log_term(log_.last_term());
    if (kind == CampaignKind::kTransfer) m.set_context(std::string(kCampaignTransfer));
    send(std::move(m));
  }
}

// Records a vote; returns true once a quorum granted. Sets *rejections.
bool RawNode::poll(uint64_t from, bool granted, size_t* rejections) {
  votes_.emplace(from, granted);  // the first answer from a voter counts
  size_t granted_count = 0;
  *rejections = 0;
  for (const auto& [voter, vote] : votes_) {
    if (!voters_.contains(voter)) continue;
    if (vote) {
      ++granted_count;
    } else {
      ++*rejections;
    }
  }
  return granted_count >= quorum();
}

// ---------------------------------------------------------------- ticks

void RawNode::tick() {
  check_not_awaiting_advance("tick");
  if (role_ == Role::kLeader) {
    tick_heartbeat();
  } else {
    tick_election();
  }
}

void RawNode::tick_election() {
  ++election_elapsed_;
  if (promotable() && election_elapsed_ >= randomized_election_timeout_) {
    election_elapsed_ = 0;
    campaign(config_.pre_vote ? CampaignKind::kPreElection : CampaignKind::kElection);
  }
}

void RawNode::tick_heartbeat() {
  ++heartbeat_elapsed_;
  ++election_elapsed_;
  if (election_elapsed_ >= config_.election_ticks) {
    election_elapsed_ = 0;
    drop_removed_progress(/*round_over=*/true);
    if (config_.check_quorum) {
      // Dissertation §6.2: a leader that cannot reach a majority steps down,
      // so clients look for the real leader and ReadIndex leases stay sound.
      size_t active = 0;
      for (auto& [peer, pr] : progress_) {
        if (voters_.contains(peer) && (peer == id_ || pr.recent_active())) ++active;
        if (peer != id_) pr.set_recent_active(false);
      }
      if (active < quorum()) {
        logger_->info("{} stepped down to follower since quorum is not active", id_);
        become_follower(term_, 0);
        return;
      }
    }
    if (lead_transferee_ != 0) abort_leader_transfer();
  }
  for (auto& [voter, pr] : progress_) {
    if (voter != id_ && pr.snapshot_timed_out(config_.election_ticks)) {
      logger_->info("{} snapshot to {} unanswered, probing again", id_, voter);
      pr.become_probe();
      send_append(voter, true);
    }
  }
  if (heartbeat_elapsed_ >= config_.heartbeat_ticks) {
    heartbeat_elapsed_ = 0;
    review_prompt_followers();
    bcast_heartbeat();
  }
}

// ------------------------------------------------- prompt and lazy followers
//
// A commit needs quorum-1 followers' acknowledgements besides the leader's
// own write. The leader names that many followers prompt: the first, in
// its term, to acknowledge everything committed while replicating. Its
// appends to the rest carry lazy_persist, and a lazy follower may hold its
// write for a moment to gather more (the server's window,
// Ready::persist_lazily), so that when nodes share a disk or a host its
// writes stay out of the way of the ones a commit waits for, and it syncs
// less often. Safety does not depend on any of this: every follower
// acknowledges only what it has synced, and a lazy follower is only a slow
// one. Liveness neither: a lazy follower still acknowledges within its
// window, so a commit whose prompt follower died waits that much longer,
// and only until a heartbeat round drops it: each round drops a prompt
// follower that did not answer since the previous round or is no longer
// replicating. While fewer than quorum-1 are prompt, no append is lazy, and
// the next follower to qualify fills the place.

void RawNode::note_answer(uint64_t from) {
  if (config_.lazy_followers) answered_.insert(from);
}

void RawNode::maybe_wait_for(uint64_t from, const Progress& pr) {
  // Only a follower that has synced everything committed so far and is
  // replicating: a rejection, a heartbeat answer or a follower catching up
  // (probing, or taking a snapshot) would fill the place with one that
  // cannot help a commit yet.
  if (!config_.lazy_followers || prompt_full() || !voters_.contains(from)) return;
  if (pr.state() != ProgressState::kReplicate || pr.match_index() < log_.committed()) return;
  if (prompt_.insert(from).second) {
    logger_->debug("{} asks {} to persist at once at term {}", id_, from, term_);
  }
}

void RawNode::review_prompt_followers() {
  for (auto it = prompt_.begin(); it != prompt_.end();) {
    auto pr = progress_.find(*it);
    bool replicating = pr != progress_.end() && pr->second.state() == ProgressState::kReplicate &&
                       voters_.contains(*it);
    if (answered_.count(*it) && replicating) {
      ++it;
      continue;
    }
    logger_->info("{} no longer waits for {} at term {}: {}", id_, *it, term_,
                  replicating ? "no answer since the last heartbeat round" : "not replicating");
    it = prompt_.erase(it);
  }
  answered_.clear();
}

bool RawNode::lazy_for(uint64_t to) const {
  // A learner never counts toward a commit, so it may always gather appends.
  if (!config_.lazy_followers) return false;
  return !voters_.contains(to) || (prompt_full() && !prompt_.count(to));
}

bool RawNode::may_persist_lazily() const {
  if (role_ != Role::kFollower || prompt_append_ || log_.unstable_snapshot()) return false;
  if (log_.unstable_entries().empty()) return false;
  for (const auto& m : messages_after_persist_) {
    if (m.type() != raftpb::MSG_APP_RESP && m.type() != raftpb::MSG_HEARTBEAT_RESP) return false;
  }
  return true;
}

// ---------------------------------------------------------------- sending

void RawNode::send(Message m) {
  m.set_from(id_);
  if (m.type() != raftpb::MSG_VOTE && m.type() != raftpb::MSG_PRE_VOTE &&
      m.type() != raftpb::MSG_PRE_VOTE_RESP && m.type() != raftpb::MSG_READ_INDEX &&
      m.type() != raftpb::MSG_PROP) {
    m.set_term(term_);
  }
  // The leader's replication traffic promises nothing about its disk and
  // may leave at once; everything else waits for the persist (ready.h).
  bool leader_traffic = role_ == Role::kLeader &&
                        (m.type() == raftpb::MSG_APP || m.type() == raftpb::MSG_HEARTBEAT ||
                         m.type() == raftpb::MSG_SNAP || m.type() == raftpb::MSG_TIMEOUT_NOW);
  if (leader_traffic && m.type() == raftpb::MSG_APP) {
    // Except a ConfChange this leader has not written yet. It is in force
    // wherever it is appended (membership.h, rule 1): a follower that holds
    // its own removal stops campaigning and refuses its vote to any log
    // without it, so if the leader then lost it (a crash before its write),
    // a cluster shrinking from two voters to one would wait forever for a
    // vote no one can give. Sent after the write, the leader holds it too.
    uint64_t stable = log_.last_stable_index();
    for (const auto& entry : m.entries()) {
      if (entry.index() > stable && entry.type() == raftpb::ENTRY_CONF_CHANGE) {
        leader_traffic = false;
        break;
      }
    }
  }
  if (leader_traffic) {
    messages_.push_back(std::move(m));
  } else {
    messages_after_persist_.push_back(std::move(m));
  }
}

void RawNode::bcast_append() {
  for (auto& [voter, pr] : progress_) {
    if (voter == id_) continue;
    if (send_append(voter, true)) {
      while (send_append(voter, false)) {
      }
    }
  }
}

// Whether `to` knows the configuration in force before index 1, so that
// the log from index 1 tells it every configuration after. A cluster
// started from bootstrap_entries() starts from an empty one, which every
// node knows; one started from Config::voters or storage's ConfState
// starts from a configuration that is in no entry, which only its members
// know: a joiner would apply the log's changes to an empty configuration
// (after ADD_LEARNER and ADD_VOTER of itself, it would be its only voter).
// Where the log's history of configurations starts at a snapshot, what
// came before is unknown: the snapshot says it.
bool RawNode::log_start_known_to(uint64_t to) const {
  const Membership& membership = log_.membership();
  if (membership.base_index() != 0) return false;
  const raftpb::ConfState& base = membership.base();
  return (base.voters_size() == 0 && base.learners_size() == 0) || is_member(base, to);
}

bool RawNode::send_append(uint64_t to, bool send_if_empty) {
  Progress& pr = progress_.at(to);
  if (pr.is_paused()) return false;
  uint64_t prev_index = pr.next_index() - 1;
  if (prev_index == 0 && !log_start_known_to(to)) {
    // The log from index 1 would not tell `to` the configuration it starts
    // from: a snapshot does (when none exists yet, `to` waits for one).
    return send_snapshot(to, /*none_yet_ok=*/true);
  }
  std::optional<uint64_t> prev_term = log_.term(prev_index);
  std::optional<std::vector<raftpb::Entry>> entries;
  if (prev_term) {
    entries = log_.slice(pr.next_index(), log_.last_index() + 1, config_.max_size_per_msg);
  }
  if (!prev_term || !entries) return send_snapshot(to);  // Raft §7: compacted away
  if (entries->empty() && !send_if_empty) return false;
  Message m;
  m.set_type(raftpb::MSG_APP);
  m.set_to(to);
  m.set_index(prev_index);
  m.set_log_term(*prev_term);
  m.set_commit(log_.committed());
  m.set_lazy_persist(lazy_for(to));
  uint64_t last = entries->empty() ? 0 : entries->back().index();
  for (auto& e : *entries) *m.add_entries() = std::move(e);
  pr.on_append_sent(last);
  send(std::move(m));
  return true;
}

bool RawNode::send_snapshot(uint64_t to, bool none_yet_ok) {
  Progress& pr = progress_.at(to);
  if (!pr.recent_active()) {
    logger_->debug("{} skips snapshot to {}: not recently active", id_, to);
    return false;
  }
  raftpb::Snapshot snapshot = log_.snapshot();
  if (snapshot.metadata().index() == 0 && none_yet_ok) {
    logger_->debug("{} has no snapshot yet for {}, which needs the log's first configuration", id_,
                   to);
    return false;
  }
  FL_CHECK(snapshot.metadata().index() != 0,
           "node {}: follower {} needs entries before {} but there is no snapshot", id_, to,
           log_.first_index());
  logger_->info("{} sends snapshot at index {} (term {}) to {}", id_, snapshot.metadata().index(),
                snapshot.metadata().term(), to);
  pr.become_snapshot(snapshot.metadata().index());
  Message m;
  m.set_type(raftpb::MSG_SNAP);
  m.set_to(to);
  *m.mutable_snapshot() = std::move(snapshot);
  send(std::move(m));
  return true;
}

void RawNode::bcast_heartbeat() {
  // Carry the newest pending read: an acknowledgement confirms it and every
  // read registered before it (dissertation §6.4).
  const std::string context = read_requests_.empty() ? "" : read_requests_.back().context;
  for (const auto& [voter, pr] : progress_) {
    if (voter != id_) send_heartbeat(voter, context);
  }
}

void RawNode::send_heartbeat(uint64_t to, const std::string& context) {
  Message m;
  m.set_type(raftpb::MSG_HEARTBEAT);
  m.set_to(to);
  // Never tell a follower to commit beyond what it is known to hold.
  m.set_commit(std::min(progress_.at(to).match_index(), log_.committed()));
  m.set_context(context);
  send(std::move(m));
}

void RawNode::send_timeout_now(uint64_t to) {
  Message m;
  m.set_type(raftpb::MSG_TIMEOUT_NOW);
  m.set_to(to);
  send(std::move(m));
}

void RawNode::abort_leader_transfer() {
  if (lead_transferee_ != 0) {
    logger_->info("{} abandons leadership transfer to {}", id_, lead_transferee_);
  }
  lead_transferee_ = 0;
}

bool RawNode::maybe_commit() {
  std::vector<uint64_t> matches;
  for (const auto& [voter, pr] : progress_) {
    if (voters_.contains(voter)) matches.push_back(pr.match_index());
  }
  std::sort(matches.begin(), matches.end(), std::greater<>());
  uint64_t quorum_index = matches[quorum() - 1];
  bool advanced;
  if (config_.test_only_inject_bug == InjectedBug::kCommitPreviousTermByCounting) {
    advanced = quorum_index > log_.committed();
    if (advanced) log_.commit_to(quorum_index);
  } else {
    // Raft §5.4.2: never commit a previous term's entry by counting replicas.
    advanced = log_.maybe_commit(quorum_index, term_);
  }
  if (advanced) on_commit_advanced();
  return advanced;
}

void RawNode::on_commit_advanced() {
  if (role_ == Role::kLeader && !voters_.contains(id_) &&
      log_.membership().latest_index() <= log_.committed()) {
    step_down_removed();
    return;
  }
  drop_removed_progress();
  if (role_ != Role::kLeader || reads_awaiting_commit_.empty()) return;
  if (!committed_entry_in_current_term()) return;
  std::vector<ReadRequest> waiting = std::move(reads_awaiting_commit_);
  reads_awaiting_commit_.clear();
  for (auto& request : waiting) leader_read_index(request.from, std::move(request.context));
}

// ---------------------------------------------------------------- client calls

Result<ProposalId> RawNode::propose(std::string data) {
  check_not_awaiting_advance("propose");
  if (role_ != Role::kLeader) {
    return Result<ProposalId>(Error::kNotLeader,
                              lead_ != 0 ? fmt::format("leader is {}", lead_) : "no leader known");
  }
  if (lead_transferee_ != 0) {
    return Result<ProposalId>(
        Error::kTransferring, fmt::format("leadership transfer to {} in progress", lead_transferee_));
  }
  raftpb::Entry entry;
  entry.set_term(term_);
  entry.set_index(log_.last_index() + 1);
  entry.set_data(std::move(data));
  ProposalId id{entry.index(), entry.term()};
  std::vector<raftpb::Entry> batch;
  batch.push_back(std::move(entry));
  log_.append(std::move(batch));
  pending_broadcast_ = true;
  return id;
}

Result<ProposalId> RawNode::propose_conf_change(const raftpb::ConfChange& change) {
  check_not_awaiting_advance("propose_conf_change");
  using R = Result<ProposalId>;
  if (role_ != Role::kLeader) {
    return R(Error::kNotLeader, lead_ != 0 ? fmt::format("leader is {}", lead_) : "no leader known");
  }
  if (lead_transferee_ != 0) {
    return R(Error::kTransferring,
             fmt::format("leadership transfer to {} in progress", lead_transferee_));
  }
  if (!committed_entry_in_current_term() &&
      config_.test_only_inject_bug != InjectedBug::kConfChangeBeforeLeaderCommit) {
    return R(Error::kChangeInProgress, "the new leader has not committed an entry of its term yet");
  }
  if (log_.membership().latest_index() > log_.committed() &&
      config_.test_only_inject_bug != InjectedBug::kTwoUncommittedConfChanges) {
    return R(Error::kChangeInProgress,
             fmt::format("the change at index {} is not committed yet",
                         log_.membership().latest_index()));
  }
  if (change.type() == raftpb::ConfChange::REMOVE_NODE && change.node_id() == id_) {
    return R(Error::kInvalidArgument, "the leader cannot remove itself: transfer leadership first");
  }
  auto next = apply_conf_change(log_.membership().latest(), change);
  if (!next.ok()) return R(next.status());
  raftpb::Entry entry;
  entry.set_term(term_);
  entry.set_index(log_.last_index() + 1);
  entry.set_type(raftpb::ENTRY_CONF_CHANGE);
  entry.set_data(change.SerializeAsString());
  ProposalId id{entry.index(), entry.term()};
  logger_->info("{} proposes {} of node {} at index {} term {}", id_,
                raftpb::ConfChange::Type_Name(change.type()), change.node_id(), id.index, term_);
  std::vector<raftpb::Entry> batch;
  batch.push_back(std::move(entry));
  log_.append(std::move(batch));
  refresh_configuration();
  pending_broadcast_ = true;
  return id;
}

Status RawNode::read_index(std::string context) {
  check_not_awaiting_advance("read_index");
  if (role_ == Role::kLeader) {
    leader_read_index(id_, std::move(context));
    return Status();
  }
  if (lead_ == 0) return Status(Error::kNotLeader, "no leader known");
  Message m;
  m.set_type(raftpb::MSG_READ_INDEX);
  m.set_to(lead_);
  m.set_context(std::move(context));
  send(std::move(m));
  return Status();
}

void RawNode::leader_read_index(uint64_t from, std::string context) {
  ReadRequest request;
  request.from = from;
  request.context = std::move(context);
  if (!committed_entry_in_current_term()) {
    // Dissertation §6.4 step 1: until an entry of its term commits, the
    // leader does not know the latest commit index.
    reads_awaiting_commit_.push_back(std::move(request));
    return;
  }
  request.index = log_.committed();
  request.acks.insert(id_);
  if (voter_count(request.acks) >= quorum()) {
    release_read(std::move(request));
    return;
  }
  for (const auto& pending : read_requests_) {
    if (pending.context == request.context) return;  // duplicate context: already pending
  }
  read_requests_.push_back(std::move(request));
  bcast_heartbeat();
}

void RawNode::release_read(ReadRequest request) {
  if (request.from == id_) {
    read_states_.push_back(ReadState{request.index, std::move(request.context)});
    return;
  }
  Message m;
  m.set_type(raftpb::MSG_READ_INDEX_RESP);
  m.set_to(request.from);
  m.set_index(request.index);
  m.set_context(std::move(request.context));
  send(std::move(m));
}

Status RawNode::transfer_leadership(uint64_t to) {
  check_not_awaiting_advance("transfer_leadership");
  if (role_ != Role::kLeader) return Status(Error::kNotLeader, "not the leader");
  if (to == id_) return Status(Error::kInvalidArgument, "already the leader");
  if (!voters_.contains(to)) {
    return Status(Error::kInvalidArgument, fmt::format("{} is not a voter", to));
  }
  if (lead_transferee_ == to) return Status();
  abort_leader_transfer();
  logger_->info("{} starts transferring leadership to {} at term {}", id_, to, term_);
  lead_transferee_ = to;
  election_elapsed_ = 0;  // the transfer must finish within one election timeout
  if (progress_.at(to).match_index() == log_.last_index()) {
    send_timeout_now(to);
  } else {
    send_append(to, true);
  }
  return Status();
}

void RawNode::report_snapshot(uint64_t to, bool ok) {
  check_not_awaiting_advance("report_snapshot");
  if (role_ != Role::kLeader) return;
  auto it = progress_.find(to);
  if (it == progress_.end() || it->second.state() != ProgressState::kSnapshot) return;
  logger_->info("{} snapshot to {} {}", id_, to, ok ? "finished" : "failed");
  it->second.become_probe();
}

// ---------------------------------------------------------------- step

Status RawNode::step(const Message& m) {
  check_not_awaiting_advance("step");
  if (m.to() != id_) {
    return Status(Error::kWrongRecipient, fmt::format("message for {} sent to {}", m.to(), id_));
  }
  if (m.type() == raftpb::MSG_NONE || !raftpb::MessageType_IsValid(m.type())) {
    return Status(Error::kUnknownMessage, "unknown message type");
  }
  if (std::string why = refuse(m); !why.empty()) {
    logger_->warn("{} dropped {} from {} at term {}: {}", id_, raftpb::MessageType_Name(m.type()),
                  m.from(), term_, why);
    return Status(Error::kInvalidMessage, std::move(why));
  }
  if (m.term() == 0) {
    // Forwarded requests carry no term: they ask, they do not assert.
    if (m.type() == raftpb::MSG_READ_INDEX) {
      if (role_ == Role::kLeader) leader_read_index(m.from(), m.context());
      return Status();
    }
    if (m.type() == raftpb::MSG_PROP) return Status();  // proposals are never forwarded
  }

  if (m.term() > term_) {
    if (m.type() == raftpb::MSG_VOTE || m.type() == raftpb::MSG_PRE_VOTE) {
      bool force = m.context() == kCampaignTransfer;
      bool in_lease =
          config_.check_quorum && lead_ != 0 && election_elapsed_ < config_.election_ticks;
      if (!force && in_lease) {
        // Dissertation §4.2.3: while we hear from a leader, ignore a
        // removed or partitioned server's campaign.
        logger_->info("{} ignored {} from {} at term {}: lease with leader {} not expired", id_,
                      raftpb::MessageType_Name(m.type()), m.from(), m.term(), lead_);
        return Status();
      }
    }
    if (m.type() == raftpb::MSG_PRE_VOTE) {
      // Never change term on a pre-vote.
    } else if (m.type() == raftpb::MSG_PRE_VOTE_RESP && !m.reject()) {
      // A granted pre-vote answers with the term we would campaign at.
    } else {
      logger_->info("{} received {} from {} at term {} (ours {})", id_,
                    raftpb::MessageType_Name(m.type()), m.from(), m.term(), term_);
      bool from_leader = m.type() == raftpb::MSG_APP || m.type() == raftpb::MSG_HEARTBEAT ||
                         m.type() == raftpb::MSG_SNAP;
      become_follower(m.term(), from_leader ? m.from() : 0);
    }
  } else if (m.term() < term_) {
    if (m.type() == raftpb::MSG_APP || m.type() == raftpb::MSG_HEARTBEAT) {
      // Raft Figure 2: the reply carries our term. A stale leader
      // (partitioned, or outvoted through pre-vote) would never learn the
      // new term otherwise. etcd answers only with check-quorum or
      // pre-vote on, counting on our vote requests to reach the leader;
      // they need not: a node restarted with a stale configuration
      // campaigns among members that may all have left (simulator seed
      // 101679), and the leader it never asks would keep it out for ever.
      Message resp;
      resp.set_type(raftpb::MSG_APP_RESP);
      resp.set_to(m.from());
      send(std::move(resp));
    } else if (m.type() == raftpb::MSG_PRE_VOTE) {
      Message resp;
      resp.set_type(raftpb::MSG_PRE_VOTE_RESP);
      resp.set_to(m.from());
      resp.set_term(term_);
      resp.set_reject(true);
      send(std::move(resp));
    } else if (m.type() == raftpb::MSG_VOTE) {
      // Raft Figure 2: the reply carries our term, for the candidate to
      // update itself. Without it, a candidate could ask for ever at terms
      // we have left behind: we may campaign under a stale configuration
      // that does not name it, so it would never hear our term otherwise.
      Message resp;
      resp.set_type(raftpb::MSG_VOTE_RESP);
      resp.set_to(m.from());
      resp.set_reject(true);
      send(std::move(resp));
    }
    return Status();
  }

  if (m.type() == raftpb::MSG_VOTE || m.type() == raftpb::MSG_PRE_VOTE) {
    handle_vote_request(m);
    return Status();
  }
  switch (role_) {
    case Role::kLeader:
      step_leader(m);
      break;
    case Role::kCandidate:
    case Role::kPreCandidate:
      step_candidate(m);
      break;
    case Role::kFollower:
      step_follower(m);
      break;
  }
  return Status();
}

std::string RawNode::refuse(const Message& m) const {
  if (m.from() == 0 || m.from() == id_) return fmt::format("sender {}", m.from());
  // term_ + 1 must never wrap (campaign), nor an index + 1.
  if (m.term() > kMaxTerm) return fmt::format("term {}", m.term());
  if (m.term() < term_) return "";  // answered on its term alone
  switch (m.type()) {
    case raftpb::MSG_APP: {
      // CoreLog::maybe_append reads the entries as the run after `index`.
      if (m.index() > kMaxIndex) return fmt::format("index {}", m.index());
      for (int i = 0; i < m.entries_size(); ++i) {
        if (m.entries(i).index() != m.index() + 1 + static_cast<uint64_t>(i)) {
          return fmt::format("entry {} has index {} after index {}", i, m.entries(i).index(),
                             m.index());
        }
      }
      return "";
    }
    case raftpb::MSG_HEARTBEAT:
      // A leader never tells a follower to commit beyond its match index
      // (send_heartbeat): the log cannot hold what it names.
      if (m.commit() > log_.last_index()) {
        return fmt::format("commit {} beyond last index {}", m.commit(), log_.last_index());
      }
      return "";
    case raftpb::MSG_SNAP:
      if (m.snapshot().metadata().index() > kMaxIndex) {
        return fmt::format("snapshot index {}", m.snapshot().metadata().index());
      }
      return "";
    case raftpb::MSG_APP_RESP:
      // A follower acknowledges only what its leader sent: beyond it, the
      // match index would count toward a commit nothing holds.
      if (role_ == Role::kLeader && m.term() == term_ && !m.reject() &&
          m.index() > log_.last_index()) {
        return fmt::format("acknowledges index {} beyond last index {}", m.index(),
                           log_.last_index());
      }
      return "";
    default:
      return "";
  }
}

void RawNode::handle_vote_request(const Message& m) {
  bool pre = m.type() == raftpb::MSG_PRE_VOTE;
  // Raft §5.2: one vote per term. A pre-vote for a future term is always allowed.
  bool can_vote = vote_ == m.from() || (vote_ == 0 && lead_ == 0) || (pre && m.term() > term_);
  bool up_to_date = config_.test_only_inject_bug == InjectedBug::kVoteWithoutLogCheck ||
                    log_.is_up_to_date(m.index(), m.log_term());  // Raft §5.4.1
  Message resp;
  resp.set_type(pre ? raftpb::MSG_PRE_VOTE_RESP : raftpb::MSG_VOTE_RESP);
  resp.set_to(m.from());
  if (can_vote && up_to_date) {
    logger_->info("{} cast {} for {} at term {}", id_, pre ? "pre-vote" : "vote", m.from(),
                  m.term());
    resp.set_term(m.term());
    if (!pre) {
      election_elapsed_ = 0;
      vote_ = m.from();
    }
  } else {
    logger_->info("{} rejected {} from {} at term {}", id_, pre ? "pre-vote" : "vote", m.from(),
                  m.term());
    resp.set_term(term_);
    resp.set_reject(true);
  }
  send(std::move(resp));
}

void RawNode::step_leader(const Message& m) {
  auto it = progress_.find(m.from());
  if (it == progress_.end()) return;  // not a voter
  Progress& pr = it->second;
  if (m.type() == raftpb::MSG_APP_RESP || m.type() == raftpb::MSG_HEARTBEAT_RESP) {
    note_answer(m.from());
  }
  switch (m.type()) {
    case raftpb::MSG_APP_RESP:
      handle_append_response(m, pr);
      break;
    case raftpb::MSG_HEARTBEAT_RESP:
      handle_heartbeat_response(m, pr);
      break;
    case raftpb::MSG_READ_INDEX:
      leader_read_index(m.from(), m.context());
      break;
    default:
      break;
  }
}

void RawNode::handle_append_response(const Message& m, Progress& pr) {
  uint64_t from = m.from();
  pr.set_recent_active(true);
  if (m.reject()) {
    // Fast backtracking: skip every entry of a term the follower cannot
    // have, using its hint (Raft §5.3, the optimization at the end).
    uint64_t next_probe = m.reject_hint();
    if (m.log_term() > 0) next_probe = log_.find_conflict_by_term(m.reject_hint(), m.log_term());
    if (pr.maybe_decrease_to(m.index(), next_probe)) {
      logger_->debug("{} received rejection from {} for index {}, next index now {}", id_, from,
                     m.index(), pr.next_index());
      if (pr.state() == ProgressState::kReplicate) pr.become_probe();
      send_append(from, true);
    }
    return;
  }
  bool was_paused = pr.is_paused();
  if (!pr.maybe_update(m.index())) return;
  if (pr.state() == ProgressState::kProbe) {
    pr.become_replicate();
  } else if (pr.state() == ProgressState::kSnapshot && pr.match_index() >= pr.pending_snapshot()) {
    logger_->info("{} snapshot to {} acknowledged at {}", id_, from, pr.match_index());
    pr.become_probe();
    pr.become_replicate();
  }
  maybe_wait_for(from, pr);
  // A new commit index is not broadcast in empty appends: it rides on the
  // next AppendEntries that carries entries, or on the next heartbeat.
  // Under load the next append follows within one commit; at rest a
  // heartbeat comes within heartbeat_ticks. Clients are answered by the
  // leader, which needs no follower to know the commit, and an empty
  // append per commit would cost every follower a wake-up, a write and an
  // acknowledgement for nothing that anyone waits on.
  maybe_commit();
  // A removed node that now holds its committed removal is dropped (maybe
  // by the commit just made).
  if (!voters_.contains(from) && !learners_.contains(from)) drop_removed_progress();
  if (!progress_.contains(from)) return;
  if (was_paused) send_append(from, true);
  while (send_append(from, false)) {
  }
  if (from == lead_transferee_ && pr.match_index() == log_.last_index()) {
    logger_->info("{} sends TimeoutNow to {}: its log is up to date", id_, from);
    send_timeout_now(from);
  }
}

void RawNode::handle_heartbeat_response(const Message& m, Progress& pr) {
  pr.set_recent_active(true);
  pr.on_heartbeat_response();
  if (pr.match_index() < log_.last_index()) send_append(m.from(), true);
  if (m.context().empty()) return;
  auto it = std::find_if(read_requests_.begin(), read_requests_.end(),
                         [&](const ReadRequest& r) { return r.context == m.context(); });
  if (it == read_requests_.end()) return;
  it->acks.insert(m.from());
  if (voter_count(it->acks) < quorum()) return;
  // A quorum confirmed leadership after every earlier request was
  // registered, so all of them are safe too.
  auto end = std::next(it);
  std::vector<ReadRequest> released(std::make_move_iterator(read_requests_.begin()),
                                    std::make_move_iterator(end));
  read_requests_.erase(read_requests_.begin(), end);
  for (auto& request : released) release_read(std::move(request));
}

void RawNode::step_candidate(const Message& m) {
  switch (m.type()) {
    case raftpb::MSG_APP:
      become_follower(m.term(), m.from());  // Raft §5.2: a leader of our term exists
      handle_append(m);
      break;
    case raftpb::MSG_HEARTBEAT:
      become_follower(m.term(), m.from());
      handle_heartbeat(m);
      break;
    case raftpb::MSG_SNAP:
      become_follower(m.term(), m.from());
      handle_snapshot(m);
      break;
    case raftpb::MSG_VOTE_RESP:
    case raftpb::MSG_PRE_VOTE_RESP: {
      bool pre = m.type() == raftpb::MSG_PRE_VOTE_RESP;
      if (pre != (role_ == Role::kPreCandidate)) return;  // answers another campaign
      size_t rejections = 0;
      bool won = poll(m.from(), !m.reject(), &rejections);
      logger_->info("{} received {} {} from {} at term {}", id_, raftpb::MessageType_Name(m.type()),
                    m.reject() ? "rejection" : "grant", m.from(), term_);
      if (won) {
        if (pre) {
          campaign(CampaignKind::kElection);
        } else {
          become_leader();
          bcast_append();
        }
      } else if (rejections >= quorum()) {
        become_follower(term_, 0);
      }
      break;
    }
    default:
      break;
  }
}

void RawNode::step_follower(const Message& m) {
  switch (m.type()) {
    case raftpb::MSG_APP:
      election_elapsed_ = 0;
      lead_ = m.from();
      handle_append(m);
      break;
    case raftpb::MSG_HEARTBEAT:
      election_elapsed_ = 0;
      lead_ = m.from();
      handle_heartbeat(m);
      break;
    case raftpb::MSG_SNAP:
      election_elapsed_ = 0;
      lead_ = m.from();
      handle_snapshot(m);
      break;
    case raftpb::MSG_TIMEOUT_NOW:
      if (promotable()) {
        logger_->info("{} received TimeoutNow from {} at term {}, campaigning", id_, m.from(),
                      term_);
        campaign(CampaignKind::kTransfer);
      }
      break;
    case raftpb::MSG_READ_INDEX_RESP:
      read_states_.push_back(ReadState{m.index(), m.context()});
      break;
    default:
      break;
  }
}

void RawNode::handle_append(const Message& m) {
  if (!m.lazy_persist()) prompt_append_ = true;
  Message resp;
  resp.set_type(raftpb::MSG_APP_RESP);
  resp.set_to(m.from());
  if (m.index() < log_.committed()) {
    resp.set_index(log_.committed());  // everything up to commit already matches
    send(std::move(resp));
    return;
  }
  std::vector<raftpb::Entry> entries(m.entries().begin(), m.entries().end());
  if (auto last_new = log_.maybe_append(m.index(), m.log_term(), m.commit(), std::move(entries))) {
    refresh_configuration();
    resp.set_index(*last_new);
    send(std::move(resp));
    return;
  }
  // Reject with a hint: the last index at or before m.index() whose term is
  // at most m.log_term(); the leader skips everything after it.
  uint64_t hint = log_.find_conflict_by_term(std::min(m.index(), log_.last_index()), m.log_term());
  logger_->debug("{} rejected append at index {} term {} from {}, hint {}", id_, m.index(),
                 m.log_term(), m.from(), hint);
  resp.set_index(m.index());
  resp.set_reject(true);
  resp.set_reject_hint(hint);
  resp.set_log_term(log_.term(hint).value_or(0));
  send(std::move(resp));
}

void RawNode::handle_heartbeat(const Message& m) {
  log_.commit_to(m.commit());
  Message resp;
  resp.set_type(raftpb::MSG_HEARTBEAT_RESP);
  resp.set_to(m.from());
  resp.set_context(m.context());
  send(std::move(resp));
}

void RawNode::handle_snapshot(const Message& m) {
  Message resp;
  resp.set_type(raftpb::MSG_APP_RESP);
  resp.set_to(m.from());
  if (restore(m.snapshot())) {
    logger_->info("{} restored snapshot at index {} (term {})", id_,
                  m.snapshot().metadata().index(), m.snapshot().metadata().term());
    resp.set_index(log_.last_index());
  } else {
    resp.set_index(log_.committed());
  }
  send(std::move(resp));
}

bool RawNode::restore(const raftpb::Snapshot& snapshot) {
  uint64_t index = snapshot.metadata().index();
  if (index <= log_.committed()) return false;
  if (log_.match_term(index, snapshot.metadata().term())) {
    // We already hold the snapshot's last entry, so the whole prefix
    // matches (log matching, Raft §5.3): just learn the commit.
    log_.commit_to(index);
    return false;
  }
  log_.restore(snapshot);
  refresh_configuration();
  return true;
}

// ---------------------------------------------------------------- ready

bool RawNode::has_ready() const {
  if (pending_broadcast_) return true;
  if (SoftState{lead_, role_} != prev_soft_state_) return true;
  if (term_ != prev_hard_state_.term() || vote_ != prev_hard_state_.vote() ||
      log_.committed() != prev_hard_state_.commit()) {
    return true;
  }
  if (conf_bytes_ != reported_conf_bytes_) return true;
  return !log_.unstable_entries().empty() || log_.unstable_snapshot().has_value() ||
         !messages_.empty() || !messages_after_persist_.empty() || !read_states_.empty() ||
         log_.has_next_committed_entries();
}

Ready RawNode::ready() {
  check_not_awaiting_advance("ready");
  if (pending_broadcast_) {
    pending_broadcast_ = false;
    if (role_ == Role::kLeader) bcast_append();
  }
  Ready rd;
  SoftState soft{lead_, role_};
  if (soft != prev_soft_state_) {
    rd.soft_state = soft;
    prev_soft_state_ = soft;
  }
  raftpb::HardState hs;
  hs.set_term(term_);
  hs.set_vote(vote_);
  hs.set_commit(log_.committed());
  bool term_or_vote_changed =
      hs.term() != prev_hard_state_.term() || hs.vote() != prev_hard_state_.vote();
  if (term_or_vote_changed || hs.commit() != prev_hard_state_.commit()) {
    rd.hard_state = hs;
    prev_hard_state_ = hs;
  }
  rd.persist_lazily = may_persist_lazily();
  rd.entries = log_.unstable_entries();
  rd.snapshot = log_.unstable_snapshot();
  rd.must_sync = term_or_vote_changed || !rd.entries.empty() || rd.snapshot.has_value();
  rd.committed_entries = log_.next_committed_entries();
  rd.messages = std::move(messages_);
  messages_.clear();
  rd.messages_after_persist = std::move(messages_after_persist_);
  messages_after_persist_.clear();
  rd.read_states = std::move(read_states_);
  read_states_.clear();
  if (conf_bytes_ != reported_conf_bytes_) {
    rd.conf_state = log_.membership().latest();
    reported_conf_bytes_ = conf_bytes_;
  }

  ready_last_entry_.reset();
  if (!rd.entries.empty()) {
    ready_last_entry_ = std::make_pair(rd.entries.back().index(), rd.entries.back().term());
  }
  ready_snapshot_index_ = rd.snapshot ? rd.snapshot->metadata().index() : 0;
  ready_applied_ = rd.committed_entries.empty() ? 0 : rd.committed_entries.back().index();
  awaiting_advance_ = true;
  return rd;
}

void RawNode::advance() {
  FL_CHECK(awaiting_advance_, "node {}: advance() without ready()", id_);
  awaiting_advance_ = false;
  prompt_append_ = false;
  if (ready_snapshot_index_ != 0) {
    log_.stable_snapshot_to(ready_snapshot_index_);
    log_.applied_to(ready_snapshot_index_);
  }
  if (ready_last_entry_) log_.stable_to(ready_last_entry_->first, ready_last_entry_->second);
  if (ready_applied_ != 0) log_.applied_to(ready_applied_);
  if (role_ == Role::kLeader) {
    // The leader's entries are on its disk now: count them (docs/design.md "Durability").
    Progress& self = progress_.at(id_);
    // As in handle_append_response, the commit reaches followers with the
    // next append or heartbeat.
    if (self.maybe_update(log_.last_stable_index())) maybe_commit();
  }
}

// ---------------------------------------------------------------- accessors

std::vector<PeerProgress> RawNode::progress() const {
  std::vector<PeerProgress> out;
  for (const auto& [voter, pr] : progress_) {
    if (!voters_.contains(voter) && !learners_.contains(voter)) continue;  // removed, leaving
    out.push_back(PeerProgress{voter, pr.match_index(), pr.next_index(), pr.state(),
                               pr.recent_active(), voter == id_ || !lazy_for(voter),
                               learners_.contains(voter)});
  }
  return out;
}

std::vector<uint64_t> RawNode::leaving() const {
  std::vector<uint64_t> out;
  for (const auto& [id, pr] : progress_) {
    if (!voters_.contains(id) && !learners_.contains(id)) out.push_back(id);
  }
  return out;
}

std::optional<uint64_t> RawNode::match_index(uint64_t peer) const {
  auto it = progress_.find(peer);
  if (it == progress_.end()) return std::nullopt;
  return it->second.match_index();
}

}  // namespace fencelock::raft
