#pragma once
// Small text helpers the command-line programs and test drivers share:
// JSON string literals, durations and lists given on a command line.
//
// Thread-safety: pure functions.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace fencelock {

// `text` as a JSON string literal, quotes included: '"' and '\' escaped,
// control characters as \u00XX, every other byte (UTF-8) as it is.
std::string json_quote(std::string_view text);

// Parses "250ms", "10s", "2m", "1h"; a bare number is seconds. False (and
// `out` untouched) for anything else.
bool parse_duration(std::string_view text, std::chrono::milliseconds& out);

// Parses a whole decimal unsigned number; false for anything else
// (empty, a sign, trailing characters, overflow).
bool parse_uint64(std::string_view text, uint64_t& out);

// The non-empty parts of `text` between `separator`s.
std::vector<std::string> split(std::string_view text, char separator);

}  // namespace fencelock
