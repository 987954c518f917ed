#include "server/http_api.h"

#include <nlohmann/json.hpp>

#include "server/lock_stats_result.h"
#include "server/node.h"
#include "server/ui_assets.h"

namespace fencelock::server {

namespace {

using Json = nlohmann::json;

constexpr uint32_t kDefaultListLimit = 100;
constexpr uint32_t kMaxListLimit = 1000;
// A page of /v1/locks or /v1/sessions stays under this many bytes of state.
constexpr size_t kMaxListBytes = 4u << 20;

net::HttpResponse text(unsigned status, std::string body) {
  net::HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  if (response.body.empty() || response.body.back() != '\n') response.body += '\n';
  return response;
}

net::HttpResponse json(const Json& value) {
  net::HttpResponse response;
  response.content_type = "application/json";
  // Lock names and values are bytes: invalid UTF-8 is replaced, not fatal.
  response.body = value.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
  return response;
}

std::string mode_name(lockpb::LockMode mode) {
  return mode == lockpb::SHARED ? "shared" : "exclusive";
}

// A query parameter as a number in [1, max], or `fallback`; nullopt when
// it is there but not such a number.
std::optional<uint32_t> limit_of(const net::HttpRequest& request, uint32_t fallback,
                                 uint32_t max) {
  auto it = request.query.find("limit");
  if (it == request.query.end()) return fallback;
  try {
    size_t used = 0;
    unsigned long value = std::stoul(it->second, &used);
    if (used != it->second.size() || value < 1 || value > max) return std::nullopt;
    return static_cast<uint32_t>(value);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::string query_or(const net::HttpRequest& request, const std::string& key,
                     std::string fallback = "") {
  auto it = request.query.find(key);
  return it == request.query.end() ? fallback : it->second;
}

}  // namespace

std::optional<std::string> unready_reason(const Node& node, uint64_t max_lag) {
  const raft::RawNode& raft = node.raft();
  if (node.shutting_down()) return "shutting down";
  if (!node.is_member()) return "not a member of the cluster";
  if (node.soft_state().leader_id == 0) return "no leader known";
  const uint64_t commit = raft.commit_index();
  const uint64_t applied = node.applied_index();
  if (commit > applied && commit - applied > max_lag) {
    return "applied index " + std::to_string(applied) + " is " + std::to_string(commit - applied) +
           " entries behind commit index " + std::to_string(commit) + " (bound " +
           std::to_string(max_lag) + ")";
  }
  return std::nullopt;
}

HttpApi::HttpApi(const Node& node, HttpApiOptions options, std::function<MetricsInputs()> metrics,
                 EdgeMetrics& edge)
    : node_(node), options_(std::move(options)), metrics_(std::move(metrics)), edge_(edge) {}

net::HttpResponse HttpApi::handle(const net::HttpRequest& request) {
  ++edge_.http_requests;
  const std::string& path = request.path;
  if (path == "/healthz") return text(200, "ok");
  if (path == "/readyz") return ready();
  if (const UiAsset* asset = find_ui_asset(path)) {
    net::HttpResponse response;
    response.content_type = asset->content_type;
    response.body.assign(asset->data, asset->size);
    return response;
  }
  const bool data = path == "/metrics" || path.starts_with("/v1/");
  if (!data) return text(404, "no such page: " + path);
  if (auto refused = refuse(request)) return *refused;
  if (path == "/metrics") {
    net::HttpResponse response;
    response.content_type = "text/plain; version=0.0.4; charset=utf-8";
    response.body = render_metrics(metrics_());
    return response;
  }
  if (path == "/v1/status") return status();
  if (path == "/v1/locks") return locks(request);
  if (path == "/v1/sessions") return sessions(request);
  if (path == "/v1/stats") return stats(request);
  return text(404, "no such endpoint: " + path);
}

std::optional<net::HttpResponse> HttpApi::refuse(const net::HttpRequest& request) const {
  if (options_.acl == nullptr) return std::nullopt;
  std::string principal = request.principal;
  if (principal.empty() && options_.principal_of_token) {
    constexpr std::string_view kBearer = "Bearer ";
    if (request.authorization.starts_with(kBearer)) {
      if (auto named = options_.principal_of_token(request.authorization.substr(kBearer.size()))) {
        principal = *named;
      }
    }
  }
  if (principal.empty()) {
    net::HttpResponse response = text(401, "authentication required: a client certificate, or "
                                           "a token in an Authorization: Bearer header");
    response.headers["WWW-Authenticate"] = "Bearer realm=\"fencelock\"";
    return response;
  }
  if (!options_.acl->allows_cluster(principal, kRightAdmin)) {
    return text(403, "principal '" + principal + "' lacks the admin right on \"*\"");
  }
  return std::nullopt;
}

net::HttpResponse HttpApi::ready() const {
  auto reason = unready_reason(node_, options_.ready_max_lag);
  if (reason) return text(503, "not ready: " + *reason);
  return text(200, "ready");
}

net::HttpResponse HttpApi::status() const {
  const raft::RawNode& raft = node_.raft();
  const clientpb::ClusterStatusResult cluster = node_.cluster_status();
  const bool leading = raft.role() == raft::Role::kLeader;
  Json members = Json::array();
  for (const auto& member : cluster.members()) {
    Json row = {{"id", member.id()},
                {"address", member.address()},
                {"role", member.role()},
                {"reachable", member.reachable()}};
    if (member.id() == node_.id()) {
      row["term"] = member.term();
      row["commit_index"] = member.commit_index();
      row["applied_index"] = member.applied_index();
    } else if (leading) {
      // The leader knows what each follower holds: its lag in entries.
      row["match_index"] = member.commit_index();
      row["lag"] = raft.last_index() > member.commit_index()
                       ? raft.last_index() - member.commit_index()
                       : 0;
    }
    members.push_back(std::move(row));
  }
  const auto now = std::chrono::steady_clock::now();
  Json leaders = Json::array();
  for (const LeaderChange& change : node_.metrics().recent_leaders) {
    leaders.push_back({{"term", change.term},
                       {"leader_id", change.leader_id},
                       {"seconds_ago",
                        std::chrono::duration<double>(now - change.at).count()}});
  }
  const auto reason = unready_reason(node_, options_.ready_max_lag);
  const sm::LockStateMachine& state = node_.state();
  return json({{"node_id", node_.id()},
               {"role", std::string(raft::role_name(raft.role()))},
               {"term", raft.term()},
               {"leader_id", node_.soft_state().leader_id},
               {"commit_index", raft.commit_index()},
               {"applied_index", node_.applied_index()},
               {"last_index", raft.last_index()},
               {"ready", !reason.has_value()},
               {"unready_reason", reason.value_or("")},
               {"sessions", state.session_count()},
               {"locks", state.lock_count()},
               {"next_token", state.next_token()},
               {"leader_changes", node_.metrics().leader_changes},
               {"members", std::move(members)},
               {"recent_leaders", std::move(leaders)}});
}

net::HttpResponse HttpApi::locks(const net::HttpRequest& request) const {
  auto limit = limit_of(request, kDefaultListLimit, kMaxListLimit);
  if (!limit) return text(400, "limit must be a number from 1 to " + std::to_string(kMaxListLimit));
  const sm::LockPage page = node_.state().list_locks(
      query_or(request, "prefix"), query_or(request, "start_after"), *limit, kMaxListBytes);
  Json locks = Json::array();
  for (const sm::LockView& lock : page.locks) {
    Json holders = Json::array();
    for (const auto& holder : lock.holders) {
      holders.push_back({{"session_id", holder.session_id},
                         {"token", holder.token},
                         {"mode", mode_name(holder.mode)},
                         {"value", holder.value}});
    }
    Json waiters = Json::array();
    for (const auto& waiter : lock.waiters) {
      waiters.push_back({{"session_id", waiter.session_id},
                         {"mode", mode_name(waiter.mode)},
                         {"wait_id", waiter.wait_id}});
    }
    locks.push_back({{"name", lock.name},
                     {"holders", std::move(holders)},
                     {"waiters", std::move(waiters)},
                     {"queue_length", lock.waiters.size()},
                     {"max_holders", lock.max_holders},
                     {"lock_delay_ms", lock.lock_delay_ms},
                     {"in_lock_delay", lock.in_lock_delay}});
  }
  return json({{"node_id", node_.id()},
               {"applied_index", node_.applied_index()},
               {"locks", std::move(locks)},
               {"next_start_after", page.next_start_after}});
}

net::HttpResponse HttpApi::sessions(const net::HttpRequest& request) const {
  auto limit = limit_of(request, kDefaultListLimit, kMaxListLimit);
  if (!limit) return text(400, "limit must be a number from 1 to " + std::to_string(kMaxListLimit));
  uint64_t start_after = 0;
  try {
    start_after = std::stoull(query_or(request, "start_after", "0"));
  } catch (const std::exception&) {
    return text(400, "start_after must be a session id");
  }
  const sm::SessionPage page = node_.state().list_sessions(start_after, *limit, kMaxListBytes);
  Json sessions = Json::array();
  for (const sm::SessionView& session : page.sessions) {
    sessions.push_back({{"session_id", session.session_id},
                        {"client_name", session.client_name},
                        {"ttl_ms", session.ttl_ms},
                        {"held_locks", session.held_locks},
                        {"waiting_locks", session.waiting_locks},
                        {"principal", session.principal}});
  }
  return json({{"node_id", node_.id()},
               {"applied_index", node_.applied_index()},
               {"sessions", std::move(sessions)},
               {"next_start_after", page.next_start_after}});
}

namespace {

Json series_json(const clientpb::LockSeriesStats& series) {
  return {{"grants", series.grants()},
          {"hand_offs", series.hand_offs()},
          {"releases", series.releases()},
          {"queue_length", series.queue_length()},
          {"waits", series.waits()},
          {"wait_p50_seconds", series.wait_p50_seconds()},
          {"wait_p99_seconds", series.wait_p99_seconds()},
          {"holds", series.holds()},
          {"hold_p50_seconds", series.hold_p50_seconds()},
          {"hold_p99_seconds", series.hold_p99_seconds()}};
}

}  // namespace

Json lock_stats_json(const clientpb::LockStatsResult& stats) {
  Json prefixes = Json::array();
  for (const auto& entry : stats.prefixes()) {
    Json row = series_json(entry);
    row["prefix"] = entry.name();
    prefixes.push_back(std::move(row));
  }
  Json top = Json::array();
  for (const auto& entry : stats.top()) {
    Json row = series_json(entry);
    row["lock"] = entry.name();
    row["estimated_grants"] = entry.estimated_grants();
    top.push_back(std::move(row));
  }
  return {{"node_id", stats.node_id()},
          {"applied_index", stats.applied_index()},
          {"totals",
           {{"sessions_opened", stats.sessions_opened()},
            {"sessions_closed", stats.sessions_closed()},
            {"sessions_expired", stats.sessions_expired()},
            {"grants", stats.grants()},
            {"hand_offs", stats.hand_offs()},
            {"queued", stats.queued()},
            {"released", stats.released()},
            {"released_on_close", stats.released_on_close()},
            {"released_on_expiry", stats.released_on_expiry()},
            {"force_released", stats.force_released()},
            {"waits_timed_out", stats.waits_timed_out()},
            {"waits_cancelled", stats.waits_cancelled()},
            {"waits_session_ended", stats.waits_session_ended()},
            {"acquire_failures", stats.acquire_failures()},
            {"waiters", stats.waiters()}}},
          {"prefixes", std::move(prefixes)},
          {"top", std::move(top)}};
}

net::HttpResponse HttpApi::stats(const net::HttpRequest& request) const {
  return json(lock_stats_json(lock_stats_result(node_.lock_stats(), node_.state(), node_.id(),
                                               node_.applied_index(), query_or(request, "prefix"))));
}

}  // namespace fencelock::server
