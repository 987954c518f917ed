// The operator page (GET /, server/ui/) in headless Chromium against a
// real 3-node cluster: what it renders from /v1/ once its scripts ran
// (members and roles, locks with holders' tokens and queue lengths,
// sessions, leader changes), that lock names, values and client names
// stay text (no markup from them reaches the DOM), and a screenshot.
//
// Needs /usr/bin/chromium (Debian's chromium; scripts/setup.sh installs it).

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "client/session.h"
#include "tests/cluster/http_get.h"
#include "tests/cluster/process_cluster.h"
#include "tests/run_command.h"

#ifndef FENCELOCK_TEST_OUTPUT_DIR
#error "FENCELOCK_TEST_OUTPUT_DIR must name where the screenshot goes"
#endif

namespace fencelock::testing {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

constexpr const char* kChromium = "/usr/bin/chromium";
// Markup in a lock name, a value and a client name: rendered as markup, it
// would add an element and mark the body.
const std::string kHostileLock = "jobs/<img src=x onerror=\"document.body.dataset.pwned='lock'\">";
const std::string kHostileValue = "<b id=\"value-markup\">bold</b>";
const std::string kHostileClient = "<svg onload=\"document.body.dataset.pwned='client'\"></svg>";

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Headless Chromium on `url`, with a fresh profile under `dir`:
// `mode_flags` are --dump-dom (the DOM after the scripts ran goes to
// stdout) or --screenshot=FILE. Virtual time lets the page's timers and
// fetches run for 8 s of page time; `timeout` bounds the real time.
CommandRun chromium(const std::filesystem::path& dir, const std::string& url,
                    const std::string& mode_flags) {
  static int run = 0;
  const auto profile = dir / ("chromium-profile-" + std::to_string(++run));
  return run_command("{ timeout -s KILL 60 " + std::string(kChromium) +
                     " --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage"
                     " --no-first-run --hide-scrollbars --user-data-dir=" +
                     profile.string() + " --virtual-time-budget=8000 " + mode_flags + " " + url +
                     " 2>>" + (dir / "chromium.log").string() + "; }");
}

std::string decode_entities(std::string text) {
  static const std::pair<const char*, const char*> kEntities[] = {{"&lt;", "<"},    {"&gt;", ">"},
                                                                  {"&quot;", "\""}, {"&#39;", "'"},
                                                                  {"&nbsp;", " "},  {"&amp;", "&"}};
  for (const auto& [entity, character] : kEntities) {
    text = std::regex_replace(text, std::regex(entity), character);
  }
  return text;
}

// The text of each cell of each row of table `id`'s body in a DOM dump.
std::vector<std::vector<std::string>> table_rows(const std::string& dom, const std::string& id) {
  std::smatch table;
  const std::regex table_re("<table id=\"" + id + "\">[\\s\\S]*?<tbody>([\\s\\S]*?)</tbody>");
  REQUIRE(std::regex_search(dom, table, table_re));
  const std::string body = table[1];
  std::vector<std::vector<std::string>> rows;
  const std::regex row_re("<tr>([\\s\\S]*?)</tr>");
  const std::regex cell_re("<td[^>]*>([\\s\\S]*?)</td>");
  const std::regex tag_re("<[^>]*>");
  for (std::sregex_iterator row(body.begin(), body.end(), row_re), end; row != end; ++row) {
    const std::string cells = (*row)[1];
    std::vector<std::string> texts;
    for (std::sregex_iterator c(cells.begin(), cells.end(), cell_re); c != end; ++c) {
      texts.push_back(decode_entities(std::regex_replace((*c)[1].str(), tag_re, "")));
    }
    rows.push_back(std::move(texts));
  }
  return rows;
}

const std::vector<std::string>* row_where(const std::vector<std::vector<std::string>>& rows,
                                          size_t column, const std::string& text) {
  for (const auto& row : rows) {
    if (row.size() > column && row[column] == text) return &row;
  }
  return nullptr;
}

}  // namespace

