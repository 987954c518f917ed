#pragma once
// Portable random draws from an injected std::mt19937_64.
//
// std::uniform_int_distribution is not specified bit-for-bit, so the same
// seed could give different elections on another standard library; these
// helpers use only the generator's raw 64-bit output, which the standard
// does fix. Rejection sampling keeps the draw unbiased.
//
// Thread-safety: free functions; the generator is the caller's.

#include <cstdint>
#include <random>

namespace fencelock::raft {

// Returns a value uniformly distributed in [0, n). Requires n > 0.
inline uint64_t uniform_below(std::mt19937_64& rng, uint64_t n) {
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;  // largest multiple of n, exclusive
  uint64_t draw;
  do {
    draw = rng();
  } while (draw >= limit);
  return draw % n;
}

// Returns a value uniformly distributed in [lo, hi]. Requires lo <= hi.
inline uint64_t uniform_between(std::mt19937_64& rng, uint64_t lo, uint64_t hi) {
  return lo + uniform_below(rng, hi - lo + 1);
}

// Returns true with probability `per_million` / 1,000,000.
inline bool chance(std::mt19937_64& rng, uint64_t per_million) {
  return uniform_below(rng, 1'000'000) < per_million;
}

}  // namespace fencelock::raft
