// common/text.h: JSON string literals, command-line durations, numbers and lists.

#include <catch2/catch.hpp>

#include "common/text.h"

namespace fencelock {
namespace {

using namespace std::chrono_literals;

TEST_CASE("json_quote escapes quotes, backslashes and control characters only", "[text]") {
  CHECK(json_quote("") == "\"\"");
  CHECK(json_quote("jobs/nightly") == "\"jobs/nightly\"");
  CHECK(json_quote("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(json_quote(std::string_view("\n\t\x01\x1f", 4)) == "\"\\u000a\\u0009\\u0001\\u001f\"");
  CHECK(json_quote("\xc3\xa9\x7f") == "\"\xc3\xa9\x7f\"");
}

TEST_CASE("parse_duration takes ms, s, m, h and a bare number of seconds", "[text]") {
  std::chrono::milliseconds out{0};
  CHECK((parse_duration("250ms", out) && out == 250ms));
  CHECK((parse_duration("10s", out) && out == 10s));
  CHECK((parse_duration("7", out) && out == 7s));
  CHECK((parse_duration("2m", out) && out == 2min));
  CHECK((parse_duration("1h", out) && out == 1h));
  out = 5ms;
  CHECK_FALSE(parse_duration("", out));
  CHECK_FALSE(parse_duration("s", out));
  CHECK_FALSE(parse_duration("-1s", out));
  CHECK_FALSE(parse_duration("10parsecs", out));
  CHECK_FALSE(parse_duration("1.5s", out));
  CHECK(out == 5ms);
}

TEST_CASE("parse_uint64 takes a whole decimal number and nothing else", "[text]") {
  uint64_t out = 3;
  CHECK((parse_uint64("0", out) && out == 0));
  CHECK((parse_uint64("18446744073709551615", out) && out == UINT64_MAX));
  out = 3;
  CHECK_FALSE(parse_uint64("", out));
  CHECK_FALSE(parse_uint64("abc", out));
  CHECK_FALSE(parse_uint64("12x", out));
  CHECK_FALSE(parse_uint64("-1", out));
  CHECK_FALSE(parse_uint64("18446744073709551616", out));
  CHECK(out == 3);
}

TEST_CASE("split keeps the non-empty parts in order", "[text]") {
  CHECK(split("", ',').empty());
  CHECK(split(",,", ',').empty());
  CHECK(split("a", ',') == std::vector<std::string>{"a"});
  CHECK(split("a,,b,", ',') == std::vector<std::string>{"a", "b"});
  CHECK(split(",127.0.0.1:7001,127.0.0.1:7002", ',') ==
        std::vector<std::string>{"127.0.0.1:7001", "127.0.0.1:7002"});
}

}  // namespace
}  // namespace fencelock
