#pragma once
// One named spdlog logger per module (docs/design.md "Logging"), and how
// their lines look: text (the default) or JSON lines for log shippers
// (docs/operations.md "Logs").
//
// Thread-safety: every function may be called from any thread; the loggers
// are spdlog's thread-safe (_mt) sinks, and the log context (node, term) is
// a pair of atomics.

#include <spdlog/formatter.h>
#include <spdlog/spdlog.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace fencelock {

// Returns the logger called `name`, creating it on first use with the
// default sink (stderr, colour when a terminal) and the format in force
// (set_log_format). Never returns null.
std::shared_ptr<spdlog::logger> get_logger(const std::string& name);

// Sets the level of every existing and future logger: "trace", "debug",
// "info", "warn", "error", "critical" or "off". Returns false for an
// unknown name and changes nothing.
bool set_log_level(const std::string& level);

enum class LogFormat {
  // `2026-12-03T20:00:00.123 info [raft] 1 became leader at term 5`, in
  // local time (kTextPattern).
  kText,
  // One JSON object per line (make_json_formatter).
  kJson,
};

// The spdlog pattern of LogFormat::kText.
inline constexpr std::string_view kTextPattern = "%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v";

// "text" or "json"; nullopt for anything else.
std::optional<LogFormat> parse_log_format(std::string_view name);

// Formats every line of every existing and future logger (get_logger's,
// and spdlog's default logger) as `format`. A process sets it once at
// start-up, before it logs; until then spdlog's own pattern is in force.
void set_log_format(LogFormat format);

// The process-wide log context that JSON lines carry as "node" and "term";
// 0 (the initial value) leaves the field out. fencelockd sets its node id
// at start-up and follows the Raft term (server::Env::term_changed). A
// process running several nodes (the simulator) leaves both unset.
void set_log_node(uint64_t id);
void set_log_term(uint64_t term);

// The formatter of LogFormat::kJson: one object per line,
//   {"ts":"2026-12-03T19:00:00.123Z","level":"info","logger":"raft",
//    "node":1,"term":5,"msg":"1 became leader at term 5"}
// with ts in UTC, milliseconds included; level as spdlog names it (trace,
// debug, info, warning, error, critical); node and term from the log
// context, each omitted while 0. Any message is valid JSON: quotes,
// backslashes and control characters are escaped, and bytes that are not
// UTF-8 are replaced with U+FFFD.
std::unique_ptr<spdlog::formatter> make_json_formatter();

}  // namespace fencelock
