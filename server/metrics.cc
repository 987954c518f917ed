#include "server/metrics.h"

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <limits>
#include <map>
#include <sstream>

#include "server/node.h"
#include "server/process_stats.h"

namespace fencelock::server {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<ClientMetric::Label>;

// The families of one scrape, in the order first added.
class Families {
 public:
  void gauge(const std::string& name, const std::string& help, double value, Labels labels = {}) {
    ClientMetric& metric = add(name, help, MetricType::Gauge, std::move(labels));
    metric.gauge.value = value;
  }
  void counter(const std::string& name, const std::string& help, double value,
               Labels labels = {}) {
    ClientMetric& metric = add(name, help, MetricType::Counter, std::move(labels));
    metric.counter.value = value;
  }
  void histogram(const std::string& name, const std::string& help,
                 const SharedHistogram::Snapshot& snapshot, Labels labels = {}) {
    ClientMetric& metric = add(name, help, MetricType::Histogram, std::move(labels));
    metric.histogram.sample_count = snapshot.count;
    metric.histogram.sample_sum = snapshot.sum;
    uint64_t cumulative = 0;
    for (size_t i = 0; i < snapshot.counts.size(); ++i) {
      cumulative += snapshot.counts[i];
      const double bound = i < snapshot.bounds.size() ? snapshot.bounds[i]
                                                      : std::numeric_limits<double>::infinity();
      metric.histogram.bucket.push_back(ClientMetric::Bucket{cumulative, bound});
    }
  }
  void histogram(const std::string& name, const std::string& help, const Histogram& values,
                 Labels labels = {}) {
    ClientMetric& metric = add(name, help, MetricType::Histogram, std::move(labels));
    metric.histogram.sample_count = values.count();
    metric.histogram.sample_sum = values.sum();
    const auto cumulative = values.cumulative();
    for (size_t i = 0; i < cumulative.size(); ++i) {
      const double bound = i < Histogram::kBounds.size() ? Histogram::kBounds[i]
                                                         : std::numeric_limits<double>::infinity();
      metric.histogram.bucket.push_back(ClientMetric::Bucket{cumulative[i], bound});
    }
  }
  // A family with no series yet still gets its HELP and TYPE lines.
  void declare(const std::string& name, const std::string& help, MetricType type) {
    family(name, help, type);
  }
  const std::vector<MetricFamily>& families() const { return families_; }

