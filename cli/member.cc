#include "cli/member.h"

#include <cstdio>
#include <thread>

#include "cli/output.h"

namespace fencelock::cli {

namespace {

void print_members(const clientpb::MemberListResult& result) {
  std::printf("%-6s %-8s %-22s %-22s %-10s %s\n", "ID", "ROLE", "PEER", "CLIENT", "MATCH",
              "REACHABLE");
  for (const auto& member : result.members()) {
    std::string role = member.leader() ? "leader" : member.learner() ? "learner" : "voter";
    std::printf("%-6lu %-8s %-22s %-22s %-10lu %s\n", member.id(), role.c_str(),
                member.peer_address().c_str(), member.client_address().c_str(),
                member.match_index(), member.reachable() ? "yes" : "no");
  }
  if (!result.conf_committed()) {
    std::printf("(the configuration at index %lu is not committed yet)\n", result.conf_index());
  }
}

bool not_caught_up(const Result<clientpb::MemberListResult>& result) {
  return !result.ok() && result.code() == lockpb::FAILED_PRECONDITION &&
         result.status().message().find("not caught up") != std::string::npos;
}

}  // namespace

Status run_member(client::Client& client, const MemberArgs& args) {
  Result<clientpb::MemberListResult> result = Status(lockpb::INTERNAL, "no action");
  switch (args.action) {
    case MemberArgs::Action::kList:
      result = client.member_list();
      break;
    case MemberArgs::Action::kAdd:
      result = client.member_add(args.id, args.peer_address, args.client_address);
      break;
    case MemberArgs::Action::kPromote: {
      auto give_up = std::chrono::steady_clock::now() + args.catch_up_wait;
      result = client.member_promote(args.id);
      while (not_caught_up(result) && std::chrono::steady_clock::now() < give_up) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        result = client.member_promote(args.id);
      }
      break;
    }
    case MemberArgs::Action::kRemove:
      result = client.member_remove(args.id);
      break;
  }
  if (!result.ok()) return result.status();
  if (args.json) {
    std::printf("%s", to_json(result.value()).c_str());
  } else {
    print_members(result.value());
  }
  return Status();
}

}  // namespace fencelock::cli
