#pragma once
// Simulated time for the node-level simulator: one real timeline in
// microseconds (Micros), and each machine's steady clock on it, running at
// `rate` (a drift within the documented bound). Nodes and clients read no
// wall clock, so none is simulated.
//
// Thread-safety: value types.

#include <chrono>
#include <cstdint>

namespace fencelock::sim {

using Micros = uint64_t;
using SteadyTime = std::chrono::steady_clock::time_point;

struct SimClock {
  double rate = 1.0;           // steady microseconds per real microsecond
  int64_t steady_base_us = 0;  // the steady reading at real time zero

  SteadyTime steady(Micros real) const {
    return SteadyTime(std::chrono::microseconds(steady_base_us +
                                                static_cast<int64_t>(static_cast<double>(real) * rate)));
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
