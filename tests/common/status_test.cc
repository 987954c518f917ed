#include "common/status.h"

#include <catch2/catch.hpp>

namespace fencelock {

TEST_CASE("an ok status has no message and prints OK", "[status]") {
  Status status;
  CHECK(status.ok());
  CHECK(status.to_string() == "OK");
}

TEST_CASE("an error status prints its wire code name and message", "[status]") {
  Status status(lockpb::NOT_LEADER, "leader is 2");
  CHECK_FALSE(status.ok());
  CHECK(status.code() == lockpb::NOT_LEADER);
  CHECK(status.to_string() == "NOT_LEADER: leader is 2");
}

TEST_CASE("a result holds either a value or an error", "[status]") {
  Result<int> good(7);
  REQUIRE(good.ok());
  CHECK(good.value() == 7);

  Result<int> bad(lockpb::LOCK_NOT_HELD, "not yours");
  CHECK_FALSE(bad.ok());
  CHECK(bad.code() == lockpb::LOCK_NOT_HELD);
  CHECK(bad.status().message() == "not yours");
}

}  // namespace fencelock
