#include "common/logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>

namespace fencelock {

namespace {

// Read by whichever thread logs (the loop, the storage thread, the snapshot
// thread); a line needs no ordering with anything else.
std::atomic<uint64_t> log_node{0};
std::atomic<uint64_t> log_term{0};

// "2026-12-03T19:00:00.123Z".
std::string utc_timestamp(spdlog::log_clock::time_point time) {
  auto since_epoch = time.time_since_epoch();
  auto seconds = std::chrono::floor<std::chrono::seconds>(since_epoch);
  auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch - seconds);
  std::time_t whole = static_cast<std::time_t>(seconds.count());
  std::tm utc{};
  gmtime_r(&whole, &utc);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", utc.tm_year + 1900,
                     utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                     millis.count());
}

class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    // ordered_json keeps the fields in the order written here.
    nlohmann::ordered_json line;
    line["ts"] = utc_timestamp(msg.time);
    auto level = spdlog::level::to_string_view(msg.level);
    line["level"] = std::string(level.data(), level.size());
    line["logger"] = std::string(msg.logger_name.data(), msg.logger_name.size());
    if (uint64_t node = log_node.load(std::memory_order_relaxed); node != 0) line["node"] = node;
    if (uint64_t term = log_term.load(std::memory_order_relaxed); term != 0) line["term"] = term;
    line["msg"] = std::string(msg.payload.data(), msg.payload.size());
    // replace: a byte that is not UTF-8 becomes U+FFFD instead of throwing.
    std::string text = line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    text.push_back('\n');
    dest.append(text.data(), text.data() + text.size());
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

}  // namespace

std::shared_ptr<spdlog::logger> get_logger(const std::string& name) {
  if (auto existing = spdlog::get(name)) return existing;
  // Registered: it gets the registry's formatter (set_log_format) and level.
  auto logger = spdlog::stderr_color_mt(name);
  logger->set_level(spdlog::get_level());
  return logger;
}

bool set_log_level(const std::string& level) {
  auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") return false;
  spdlog::set_level(parsed);
  return true;
}

std::optional<LogFormat> parse_log_format(std::string_view name) {
  if (name == "text") return LogFormat::kText;
  if (name == "json") return LogFormat::kJson;
  return std::nullopt;
}

void set_log_format(LogFormat format) {
  // The registry hands a clone to every logger it holds and to every one
  // created after (spdlog::details::registry::initialize_logger).
  switch (format) {
    case LogFormat::kText:
      spdlog::set_formatter(std::make_unique<spdlog::pattern_formatter>(std::string(kTextPattern)));
      return;
    case LogFormat::kJson:
      spdlog::set_formatter(make_json_formatter());
      return;
  }
}

void set_log_node(uint64_t id) { log_node.store(id, std::memory_order_relaxed); }

void set_log_term(uint64_t term) { log_term.store(term, std::memory_order_relaxed); }

std::unique_ptr<spdlog::formatter> make_json_formatter() { return std::make_unique<JsonFormatter>(); }

}  // namespace fencelock
