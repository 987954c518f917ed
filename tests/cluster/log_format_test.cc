// fencelockd --log-format json on a real cluster: every line each node
// logs, from its first to its last, is a JSON object naming the node, and
// the lines after its election carry the Raft term the node is in.

#include <catch2/catch.hpp>

#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "client/session.h"
#include "tests/cluster/process_cluster.h"

namespace fencelock::testing {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

std::vector<std::string> log_lines(const ProcessCluster& cluster, uint64_t id) {
  std::ifstream in(cluster.data_dir(id) / "fencelockd.log");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

bool logged(const ProcessCluster& cluster, uint64_t id, const std::string& text) {
  for (const auto& line : log_lines(cluster, id)) {
    if (line.find(text) != std::string::npos) return true;
  }
  return false;
}

TEST_CASE("with json logs every line is a JSON object naming the node, with the term once elected",
          "[logs]") {
  ProcessClusterOptions options;
  options.extra_flags = {"--log-format", "json"};
  ProcessCluster cluster(options);
  cluster.start_all();
  REQUIRE(cluster.wait_for_leader() != 0);
  {
    client::SessionOptions session_options;
    session_options.client_name = "log_format_test";
    auto session = client::Session::open(cluster.client(), session_options);
    INFO(session.status().to_string());
    REQUIRE(session.ok());
    auto lock = session.value()->acquire("logs/a");
    INFO(lock.status().to_string());
    REQUIRE(lock.ok());
  }
  // Every node has learnt the leader; a graceful stop logs to the last line.
  for (uint64_t id : cluster.ids()) {
    INFO("node " << id);
    REQUIRE(eventually([&] { return logged(cluster, id, " leader is now "); }));
  }
  for (uint64_t id : cluster.ids()) CHECK(cluster.terminate(id) == 0);

  const std::regex ts(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");
  const std::regex leader_line(R"(\d+ leader is now \d+ at term (\d+))");
  for (uint64_t id : cluster.ids()) {
    auto lines = log_lines(cluster, id);
    INFO("node " << id << ", " << lines.size() << " lines");
    CHECK(lines.size() >= 3);
    bool elected = false;
    bool stopped = false;
    for (const auto& line : lines) {
      INFO(line);
      Json object = Json::parse(line, nullptr, /*allow_exceptions=*/false);
      REQUIRE(object.is_object());
      REQUIRE(object.contains("ts"));
      REQUIRE(object["ts"].is_string());
      CHECK(std::regex_match(object["ts"].get<std::string>(), ts));
      CHECK(object.value("level", "").size() > 0);
      CHECK(object.value("logger", "").size() > 0);
      REQUIRE(object.contains("msg"));
      REQUIRE(object["msg"].is_string());
      CHECK(object.value("node", uint64_t{0}) == id);
      std::string msg = object["msg"];
      std::smatch match;
      if (std::regex_search(msg, match, leader_line)) {
        elected = true;
        // The line announcing the leader already carries that leader's term.
        CHECK(object.value("term", uint64_t{0}) == std::stoull(match[1]));
      }
      if (elected) CHECK(object.value("term", uint64_t{0}) >= 1);
      stopped = stopped || msg == "node " + std::to_string(id) + " stopped";
    }
    CHECK(elected);
    CHECK(stopped);
  }
}

}  // namespace
}  // namespace fencelock::testing
