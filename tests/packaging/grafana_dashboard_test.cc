// packaging/grafana/fencelock-dashboard.json against docs/operations.md's
// metrics reference: every metric name the dashboard's queries use is
// documented there (so the two cannot drift apart), every query is valid
// PromQL (promtool), and the panels use the DS_PROMETHEUS data source
// variable.

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/run_command.h"

#ifndef FENCELOCK_SOURCE_DIR
#error "FENCELOCK_SOURCE_DIR must name the source tree"
#endif

namespace fencelock::testing {
namespace {

using Json = nlohmann::json;

std::string read_source(const std::string& path) {
  std::ifstream in(std::string(FENCELOCK_SOURCE_DIR) + "/" + path);
  REQUIRE(in.good());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string trim(const std::string& text) {
  const size_t begin = text.find_first_not_of(" \t");
  if (begin == std::string::npos) return "";
  return text.substr(begin, text.find_last_not_of(" \t") - begin + 1);
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(text);
  while (std::getline(in, part, separator)) parts.push_back(trim(part));
  return parts;
}

std::string strip_labels(const std::string& name) {
  return name.substr(0, name.find('{'));
}

// The sample names the metrics reference documents. A row's first cell
// lists names (labels in braces are dropped) with their types in the
// second cell (one type for all, or one per name); a family
// `stem_*{label}` takes its suffixes from the third cell, each run of
// suffixes followed by its type in parentheses. A histogram X is
// X_bucket, X_sum and X_count.
std::set<std::string> documented_metrics(const std::string& operations_md) {
  const size_t begin = operations_md.find("### Metrics reference");
  REQUIRE(begin != std::string::npos);
  std::set<std::string> names;
  auto add = [&](const std::string& name, const std::string& type) {
    if (type.starts_with("histogram")) {
      for (const char* suffix : {"_bucket", "_sum", "_count"}) names.insert(name + suffix);
    } else {
      names.insert(name);
    }
  };
  const std::regex code("`([^`]+)`");
  const std::regex suffix_or_type("`(_[a-z_]+)`|\\((counters?|gauges?|histograms?)\\)");
  std::istringstream lines(operations_md.substr(begin));
  std::string line;
  std::getline(lines, line);  // the heading
  while (std::getline(lines, line) && !line.starts_with("#")) {
    if (!line.starts_with("| `")) continue;
    const std::vector<std::string> cells = split(line, '|');
    REQUIRE(cells.size() >= 4);  // "", metric, type, meaning
    std::vector<std::string> row_names;
    for (std::sregex_iterator it(cells[1].begin(), cells[1].end(), code), end; it != end; ++it) {
      row_names.push_back(strip_labels((*it)[1]));
    }
    const std::vector<std::string> types =
        cells[2].empty() ? std::vector<std::string>{} : split(cells[2], ',');
    INFO(line);
    for (size_t i = 0; i < row_names.size(); ++i) {
      const std::string& name = row_names[i];
      if (name.ends_with("_*")) {
        const std::string stem = name.substr(0, name.size() - 2);
        std::vector<std::string> pending;
        for (std::sregex_iterator it(cells[3].begin(), cells[3].end(), suffix_or_type), end;
             it != end; ++it) {
          if ((*it)[1].matched) {
            pending.push_back((*it)[1]);
            continue;
          }
          for (const std::string& suffix : pending) add(stem + suffix, (*it)[2]);
          pending.clear();
        }
        CHECK(pending.empty());  // every suffix has its type
        continue;
      }
      REQUIRE((types.size() <= 1 || types.size() == row_names.size()));
      add(name, types.empty() ? "" : types.size() == 1 ? types[0] : types[i]);
    }
  }
  return names;
}

// The metric names in a PromQL expression: identifiers outside quoted
// strings that start with fencelock_ or process_.
std::set<std::string> metrics_in(const std::string& expr) {
  const std::string unquoted =
      std::regex_replace(expr, std::regex("\"([^\"\\\\]|\\\\.)*\""), "\"\"");
  std::set<std::string> names;
  const std::regex identifier("[A-Za-z_:][A-Za-z0-9_:]*");
  for (std::sregex_iterator it(unquoted.begin(), unquoted.end(), identifier), end; it != end;
       ++it) {
    const std::string name = it->str();
    if (name.starts_with("fencelock_") || name.starts_with("process_")) names.insert(name);
  }
  return names;
}

// Every panel, those inside collapsed rows included.
void collect_panels(const Json& panels, std::vector<Json>& out) {
  for (const Json& panel : panels) {
    out.push_back(panel);
    if (panel.contains("panels")) collect_panels(panel["panels"], out);
  }
}

struct Dashboard {
  Json json;
  std::vector<Json> panels;
  std::vector<std::string> exprs;  // panels' and variables' queries
};

Dashboard load_dashboard() {
  Dashboard dashboard;
  dashboard.json = Json::parse(read_source("packaging/grafana/fencelock-dashboard.json"));
  collect_panels(dashboard.json.at("panels"), dashboard.panels);
  for (const Json& panel : dashboard.panels) {
    for (const Json& target : panel.value("targets", Json::array())) {
      dashboard.exprs.push_back(target.at("expr").get<std::string>());
    }
  }
  for (const Json& variable : dashboard.json.at("templating").at("list")) {
    if (variable.at("type") == "query") {
      dashboard.exprs.push_back(variable.at("query").at("query").get<std::string>());
    }
  }
  return dashboard;
}

// An expression with Grafana's variables replaced, as Prometheus gets it.
std::string as_promql(std::string expr) {
  expr = std::regex_replace(expr, std::regex("\\$__rate_interval"), "5m");
  expr = std::regex_replace(expr, std::regex("\\$job"), "fencelock");
  return std::regex_replace(expr, std::regex("\\$instance"), ".*");
}

}  // namespace

TEST_CASE("grafana: the metrics reference parses into the names /metrics exposes") {
  const std::set<std::string> names = documented_metrics(read_source("docs/operations.md"));
  for (const char* name :
       {"fencelock_raft_term", "fencelock_raft_role", "fencelock_raft_applied_index",
        "fencelock_sessions_closed_total", "fencelock_raft_last_snapshot_bytes",
        "fencelock_storage_fsync_seconds_bucket", "fencelock_raft_log_write_entries_count",
        "fencelock_lock_prefix_queue_length", "fencelock_lock_prefix_wait_seconds_bucket",
        "fencelock_lock_top_grants_total", "fencelock_lock_top_hold_seconds_sum",
        "fencelock_client_responses_total", "process_resident_memory_bytes"}) {
    INFO(name);
    CHECK(names.contains(name));
  }
  // A histogram has no sample under its bare name; a counter no buckets.
  CHECK_FALSE(names.contains("fencelock_storage_fsync_seconds"));
  CHECK_FALSE(names.contains("fencelock_lock_prefix_wait_seconds"));
  CHECK_FALSE(names.contains("fencelock_lock_top_grants_total_bucket"));
  CHECK_FALSE(names.contains("fencelock_lock_prefix_*"));
}

TEST_CASE("grafana: the dashboard's queries use only documented metric names") {
  const std::set<std::string> documented = documented_metrics(read_source("docs/operations.md"));
  const Dashboard dashboard = load_dashboard();
  REQUIRE(dashboard.exprs.size() >= 20);
  std::set<std::string> used;
  for (const std::string& expr : dashboard.exprs) {
    INFO(expr);
    const std::set<std::string> names = metrics_in(expr);
    CHECK_FALSE(names.empty());
    for (const std::string& name : names) {
      INFO(name << " is not in docs/operations.md's metrics reference");
      CHECK(documented.contains(name));
    }
    used.insert(names.begin(), names.end());
  }
  // The extraction sees a misspelt name, and a name inside a string is no metric.
  CHECK(metrics_in("rate(fencelock_lock_grantz_total{job=\"fencelock_x\"}[5m])") ==
        std::set<std::string>{"fencelock_lock_grantz_total"});
  // What the issue asks the dashboard to show.
  for (const char* name : {"fencelock_raft_leader_id",
                           "fencelock_raft_term",
                           "fencelock_raft_commit_index",
                           "fencelock_raft_applied_index",
                           "fencelock_raft_leader_changes_total",
                           "fencelock_raft_proposals_total",
                           "fencelock_raft_log_write_seconds_bucket",
                           "fencelock_storage_fsync_seconds_bucket",
                           "fencelock_raft_log_write_entries_bucket",
                           "fencelock_lock_grants_total",
                           "fencelock_lock_handoffs_total",
                           "fencelock_lock_releases_total",
                           "fencelock_lock_waiters",
                           "fencelock_lock_prefix_wait_seconds_bucket",
                           "fencelock_lock_prefix_queue_length",
                           "fencelock_lock_top_grants_total",
                           "fencelock_client_requests_total",
                           "fencelock_client_responses_total",
                           "process_cpu_seconds_total",
                           "process_resident_memory_bytes"}) {
    INFO(name);
    CHECK(used.contains(name));
  }
}

TEST_CASE("grafana: every query is valid PromQL (promtool check rules)") {
  const Dashboard dashboard = load_dashboard();
  std::string rules = "groups:\n  - name: dashboard\n    rules:\n";
  for (size_t i = 0; i < dashboard.exprs.size(); ++i) {
    std::string expr = dashboard.exprs[i];
    if (expr.starts_with("label_values(")) continue;  // Grafana's, not PromQL
    rules += "      - record: dashboard:query" + std::to_string(i) + "\n        expr: '" +
             std::regex_replace(as_promql(expr), std::regex("'"), "''") + "'\n";
  }
  const auto file = std::filesystem::temp_directory_path() /
                    ("fencelock-dashboard-rules-" + std::to_string(::getpid()) + ".yml");
  std::ofstream(file) << rules;
  const CommandRun run = run_command("promtool check rules " + file.string());
  std::filesystem::remove(file);
  INFO(run.output);
  CHECK(run.exit_code == 0);
  CHECK(run.output.find("SUCCESS") != std::string::npos);
}

TEST_CASE("grafana: panels use the DS_PROMETHEUS data source variable and fit the grid") {
  const Dashboard dashboard = load_dashboard();
  bool has_variable = false;
  for (const Json& variable : dashboard.json.at("templating").at("list")) {
    if (variable.at("name") == "DS_PROMETHEUS") {
      has_variable = true;
      CHECK(variable.at("type") == "datasource");
      CHECK(variable.at("query") == "prometheus");
    }
  }
  CHECK(has_variable);
  std::set<int> ids;
  for (const Json& panel : dashboard.panels) {
    INFO(panel.dump());
    CHECK(ids.insert(panel.at("id").get<int>()).second);
    const Json& grid = panel.at("gridPos");
    CHECK(grid.at("x").get<int>() + grid.at("w").get<int>() <= 24);
    if (panel.at("type") == "row") continue;
    CHECK(panel.at("datasource").at("uid") == "${DS_PROMETHEUS}");
    REQUIRE(!panel.at("targets").empty());
    for (const Json& target : panel.at("targets")) {
      CHECK(target.at("datasource").at("uid") == "${DS_PROMETHEUS}");
    }
  }
  // The operations guide points at the dashboard.
  CHECK(read_source("docs/operations.md").find("packaging/grafana/fencelock-dashboard.json") !=
        std::string::npos);
}

}  // namespace fencelock::testing