TEST_CASE(
    "operator page: headless Chromium renders the cluster's members, locks, sessions and "
    "leader changes, with names as text",
    "[page]") {
  REQUIRE(std::filesystem::exists(kChromium));
  ProcessClusterOptions options;
  options.http = true;
  ProcessCluster cluster(options);
  cluster.start_all();
  const uint64_t leader = cluster.wait_for_leader();
  REQUIRE(leader != 0);
  const std::string leader_http = cluster.http_endpoint(leader);

  client::SessionOptions holder_options;
  holder_options.client_name = "page-holder";
  auto holder = client::Session::open(cluster.client(), holder_options).value();
  client::AcquireOptions with_value;
  with_value.value = "worker-7";
  auto held = holder->acquire("jobs/a", with_value).value();
  const uint64_t held_token = held->token();

  // A second session queued behind the holder: queue length 1.
  client::SessionOptions waiter_options;
  waiter_options.client_name = "page-waiter";
  auto waiter = client::Session::open(cluster.client(), waiter_options).value();
  std::unique_ptr<client::Lock> waiter_lock;
  std::thread waiting([&] {
    client::AcquireOptions wait;
    wait.wait = 60s;
    auto lock = waiter->acquire("jobs/a", wait);
    CHECK(lock.ok());
    if (lock.ok()) waiter_lock = std::move(lock).value();
  });
  // Whatever happens below, the waiter is granted (the holder lets go) and
  // its thread joined before the sessions go away.
  struct Joiner {
    std::thread& thread;
    std::unique_ptr<client::Lock>& held;
    ~Joiner() {
      if (held) (void)held->release();
      if (thread.joinable()) thread.join();
    }
  } joiner{waiting, held};

  // Grants on jobs/b, and markup in a lock name, a value and a client name.
  for (int i = 0; i < 3; ++i) {
    auto lock = holder->acquire("jobs/b");
    REQUIRE(lock.ok());
    REQUIRE(lock.value()->release().ok());
  }
  client::SessionOptions hostile_options;
  hostile_options.client_name = kHostileClient;
  auto hostile = client::Session::open(cluster.client(), hostile_options).value();
  client::AcquireOptions hostile_value;
  hostile_value.value = kHostileValue;
  auto hostile_lock = hostile->acquire(kHostileLock, hostile_value).value();

  // The leader has applied all of it: jobs/a has its waiter.
  REQUIRE(eventually([&] {
    HttpResult result = http_get(leader_http, "/v1/locks?prefix=jobs/a");
    if (result.status != 200) return false;
    const Json locks = Json::parse(result.body)["locks"];
    return locks.size() == 1 && locks[0]["queue_length"] == 1;
  }));

  const std::filesystem::path out_dir = FENCELOCK_TEST_OUTPUT_DIR;
  std::filesystem::remove_all(out_dir);
  std::filesystem::create_directories(out_dir);
  const std::string url = "http://" + leader_http + "/";

  // The DOM once a refresh succeeded and showed jobs/a's waiter (the
  // page's first refresh normally does; a few tries bound a slow start).
  std::string dom;
  for (int attempt = 0; attempt < 5; ++attempt) {
    CommandRun run = chromium(out_dir, url, "--dump-dom");
    dom = run.output;
    INFO("chromium exit " << run.exit_code << "; " << read_file(out_dir / "chromium.log"));
    REQUIRE(run.exit_code == 0);
    if (dom.find("data-loaded=\"true\"") != std::string::npos &&
        dom.find("page-waiter") != std::string::npos) {
      break;
    }
  }
  std::ofstream(out_dir / "operator-page.html") << dom;
  INFO("the DOM is in " << (out_dir / "operator-page.html").string());
  REQUIRE(dom.find("data-loaded=\"true\"") != std::string::npos);
  CHECK(dom.find("id=\"error\" class=\"error\" role=\"alert\" hidden") != std::string::npos);

  // This node is ready and leads.
  CHECK(std::regex_search(dom,
                          std::regex("<span id=\"readiness\" class=\"badge ready\">ready</span>")));

  // Members: three rows; the leader's says leader and "this node", and it
  // knows each follower's lag.
  const auto members = table_rows(dom, "members");
  REQUIRE(members.size() == 3);
  for (uint64_t id : cluster.ids()) {
    const std::string shown = std::to_string(id) + (id == leader ? " (this node)" : "");
    const auto* row = row_where(members, 0, shown);
    INFO("member " << shown);
    REQUIRE(row != nullptr);
    REQUIRE(row->size() == 6);
    CHECK((*row)[1] == (id == leader ? "leader" : "follower"));
    CHECK((*row)[2] == cluster.client_endpoint(id));
    CHECK((*row)[5] == "yes");
    if (id != leader) CHECK(std::regex_match((*row)[4], std::regex("[0-9]+")));
  }

  // Locks: jobs/a held with its token and value, one waiter.
  const auto locks = table_rows(dom, "locks");
  const auto* jobs_a = row_where(locks, 0, "jobs/a");
  REQUIRE(jobs_a != nullptr);
  REQUIRE(jobs_a->size() == 5);
  CHECK((*jobs_a)[1].find("token " + std::to_string(held_token) + " · session " +
                          std::to_string(holder->id())) != std::string::npos);
  CHECK((*jobs_a)[1].find("worker-7") != std::string::npos);
  CHECK((*jobs_a)[2] == "1");
  // jobs/b is free again, so not listed; its grants are among the busiest.
  CHECK(row_where(locks, 0, "jobs/b") == nullptr);
  const auto top = table_rows(dom, "top");
  const auto* top_b = row_where(top, 0, "jobs/b");
  REQUIRE(top_b != nullptr);
  CHECK((*top_b)[1] == "3");
  CHECK(std::regex_match((*top_b)[6], std::regex("[0-9.]+ (µs|ms|s)")));
  // jobs/a was never released: no hold time to show.
  const auto* top_a = row_where(top, 0, "jobs/a");
  REQUIRE(top_a != nullptr);
  CHECK((*top_a)[3] == "1");
  CHECK((*top_a)[6] == "–");

  // Sessions: the three, with their client names and what they hold/wait for.
  const auto sessions = table_rows(dom, "sessions");
  REQUIRE(sessions.size() == 3);
  const auto* holder_row = row_where(sessions, 1, "page-holder");
  const auto* waiter_row = row_where(sessions, 1, "page-waiter");
  REQUIRE(holder_row != nullptr);
  REQUIRE(waiter_row != nullptr);
  CHECK((*holder_row)[0] == std::to_string(holder->id()));
  CHECK((*holder_row)[4] == "1");
  CHECK((*waiter_row)[0] == std::to_string(waiter->id()));
  CHECK((*waiter_row)[5] == "1");

  // Leader changes: the newest row names this leader.
  const auto leaders = table_rows(dom, "leaders");
  REQUIRE(!leaders.empty());
  REQUIRE(leaders[0].size() == 3);
  CHECK(leaders[0][2] == std::to_string(leader));
  CHECK(std::regex_match(leaders[0][0], std::regex("[0-9]+ (s|min) ago")));

  // Markup in names and values is text: shown as written, never parsed.
  CHECK(row_where(locks, 0, kHostileLock) != nullptr);
  const auto* hostile_row = row_where(locks, 0, kHostileLock);
  if (hostile_row != nullptr) CHECK((*hostile_row)[1].find(kHostileValue) != std::string::npos);
  CHECK(row_where(sessions, 1, kHostileClient) != nullptr);
  CHECK(dom.find("<img") == std::string::npos);
  CHECK(dom.find("<svg") == std::string::npos);
  CHECK(dom.find("<b id=") == std::string::npos);
  CHECK(dom.find("data-pwned") == std::string::npos);

  // A screenshot for people: a PNG of 1280x1000.
  const auto png = out_dir / "operator-page.png";
  CommandRun shot = chromium(out_dir, url, "--window-size=1280,1000 --screenshot=" + png.string());
  INFO(shot.output << read_file(out_dir / "chromium.log"));
  REQUIRE(shot.exit_code == 0);
  const std::string bytes = read_file(png);
  REQUIRE(bytes.size() > 10000);
  CHECK(bytes.substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));
  auto be32 = [&](size_t at) {
    return (uint32_t(uint8_t(bytes[at])) << 24) | (uint32_t(uint8_t(bytes[at + 1])) << 16) |
           (uint32_t(uint8_t(bytes[at + 2])) << 8) | uint32_t(uint8_t(bytes[at + 3]));
  };
  CHECK(bytes.substr(12, 4) == "IHDR");
  CHECK(be32(16) == 1280);
  CHECK(be32(20) == 1000);
  std::cout << "operator page screenshot: " << png.string() << "\n";
}

}  // namespace fencelock::testing
