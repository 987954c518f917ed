// Unit tests of client access (server/access.h): the tokens and ACL file
// formats, what each right allows, and which requests need which right.

#include "server/access.h"

#include <catch2/catch.hpp>

namespace fencelock::server {
namespace {

Acl parse_acl(const std::string& text) {
  auto acl = Acl::parse(text, "acl");
  INFO(acl.status().to_string());
  REQUIRE(acl.ok());
  return acl.value();
}

clientpb::Request acquire(const std::string& lock) {
  clientpb::Request request;
  request.mutable_acquire()->set_lock(lock);
  return request;
}

TEST_CASE("tokens map to principals; short, doubled or malformed lines are errors naming the line",
          "[server][access]") {
  auto tokens = Tokens::parse(
      "# comment\n"
      "0123456789abcdef0123 alice   # trailing comment\n"
      "\n"
      "fedcba9876543210fedc bob\n",
      "tokens");
  REQUIRE(tokens.ok());
  CHECK(tokens.value().size() == 2);
  CHECK(tokens.value().principal("0123456789abcdef0123") == "alice");
  CHECK(tokens.value().principal("fedcba9876543210fedc") == "bob");
  CHECK_FALSE(tokens.value().principal("0123456789abcdef012").has_value());  // a prefix
  CHECK_FALSE(tokens.value().principal("").has_value());

  auto short_token = Tokens::parse("short alice\n", "tokens");
  CHECK(short_token.code() == lockpb::INVALID_ARGUMENT);
  CHECK(short_token.status().message().find("tokens:1:") == 0);
  auto doubled = Tokens::parse("0123456789abcdef0123 a\n0123456789abcdef0123 b\n", "tokens");
  CHECK(doubled.status().message().find("tokens:2: token listed twice") == 0);
  CHECK(Tokens::parse("0123456789abcdef0123\n", "tokens").code() == lockpb::INVALID_ARGUMENT);
  CHECK(Tokens::parse("# nothing\n", "tokens").code() == lockpb::INVALID_ARGUMENT);
}

TEST_CASE("an ACL grants rights per prefix; * is every principal or everything",
          "[server][access]") {
  Acl acl = parse_acl(
      "admin  *       lock,read,admin\n"
      "alice  jobs/   lock,read\n"
      "*      public/ read\n");
  CHECK(acl.allows("alice", kRightLock, "jobs/build"));
  CHECK(acl.allows("alice", kRightRead, "jobs/"));
  CHECK_FALSE(acl.allows("alice", kRightLock, "job"));  // shorter than the prefix
  CHECK_FALSE(acl.allows("alice", kRightAdmin, "jobs/build"));
  CHECK_FALSE(acl.allows("alice", kRightLock, "payroll"));
  CHECK(acl.allows("bob", kRightRead, "public/x"));
  CHECK_FALSE(acl.allows("bob", kRightLock, "public/x"));
  CHECK(acl.allows("admin", kRightAdmin, "anything"));
  CHECK(acl.allows_cluster("admin", kRightAdmin));
  CHECK_FALSE(acl.allows_cluster("alice", kRightAdmin));
  CHECK_FALSE(acl.allows("", kRightRead, "jobs/x"));

  CHECK(Acl::parse("alice jobs/ lock,write\n", "acl").status().message() ==
        "acl:1: unknown right 'write' (lock, read, admin)");
  CHECK(Acl::parse("alice jobs/\n", "acl").status().message() ==
        "acl:1: expected: PRINCIPAL PREFIX RIGHTS");
  CHECK(parse_acl("").rules().empty());
}

TEST_CASE("each request needs its right: lock, read, admin on the lock or on the cluster",
          "[server][access]") {
  Acl acl = parse_acl(
      "admin  *      lock,read,admin\n"
      "alice  jobs/  lock,read\n"
      "ops    jobs/  admin\n");
  CHECK(acl.check("alice", acquire("jobs/a")).ok());
  Status denied = acl.check("alice", acquire("other/a"));
  CHECK(denied.code() == lockpb::PERMISSION_DENIED);
  CHECK(denied.message() == "principal 'alice' has no lock right on lock 'other/a'");

  clientpb::Request force;
  force.mutable_force_release()->set_lock("jobs/a");
  CHECK(acl.check("alice", force).code() == lockpb::PERMISSION_DENIED);
  CHECK(acl.check("ops", force).ok());  // admin under its prefix
  CHECK(acl.check("admin", force).ok());

  clientpb::Request sessions;
  sessions.mutable_list_sessions();
  CHECK(acl.check("ops", sessions).code() == lockpb::PERMISSION_DENIED);  // not on *
  CHECK(acl.check("admin", sessions).ok());
  clientpb::Request add;
  add.mutable_member_add()->set_id(4);
  CHECK(acl.check("alice", add).code() == lockpb::PERMISSION_DENIED);
  CHECK(acl.check("admin", add).ok());
  clientpb::Request backup;
  backup.mutable_backup_begin();
  CHECK(acl.check("ops", backup).code() == lockpb::PERMISSION_DENIED);

  clientpb::Request list;
  list.mutable_list_locks()->set_prefix("jobs/team");
  CHECK(acl.check("alice", list).ok());
  list.mutable_list_locks()->set_prefix("");
  CHECK(acl.check("alice", list).code() == lockpb::PERMISSION_DENIED);

  // Sessions, status and the member list need no right.
  clientpb::Request open;
  open.mutable_open_session();
  CHECK(acl.check("nobody", open).ok());
  clientpb::Request members;
  members.mutable_member_list();
  CHECK(acl.check("nobody", members).ok());
  clientpb::Request describe;
  describe.mutable_describe()->set_lock("jobs/a");
  CHECK(acl.check("nobody", describe).code() == lockpb::PERMISSION_DENIED);
}

}  // namespace
}  // namespace fencelock::server
