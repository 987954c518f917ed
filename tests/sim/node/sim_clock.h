#pragma once
// Simulated time for the node-level simulator: one real timeline in
// microseconds (Micros), and each machine's clocks on it. A steady clock
// runs at `rate` (a drift within the documented bound); a wall clock has a
// skew and may step.
//
// Thread-safety: value types.

#include <chrono>
#include <cstdint>

namespace fencelock::sim {

using Micros = uint64_t;
using SteadyTime = std::chrono::steady_clock::time_point;

// The Unix time at real time zero (2026-12-01T00:00:00Z), in milliseconds.
inline constexpr int64_t kEpochMs = 1'796'083'200'000;

struct SimClock {
  double rate = 1.0;           // steady microseconds per real microsecond
  int64_t steady_base_us = 0;  // the steady reading at real time zero
  int64_t wall_offset_ms = 0;  // skew and steps of the wall clock

  SteadyTime steady(Micros real) const {
    return SteadyTime(std::chrono::microseconds(steady_base_us +
                                                static_cast<int64_t>(static_cast<double>(real) * rate)));
  }
  uint64_t wall_ms(Micros real) const {
    return static_cast<uint64_t>(kEpochMs + wall_offset_ms +
                                 static_cast<int64_t>(static_cast<double>(real) * rate / 1000));
  }
  // The real time at which this steady clock reads `t`.
  double real_at(SteadyTime t) const {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
    return static_cast<double>(us - steady_base_us) / rate;
  }
  // How long in real time `d` on this clock lasts (at least 1 us).
  Micros real_span(std::chrono::microseconds d) const {
    double real = static_cast<double>(d.count()) / rate;
    return real < 1 ? 1 : static_cast<Micros>(real);
  }
};

}  // namespace fencelock::sim
