// CoreLog: the stitching of persisted and unstable entries.
#include "raft/core_log.h"

#include <catch2/catch.hpp>

#include "raft/memory_storage.h"
#include "tests/raft/test_cluster.h"

namespace fencelock::raft {
namespace {

using testing::entry;
using testing::log_with_terms;

TEST_CASE("the raft log reads persisted and unstable entries as one log", "[raft][log]") {
  MemoryStorage storage;
  storage.append(log_with_terms({1, 1, 2}));
  CoreLog log(storage);
  CHECK(log.last_index() == 3);
  log.append({entry(4, 3), entry(5, 3)});
  CHECK(log.last_index() == 5);
  CHECK(log.term(2) == 1u);
  CHECK(log.term(5) == 3u);
  CHECK_FALSE(log.term(6).has_value());
  auto all = log.slice(1, 6, UINT64_MAX);
  REQUIRE(all);
  CHECK(all->size() == 5);
  // A conflicting append replaces a persisted suffix.
  log.append({entry(3, 4)});
  CHECK(log.last_index() == 3);
  CHECK(log.term(3) == 4u);
  CHECK(log.unstable_entries().size() == 1);
  storage.append(log.unstable_entries());
  log.stable_to(3, 4);
  CHECK(log.unstable_entries().empty());
  CHECK(log.last_stable_index() == 3);
}

TEST_CASE("a committed entry is never replaced (§5.3)", "[raft][log]") {
  MemoryStorage storage;
  storage.append(log_with_terms({1, 1, 2}));
  CoreLog log(storage);
  log.commit_to(2);
  CHECK(log.maybe_append(2, 1, 3, {entry(3, 3)}) == 3u);
  CHECK(log.term(3) == 3u);
  CHECK(log.committed() == 3);
  CHECK_FALSE(log.maybe_append(3, 9, 3, {}).has_value());
}

TEST_CASE("the raft log commits only an entry of the given term (§5.4.2)", "[raft][log]") {
  MemoryStorage storage;
  storage.append(log_with_terms({1, 2}));
  CoreLog log(storage);
  CHECK_FALSE(log.maybe_commit(2, 3));
  CHECK(log.maybe_commit(2, 2));
  CHECK(log.committed() == 2);
}

TEST_CASE("the conflict hint skips every entry of a newer term", "[raft][log]") {
  MemoryStorage storage;
  storage.append(log_with_terms({1, 1, 1, 4, 4, 5, 5, 6, 6, 6}));
  CoreLog log(storage);
  CHECK(log.find_conflict_by_term(10, 3) == 3);
  CHECK(log.find_conflict_by_term(10, 5) == 7);
  CHECK(log.find_conflict_by_term(10, 6) == 10);
  CHECK(log.find_conflict_by_term(20, 6) == 10);
}

TEST_CASE("compacted entries are reported as unavailable", "[raft][log]") {
  MemoryStorage storage;
  storage.append(log_with_terms({1, 1, 2, 2}));
  storage.create_snapshot(3, {}, "s");
  storage.compact(3);
  CoreLog log(storage);
  CHECK(log.first_index() == 4);
  CHECK(log.term(3) == 2u);
  CHECK_FALSE(log.term(2).has_value());
  CHECK_FALSE(log.slice(2, 5, UINT64_MAX).has_value());
  CHECK(log.committed() == 3);
}

}  // namespace
}  // namespace fencelock::raft
