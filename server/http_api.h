#pragma once
// HttpApi: what a node's HTTP port answers (fencelockd --http-addr;
// docs/operations.md "HTTP endpoints"):
//
//   GET /healthz     200 while the process serves (its loop answers)
//   GET /readyz      200 when a leader is known and this node's applied
//                    index is within ready_max_lag of its commit index;
//                    503 naming the reason otherwise
//   GET /metrics     Prometheus text format (server/metrics.h)
//   GET /v1/status   this node's view of the cluster, as JSON
//   GET /v1/locks    locks with holders and queues (?prefix=&limit=)
//   GET /v1/sessions live sessions (?limit=)
//   GET /v1/stats    per-prefix and top-K lock statistics (?prefix=)
//   GET /            the operator page (HTML, CSS and JavaScript served
//                    from the binary), refreshed live from /v1/
//
// The /v1/ reads are this node's applied state, not linearizable reads:
// a follower may be behind the leader by its lag. With client
// authentication on, /metrics and /v1/ need a principal with the admin
// right on "*" (the client certificate's, or a token in an
// `Authorization: Bearer` header); /healthz, /readyz and the page's static
// files are open to all.
//
// Thread-safety: runs on the node's loop.

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "net/http_server.h"
#include "server/access.h"
#include "server/metrics.h"

namespace fencelock::server {

class Node;

struct HttpApiOptions {
  uint64_t ready_max_lag = 1000;  // entries between commit and applied index
  const Acl* acl = nullptr;       // set: authentication is on
  // With token authentication: the principal a bearer token names.
  std::function<std::optional<std::string>(const std::string& token)> principal_of_token;
};

class HttpApi {
 public:
  // `metrics` gives the inputs of a scrape (the node, edges and log).
  HttpApi(const Node& node, HttpApiOptions options, std::function<MetricsInputs()> metrics,
          EdgeMetrics& edge);

  net::HttpResponse handle(const net::HttpRequest& request);

 private:
  net::HttpResponse ready() const;
  net::HttpResponse status() const;
  net::HttpResponse locks(const net::HttpRequest& request) const;
  net::HttpResponse sessions(const net::HttpRequest& request) const;
  net::HttpResponse stats(const net::HttpRequest& request) const;
  // nullopt when allowed; otherwise the 401 or 403 to answer.
  std::optional<net::HttpResponse> refuse(const net::HttpRequest& request) const;

  const Node& node_;
  HttpApiOptions options_;
  std::function<MetricsInputs()> metrics_;
  EdgeMetrics& edge_;
};

// /v1/stats: a LockStats answer (server/lock_stats_result.h) as JSON.
nlohmann::json lock_stats_json(const clientpb::LockStatsResult& stats);

// Why this node is not ready, or nullopt when it is (/readyz).
std::optional<std::string> unready_reason(const Node& node, uint64_t max_lag);

}  // namespace fencelock::server
