#pragma once
// FL_CHECK: a broken invariant, a damaged store or a failed fsync logs at
// critical and aborts, in every build type. A lock service that continues
// after losing durability lies to its users (docs/design.md "Errors").

#include <spdlog/fmt/fmt.h>

#include <string>

namespace fencelock::detail {
[[noreturn]] void check_failed(const char* file, int line, const char* condition,
                               const std::string& message);
}  // namespace fencelock::detail

// FL_CHECK(cond, "format {}", args...): aborts with file, line, condition and
// the formatted message when `cond` is false.
#define FL_CHECK(cond, ...)                                                                   \
  do {                                                                                        \
    if (!(cond)) [[unlikely]] {                                                               \
      ::fencelock::detail::check_failed(__FILE__, __LINE__, #cond, fmt::format(__VA_ARGS__)); \
    }                                                                                         \
  } while (0)