 private:
  MetricFamily& family(const std::string& name, const std::string& help, MetricType type) {
    auto [it, inserted] = index_.try_emplace(name, families_.size());
    if (inserted) families_.push_back(MetricFamily{name, help, type, {}});
    return families_[it->second];
  }
  ClientMetric& add(const std::string& name, const std::string& help, MetricType type,
                    Labels labels) {
    MetricFamily& f = family(name, help, type);
    f.metric.emplace_back();
    f.metric.back().label = std::move(labels);
    return f.metric.back();
  }
  std::vector<MetricFamily> families_;
  std::map<std::string, size_t> index_;
};

void add_raft(Families& out, const Node& node, const MetricsInputs& inputs) {
  const raft::RawNode& raft = node.raft();
  const NodeMetrics& metrics = node.metrics();
  out.gauge("fencelock_raft_term", "The current Raft term of this node.",
            static_cast<double>(raft.term()));
  for (raft::Role role : {raft::Role::kFollower, raft::Role::kPreCandidate,
                          raft::Role::kCandidate, raft::Role::kLeader}) {
    out.gauge("fencelock_raft_role", "1 for this node's current Raft role, 0 for the others.",
              raft.role() == role ? 1 : 0, {{"role", std::string(raft::role_name(role))}});
  }
  out.gauge("fencelock_raft_leader_id", "The id of the leader this node knows; 0 when none.",
            static_cast<double>(node.soft_state().leader_id));
  out.gauge("fencelock_raft_commit_index", "The highest log index this node knows committed.",
            static_cast<double>(raft.commit_index()));
  out.gauge("fencelock_raft_applied_index", "The last log index this node applied.",
            static_cast<double>(node.applied_index()));
  out.counter("fencelock_raft_leader_changes_total",
              "Times this node saw the cluster's leader change to another member.",
              static_cast<double>(metrics.leader_changes));
  out.counter("fencelock_raft_proposals_total", "Commands this node proposed as leader.",
              static_cast<double>(metrics.proposals));
  out.counter("fencelock_raft_proposals_refused_total",
              "Proposals the Raft core refused (not leader, transferring, too large).",
              static_cast<double>(metrics.proposals_refused));
  out.gauge("fencelock_cluster_voters", "Voting members in this node's configuration.",
            static_cast<double>(raft.voters().size()));
  out.gauge("fencelock_cluster_learners", "Learners (non-voting members) in this node's configuration.",
            static_cast<double>(raft.learners().size()));
  out.declare("fencelock_raft_peer_match_index",
              "The last log index the leader knows each peer holds (on the leader only).",
              MetricType::Gauge);
  for (const raft::PeerProgress& peer : raft.progress()) {
    if (peer.id == node.id()) continue;
    out.gauge("fencelock_raft_peer_match_index",
              "The last log index the leader knows each peer holds (on the leader only).",
              static_cast<double>(peer.match_index), {{"peer", std::to_string(peer.id)}});
  }
  if (inputs.peer_connected) {
    out.declare("fencelock_peer_connected", "1 when a connection to the peer is up.",
                MetricType::Gauge);
    std::set<uint64_t> peers(raft.voters().begin(), raft.voters().end());
    peers.insert(raft.learners().begin(), raft.learners().end());
    for (uint64_t peer : peers) {
      if (peer == node.id()) continue;
      out.gauge("fencelock_peer_connected", "1 when a connection to the peer is up.",
                inputs.peer_connected(peer) ? 1 : 0, {{"peer", std::to_string(peer)}});
    }
  }
  out.histogram("fencelock_raft_log_write_seconds",
                "Time to write one batch of Raft log entries and hard state (the append).",
                metrics.log_writes.snapshot());
  out.histogram("fencelock_raft_log_write_entries", "Log entries written per batch.",
                metrics.log_write_entries.snapshot());
  if (inputs.log_sync_writes != nullptr) {
    out.histogram("fencelock_storage_fsync_seconds",
                  "Time of each synced RocksDB write of the log: the write and its WAL fsync.",
                  inputs.log_sync_writes->snapshot());
  }
  out.counter("fencelock_raft_snapshots_total", "State machine snapshots this node took.",
              static_cast<double>(metrics.snapshots_taken));
  out.counter("fencelock_raft_snapshot_bytes_total", "Bytes of the snapshots this node took.",
              static_cast<double>(metrics.snapshot_bytes_total));
  out.gauge("fencelock_raft_last_snapshot_bytes", "Bytes of the latest snapshot this node took.",
            static_cast<double>(metrics.last_snapshot_bytes));
  out.counter("fencelock_raft_snapshots_installed_total",
              "Snapshots this node installed from the leader.",
              static_cast<double>(metrics.snapshots_installed));
  const PeerMessageStats& peer_messages = node.peer_message_stats();
  out.counter("fencelock_peer_messages_total", "Raft messages from peers stepped into the core.",
              static_cast<double>(peer_messages.stepped));
  out.counter("fencelock_peer_messages_dropped_total",
              "Raft messages from peers dropped as malformed or refused.",
              static_cast<double>(peer_messages.dropped));
}

void add_state(Families& out, const Node& node) {
  const sm::LockStateMachine& state = node.state();
  const sm::Usage usage = state.total_usage();
  out.gauge("fencelock_sessions_open", "Live sessions.", static_cast<double>(state.session_count()));
  out.gauge("fencelock_locks", "Locks that exist: held, waited for or in lock-delay.",
            static_cast<double>(state.lock_count()));
  out.gauge("fencelock_lock_holders_and_waiters", "Holders and waiters of every lock together.",
            static_cast<double>(usage.holders_and_waiters));
  out.gauge("fencelock_lock_value_bytes", "Bytes of the values holders and waiters carry.",
            static_cast<double>(usage.value_bytes));
  out.gauge("fencelock_next_token", "The fencing token the next grant will carry.",
            static_cast<double>(state.next_token()));
}

// One set of per-lock series (a prefix's or a busy name's) under `label`.
void add_series(Families& out, const std::string& family, const std::string& what,
                const ClientMetric::Label& label, const LockSeries& series) {
  out.counter(family + "_grants_total", "Grants of the locks of " + what + ".",
              static_cast<double>(series.grants), {label});
  out.counter(family + "_handoffs_total",
              "Grants from the queue (hand-offs) of the locks of " + what + ".",
              static_cast<double>(series.hand_offs), {label});
  out.counter(family + "_releases_total", "Holders of the locks of " + what + " that stopped holding.",
              static_cast<double>(series.releases), {label});
  out.gauge(family + "_queue_length", "Acquires queued now for the locks of " + what + ".",
            static_cast<double>(series.queue_length), {label});
  out.histogram(family + "_wait_seconds",
                "Time from a queued Acquire to its grant (0 for an immediate grant), for " + what +
                    ".",
                series.wait_seconds, {label});
  out.histogram(family + "_hold_seconds", "Time from a grant to its release, for " + what + ".",
                series.hold_seconds, {label});
}

void add_locks(Families& out, const Node& node) {
  const LockStats& stats = node.lock_stats();
  const LockTotals& totals = stats.totals();
  out.counter("fencelock_sessions_opened_total", "Sessions opened.",
              static_cast<double>(totals.sessions_opened));
  out.counter("fencelock_sessions_closed_total", "Sessions closed by their clients.",
              static_cast<double>(totals.sessions_closed));
  out.counter("fencelock_sessions_expired_total", "Sessions expired (their TTL ran out).",
              static_cast<double>(totals.sessions_expired));
  out.gauge("fencelock_lock_waiters", "Acquires queued now, over every lock.",
            static_cast<double>(stats.waiters()));
  const uint64_t holders_and_waiters = node.state().total_usage().holders_and_waiters;
  out.gauge("fencelock_lock_holders", "Holders of every lock together.",
            static_cast<double>(holders_and_waiters > stats.waiters()
                                    ? holders_and_waiters - stats.waiters()
                                    : 0));
  out.counter("fencelock_lock_grants_total", "Grants: immediate ones and hand-offs.",
              static_cast<double>(totals.grants));
  out.counter("fencelock_lock_handoffs_total",
              "Grants from the queue, made when another holder let go.",
              static_cast<double>(totals.hand_offs));
  out.counter("fencelock_lock_queued_total", "Acquires that queued.",
              static_cast<double>(totals.queued));
  const std::string releases = "Holders that stopped holding, by reason.";
  out.counter("fencelock_lock_releases_total", releases, static_cast<double>(totals.released),
              {{"reason", "released"}});
  out.counter("fencelock_lock_releases_total", releases,
              static_cast<double>(totals.released_on_close), {{"reason", "session_closed"}});
  out.counter("fencelock_lock_releases_total", releases,
              static_cast<double>(totals.released_on_expiry), {{"reason", "session_expired"}});
  out.counter("fencelock_lock_releases_total", releases, static_cast<double>(totals.force_released),
              {{"reason", "force_released"}});
  const std::string ended = "Queued acquires that ended without a grant, by reason.";
  out.counter("fencelock_lock_waits_ended_total", ended,
              static_cast<double>(totals.waits_timed_out), {{"reason", "timeout"}});
  out.counter("fencelock_lock_waits_ended_total", ended,
              static_cast<double>(totals.waits_cancelled), {{"reason", "cancelled"}});
  out.counter("fencelock_lock_waits_ended_total", ended,
              static_cast<double>(totals.waits_session_ended), {{"reason", "session_ended"}});
  out.counter("fencelock_lock_acquire_failures_total",
              "Acquires answered with an error (a busy try-acquire included).",
              static_cast<double>(totals.acquire_failures));
  for (const PrefixSeries& prefix : stats.by_prefix()) {
    add_series(out, "fencelock_lock_prefix", "a lock-name prefix", {"prefix", prefix.prefix},
               prefix.series);
  }
  for (const TopLock& top : stats.top(node.state())) {
    add_series(out, "fencelock_lock_top", "one of the busiest lock names", {"lock", top.lock},
               top.series);
  }
}

void add_clients(Families& out, const MetricsInputs& inputs) {
  out.gauge("fencelock_client_connections", "Open client connections.",
            static_cast<double>(inputs.client_connections));
  out.counter("fencelock_client_connections_accepted_total", "Client connections accepted.",
              static_cast<double>(inputs.client_connections_accepted));
  const std::string requests_help = "Client requests received, by kind.";
  out.declare("fencelock_client_requests_total", requests_help, MetricType::Counter);
  if (inputs.edge == nullptr) return;
  const auto* descriptor = clientpb::Request::descriptor();
  for (size_t kind = 0; kind < inputs.edge->requests_by_kind.size(); ++kind) {
    if (inputs.edge->requests_by_kind[kind] == 0) continue;
    const auto* field = descriptor->FindFieldByNumber(static_cast<int>(kind));
    out.counter("fencelock_client_requests_total", requests_help,
                static_cast<double>(inputs.edge->requests_by_kind[kind]),
                {{"kind", field != nullptr ? field->name() : std::to_string(kind)}});
  }
  const std::string responses_help = "Answers to client requests, by code (OK included).";
  out.declare("fencelock_client_responses_total", responses_help, MetricType::Counter);
  for (size_t code = 0; code < inputs.edge->responses_by_code.size(); ++code) {
    if (inputs.edge->responses_by_code[code] == 0) continue;
    std::string name = lockpb::ErrorCode_IsValid(static_cast<int>(code))
                           ? lockpb::ErrorCode_Name(static_cast<lockpb::ErrorCode>(code))
                           : std::to_string(code);
    out.counter("fencelock_client_responses_total", responses_help,
                static_cast<double>(inputs.edge->responses_by_code[code]), {{"code", name}});
  }
  out.counter("fencelock_http_requests_total", "Requests served on the HTTP port.",
              static_cast<double>(inputs.edge->http_requests));
}

void add_process(Families& out) {
  auto stats = read_process_stats();
  if (!stats) return;
  out.counter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
              stats->cpu_seconds);
  out.gauge("process_resident_memory_bytes", "Resident memory size in bytes.",
            static_cast<double>(stats->resident_bytes));
  out.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.",
            static_cast<double>(stats->virtual_bytes));
  out.gauge("process_open_fds", "Number of open file descriptors.",
            static_cast<double>(stats->open_fds));
  out.gauge("process_max_fds", "Maximum number of open file descriptors.",
            static_cast<double>(stats->max_fds));
  out.gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
            stats->start_time_seconds);
  out.gauge("process_threads", "Number of OS threads in the process.",
            static_cast<double>(stats->threads));
}

}  // namespace

std::string render_metrics(const MetricsInputs& inputs) {
  Families out;
  out.gauge("fencelock_build_info", "Always 1; the version in a label.", 1,
            {{"version", FENCELOCK_VERSION}});
  const Node& node = *inputs.node;
  out.gauge("fencelock_node_id", "This node's member id.", static_cast<double>(node.id()));
  add_raft(out, node, inputs);
  add_state(out, node);
  add_locks(out, node);
  add_clients(out, inputs);
  if (inputs.process) add_process(out);
  std::ostringstream text;
  prometheus::TextSerializer().Serialize(text, out.families());
  return text.str();
}

}  // namespace fencelock::server
