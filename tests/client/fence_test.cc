#include "fencelock/fence.h"

#include <catch2/catch.hpp>

#include <thread>
#include <vector>

namespace fencelock {

TEST_CASE("a fence admits equal and higher tokens and refuses lower ones", "[fence]") {
  Fence fence;
  CHECK(fence.highest("a") == 0);
  CHECK(fence.admit("a", 5));
  CHECK(fence.admit("a", 5));
  CHECK(fence.admit("a", 9));
  CHECK_FALSE(fence.admit("a", 8));
  CHECK(fence.highest("a") == 9);
  // Locks are fenced independently.
  CHECK(fence.admit("b", 1));
  CHECK(fence.highest("b") == 1);
}

TEST_CASE("admit_and runs the action only for a current token", "[fence]") {
  Fence fence;
  int writes = 0;
  CHECK(fence.admit_and("x", 3, [&] { ++writes; }));
  CHECK_FALSE(fence.admit_and("x", 2, [&] { ++writes; }));
  CHECK(writes == 1);
}

TEST_CASE("concurrent holders: the highest token wins and no lower one gets in after it", "[fence]") {
  Fence fence;
  std::vector<std::thread> threads;
  std::vector<uint64_t> admitted_after_max;
  std::mutex mutex;
  uint64_t max_seen = 0;
  for (uint64_t t = 1; t <= 8; ++t) {
    threads.emplace_back([&, t] {
      for (uint64_t token = t; token <= 8000; token += 8) {
        fence.admit_and("hot", token, [&] {
          std::lock_guard guard(mutex);
          if (token < max_seen) admitted_after_max.push_back(token);
          max_seen = std::max(max_seen, token);
        });
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(admitted_after_max.empty());
  CHECK(fence.highest("hot") == 8000);
}

}  // namespace fencelock
