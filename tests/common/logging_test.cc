// common/logging.h: the JSON line format (valid JSON whatever the message,
// its fields, the log context) and set_log_format reaching every logger.

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>

#include "common/logging.h"

namespace fencelock {
namespace {

using Json = nlohmann::json;

// 2026-12-03T19:00:00.123Z.
spdlog::log_clock::time_point example_time() {
  using namespace std::chrono;
  return spdlog::log_clock::time_point(sys_days(year(2026) / December / 3).time_since_epoch() +
                                       19h + 123ms);
}

// Formats one line with the JSON formatter.
std::string json_line(std::string_view message, spdlog::level::level_enum level = spdlog::level::info,
                      std::string_view logger = "raft") {
  spdlog::details::log_msg msg(example_time(), spdlog::source_loc{},
                               spdlog::string_view_t(logger.data(), logger.size()), level,
                               spdlog::string_view_t(message.data(), message.size()));
  spdlog::memory_buf_t out;
  make_json_formatter()->format(msg, out);
  return std::string(out.data(), out.size());
}

// The log context is process-wide: each test that sets it leaves it unset.
struct LogContext {
  LogContext(uint64_t node, uint64_t term) {
    set_log_node(node);
    set_log_term(term);
  }
  ~LogContext() {
    set_log_node(0);
    set_log_term(0);
  }
};

TEST_CASE("a JSON log line is one object on one line with ts, level, logger and msg", "[logging]") {
  std::string line = json_line("1 became leader at term 5");
  REQUIRE(line.back() == '\n');
  CHECK(line.find('\n') == line.size() - 1);
  Json object = Json::parse(line);
  CHECK(object == Json{{"ts", "2026-12-03T19:00:00.123Z"},
                       {"level", "info"},
                       {"logger", "raft"},
                       {"msg", "1 became leader at term 5"}});
  // The order operators read them in.
  CHECK(line.rfind(R"({"ts":"2026-12-03T19:00:00.123Z","level":"info","logger":"raft","msg":)", 0) == 0);
  CHECK(Json::parse(json_line("x", spdlog::level::warn))["level"] == "warning");
  CHECK(Json::parse(json_line("x", spdlog::level::critical))["level"] == "critical");
}

TEST_CASE("a JSON log line carries node and term from the log context, each only when set",
          "[logging]") {
  {
    LogContext context(3, 0);
    Json object = Json::parse(json_line("m"));
    CHECK(object["node"] == 3);
    CHECK_FALSE(object.contains("term"));
  }
  {
    LogContext context(3, 7);
    std::string line = json_line("m");
    CHECK(line.find(R"("logger":"raft","node":3,"term":7,"msg":"m"})") != std::string::npos);
    set_log_term(8);
    CHECK(Json::parse(json_line("m"))["term"] == 8);
  }
  Json unset = Json::parse(json_line("m"));
  CHECK_FALSE(unset.contains("node"));
  CHECK_FALSE(unset.contains("term"));
}

TEST_CASE("any message makes valid JSON: quotes, backslashes, control characters, invalid UTF-8",
          "[logging]") {
  SECTION("escaped characters come back as they were") {
    std::string message = std::string("say \"hi\"\\ \n second line\t\r\b\f") + '\x01' + '\x1f' +
                          '\0' + " end \xc3\xa9 \xe2\x82\xac";
    std::string line = json_line(message);
    CHECK(line.find('\n') == line.size() - 1);  // the newline in it is escaped
    for (char c : line.substr(0, line.size() - 1)) {
      CHECK(static_cast<unsigned char>(c) >= 0x20);
    }
    CHECK(Json::parse(line)["msg"] == message);
  }
  SECTION("bytes that are not UTF-8 become U+FFFD") {
    std::string message = std::string("bad \xff\xfe and \xc3 cut") + " and \xed\xa0\x80 surrogate";
    std::string line = json_line(message);
    Json object = Json::parse(line);  // throws on invalid UTF-8
    std::string msg = object["msg"];
    CHECK(msg.rfind("bad \xef\xbf\xbd", 0) == 0);
    CHECK(msg.find("cut") != std::string::npos);
    CHECK(msg.find('\xff') == std::string::npos);
  }
  SECTION("the logger's name is escaped too") {
    CHECK(Json::parse(json_line("m", spdlog::level::info, "odd\"name"))["logger"] == "odd\"name");
  }
}

// What a block of code wrote to stderr (file descriptor 2, where
// get_logger's sinks write).
template <typename Fn>
std::string capture_stderr(Fn&& fn) {
  std::random_device random;
  auto path = std::filesystem::temp_directory_path() / ("fencelock-log-" + std::to_string(random()));
  std::fflush(stderr);
  int saved = dup(2);
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  REQUIRE(fd >= 0);
  dup2(fd, 2);
  close(fd);
  fn();
  std::fflush(stderr);
  dup2(saved, 2);
  close(saved);
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::filesystem::remove(path);
  return text.str();
}

TEST_CASE("set_log_format applies to loggers created before and after it", "[logging]") {
  auto before = get_logger("logging-test-before");
  std::string text = capture_stderr([&] {
    set_log_format(LogFormat::kJson);
    before->info("one");
    get_logger("logging-test-after")->warn("two");
    set_log_format(LogFormat::kText);
    before->info("three");
  });
  std::istringstream lines(text);
  std::string line;
  REQUIRE(std::getline(lines, line));
  Json first = Json::parse(line);
  CHECK(first["logger"] == "logging-test-before");
  CHECK(first["msg"] == "one");
  REQUIRE(std::getline(lines, line));
  Json second = Json::parse(line);
  CHECK(second["logger"] == "logging-test-after");
  CHECK(second["level"] == "warning");
  CHECK(second["msg"] == "two");
  REQUIRE(std::getline(lines, line));
  CHECK(line.front() != '{');
  CHECK_THAT(line, Catch::Contains("info") && Catch::EndsWith(" [logging-test-before] three"));
  CHECK_FALSE(std::getline(lines, line));
}

TEST_CASE("parse_log_format takes text and json only", "[logging]") {
  CHECK(parse_log_format("text") == LogFormat::kText);
  CHECK(parse_log_format("json") == LogFormat::kJson);
  CHECK_FALSE(parse_log_format("xml"));
  CHECK_FALSE(parse_log_format("JSON"));
  CHECK_FALSE(parse_log_format(""));
}

}  // namespace
}  // namespace fencelock
