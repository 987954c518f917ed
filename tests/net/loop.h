#pragma once
// Test helper: run an io_context until a condition holds or a deadline
// passes (no fixed sleeps: docs/design.md "Tests").

#include <chrono>
#include <functional>

#include "net/asio.h"

namespace fencelock::net::testing {

// Runs handlers on `io` until `done()` is true; returns false if `timeout`
// passed first.
inline bool run_until(boost::asio::io_context& io, const std::function<bool()>& done,
                      std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    io.restart();
    io.run_one_for(std::chrono::milliseconds(10));
  }
  return true;
}

}  // namespace fencelock::net::testing
