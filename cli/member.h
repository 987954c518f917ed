#pragma once
// `fencelock member ...`: list, add, promote and remove cluster members
// (docs/cli.md, docs/operations.md "Membership").

#include <chrono>
#include <cstdint>
#include <string>

#include "client/client.h"

namespace fencelock::cli {

struct MemberArgs {
  enum class Action { kList, kAdd, kPromote, kRemove };
  Action action = Action::kList;
  uint64_t id = 0;
  std::string peer_address;
  std::string client_address;
  // promote: how long to wait for the learner to catch up (retrying while
  // the leader answers FAILED_PRECONDITION "not caught up").
  std::chrono::milliseconds catch_up_wait{std::chrono::seconds(120)};
  bool json = false;
};

// Runs the action and prints the members (a table, or JSON); returns the
// error to report, if any.
Status run_member(client::Client& client, const MemberArgs& args);

}  // namespace fencelock::cli
