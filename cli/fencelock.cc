// fencelock: the command line for a fencelock cluster.
//
//   fencelock [--endpoints H:P,...] [--output table|json] COMMAND ...
//   fencelock lock NAME [--shared | --semaphore N] [--ttl 10s] [--wait 30s | --no-wait] -- CMD ARGS...
//   fencelock holder NAME | list [PREFIX] | check NAME TOKEN | sessions | stats [PREFIX]
//   fencelock release --force NAME | status
//   fencelock member list | add ID PEER_ADDR CLIENT_ADDR | promote ID | remove ID
//   fencelock snapshot save FILE
//
// Endpoints come from --endpoints or FENCELOCK_ENDPOINTS; TLS and identity
// from --cacert, --cert, --key and --token-file or FENCELOCK_CACERT,
// FENCELOCK_CERT, FENCELOCK_KEY and FENCELOCK_TOKEN_FILE (etcdctl's names;
// docs/security.md). Exit codes are in docs/cli.md: the command's own
// status for `lock`, 75 when the lock was not acquired, 76 when it was lost
// while the command ran, 69 when no member answered, 77 when the cluster
// refused this client's identity or rights, 2 for a usage error, 1 for any
// other error.

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <thread>

#include "cli/member.h"
#include "cli/output.h"
#include "client/session.h"
#include "common/logging.h"
#include "common/text.h"
#include "fencelock/version.h"

namespace {

using fencelock::Status;
using fencelock::client::Client;
using fencelock::client::Session;
using namespace std::chrono_literals;

constexpr int kExitError = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnavailable = 69;
constexpr int kExitNotAcquired = 75;
constexpr int kExitLockLost = 76;
constexpr int kExitNoPermission = 77;  // sysexits.h EX_NOPERM

int fail(int code, const std::string& message) {
  std::fprintf(stderr, "fencelock: %s\n", message.c_str());
  return code;
}

int exit_code_for(const Status& status) {
  switch (status.code()) {
    case fencelock::lockpb::TIMEOUT:
    case fencelock::lockpb::UNAVAILABLE:
    case fencelock::lockpb::NOT_LEADER:
      return kExitUnavailable;
    case fencelock::lockpb::PERMISSION_DENIED:
    case fencelock::lockpb::UNAUTHENTICATED:
      return kExitNoPermission;
    case fencelock::lockpb::INVALID_ARGUMENT:
      return kExitUsage;
    default:
      return kExitError;
  }
}

using fencelock::cli::to_json;

std::string mode_name(fencelock::lockpb::LockMode mode) {
  return mode == fencelock::lockpb::SHARED ? "shared" : "exclusive";
}

struct Globals {
  std::string endpoints;
  std::string output = "table";
  std::string timeout = "10s";
  std::string cacert;
  std::string cert;
  std::string key;
  std::string token_file;
};

// The endpoints from --endpoints, else FENCELOCK_ENDPOINTS, split at commas.
std::vector<std::string> endpoint_list(const Globals& globals) {
  std::string text = globals.endpoints;
  if (text.empty()) {
    const char* env = std::getenv("FENCELOCK_ENDPOINTS");
    if (env != nullptr) text = env;
  }
  return fencelock::split(text, ',');
}

fencelock::Result<std::shared_ptr<Client>> make_client(const Globals& globals) {
  fencelock::client::ClientOptions options;
  options.endpoints = endpoint_list(globals);
  if (options.endpoints.empty()) {
    return Status(fencelock::lockpb::INVALID_ARGUMENT,
                  "no endpoints: give --endpoints HOST:PORT,... or set FENCELOCK_ENDPOINTS");
  }
  std::chrono::milliseconds timeout;
  if (!fencelock::parse_duration(globals.timeout, timeout)) {
    return Status(fencelock::lockpb::INVALID_ARGUMENT, "bad duration '" + globals.timeout + "' for --timeout");
  }
  options.request_timeout = timeout;
  options.tls_ca_file = globals.cacert;
  options.tls_cert_file = globals.cert;
  options.tls_key_file = globals.key;
  if ((!globals.cert.empty() || !globals.key.empty()) && globals.cacert.empty()) {
    return Status(fencelock::lockpb::INVALID_ARGUMENT,
                  "--cert and --key need --cacert (the CA that signs the members' certificates)");
  }
  if (!globals.token_file.empty()) {
    auto token = fencelock::client::read_token_file(globals.token_file);
    if (!token.ok()) return token.status();
    options.token = token.value();
  }
  return Client::connect(options);
}

// --- fencelock lock -----------------------------------------------------------

struct LockArgs {
  std::string name;
  bool shared = false;
  uint32_t semaphore = 0;
  std::string ttl = "10s";
  std::string wait = "30s";
  bool no_wait = false;
  std::string value;
  std::string kill_grace;
  std::vector<std::string> command;
};

std::atomic<pid_t> g_child{0};

void forward_signal(int signal) {
  pid_t child = g_child.load();
  if (child > 0) kill(-child, signal);
}

int run_lock(const Globals& globals, const LockArgs& args) {
  std::chrono::milliseconds ttl, wait, grace;
  if (!fencelock::parse_duration(args.ttl, ttl)) return fail(kExitUsage, "bad duration '" + args.ttl + "' for --ttl");
  if (!fencelock::parse_duration(args.wait, wait)) return fail(kExitUsage, "bad duration '" + args.wait + "' for --wait");
  if (args.no_wait) wait = 0ms;
  grace = ttl / 5;
  if (!args.kill_grace.empty() && !fencelock::parse_duration(args.kill_grace, grace)) {
    return fail(kExitUsage, "bad duration '" + args.kill_grace + "' for --kill-grace");
  }
  if (args.command.empty()) return fail(kExitUsage, "lock needs a command after --");

  auto client = make_client(globals);
  if (!client.ok()) return fail(exit_code_for(client.status()), client.status().message());
  fencelock::client::SessionOptions session_options;
  session_options.ttl = ttl;
  session_options.client_name = "fencelock lock " + args.name;
  auto session = Session::open(client.value(), session_options);
  if (!session.ok()) {
    return fail(exit_code_for(session.status()), "cannot open a session: " + session.status().to_string());
  }
  fencelock::client::AcquireOptions acquire;
  acquire.mode = args.shared || args.semaphore > 0 ? fencelock::lockpb::SHARED : fencelock::lockpb::EXCLUSIVE;
  acquire.max_holders = args.semaphore;
  acquire.wait = wait;
  acquire.value = args.value;
  auto lock = session.value()->acquire(args.name, acquire);
  if (!lock.ok()) session.value()->close();
  if (!lock.ok()) {
    if (lock.status().code() == fencelock::lockpb::TIMEOUT) {
      return fail(kExitNotAcquired, args.no_wait ? "lock " + args.name + " is held"
                                                 : "lock " + args.name + " not acquired within " + args.wait);
    }
    return fail(exit_code_for(lock.status()), "cannot acquire " + args.name + ": " + lock.status().to_string());
  }

  // Shared with the callback, which may run on the client's thread after
  // this function returns.
  auto lost = std::make_shared<std::atomic<bool>>(false);
  session.value()->on_lost([lost] { *lost = true; });

  pid_t child = fork();
  if (child < 0) return fail(kExitError, std::string("fork: ") + std::strerror(errno));
  if (child == 0) {
    setpgid(0, 0);
    // If fencelock itself dies, the command must not run on unguarded.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1) _exit(kExitLockLost);
    setenv("FENCELOCK_TOKEN", std::to_string(lock.value()->token()).c_str(), 1);
    setenv("FENCELOCK_LOCK", args.name.c_str(), 1);
    std::vector<char*> argv;
    for (const auto& arg : args.command) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    std::fprintf(stderr, "fencelock: cannot run %s: %s\n", argv[0], std::strerror(errno));
    _exit(127);
  }
  setpgid(child, child);
  g_child = child;
  signal(SIGTERM, forward_signal);
  signal(SIGINT, forward_signal);
  signal(SIGHUP, forward_signal);

  // Watch the child and the session. The child must be dead before the
  // cluster could grant the lock again: SIGTERM `grace` before safe-until,
  // SIGKILL at safe-until (docs/client.md).
  int status = 0;
  bool terminated = false;
  bool killed = false;
  while (true) {
    pid_t done = waitpid(child, &status, WNOHANG);
    if (done == child) break;
    auto now = fencelock::client::Clock::now();
    auto safe_until = lock.value()->safe_until();
    // SIGKILL a little before safe-until: this loop's poll interval and the
    // kill itself must fit before the cluster can grant the lock again.
    auto kill_at = safe_until - std::min<std::chrono::milliseconds>(50ms, grace / 2);
    if (!killed && (lost->load() || now >= kill_at)) {
      kill(-child, SIGKILL);
      killed = true;
    } else if (!terminated && now + grace >= safe_until) {
      std::fprintf(stderr, "fencelock: lock %s in jeopardy (no keepalive acknowledged); stopping the command\n",
                   args.name.c_str());
      kill(-child, SIGTERM);
      terminated = true;
    }
    std::this_thread::sleep_for(killed || terminated ? 2ms : 10ms);
  }
  g_child = 0;
  if (terminated || killed) {
    std::fprintf(stderr, "fencelock: lock %s lost; the command was %s\n", args.name.c_str(),
                 killed ? "killed" : "terminated");
    return kExitLockLost;
  }
  Status released = lock.value()->release();
  if (!released.ok()) std::fprintf(stderr, "fencelock: release of %s: %s\n", args.name.c_str(), released.to_string().c_str());
  session.value()->close();
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return kExitError;
}

// --- Reads ---------------------------------------------------------------------

void print_lock_table(const fencelock::clientpb::LockInfo& info) {
  std::printf("%-32s %-10s %-12s %-8s %s\n", "LOCK", "MODE", "TOKEN", "SESSION", "VALUE");
  for (const auto& holder : info.holders()) {
    std::printf("%-32s %-10s %-12lu %-8lu %s\n", info.name().c_str(), mode_name(holder.mode()).c_str(),
                holder.token(), holder.session_id(), holder.value().c_str());
  }
  for (const auto& waiter : info.waiters()) {
    std::printf("%-32s %-10s %-12s %-8lu %s\n", info.name().c_str(), mode_name(waiter.mode()).c_str(),
                "(waiting)", waiter.session_id(), "");
  }
  if (info.in_lock_delay()) std::printf("%-32s in lock-delay\n", info.name().c_str());
}

int run_holder(const Globals& globals, const std::string& name) {
  auto client = make_client(globals);
  if (!client.ok()) return fail(exit_code_for(client.status()), client.status().message());
  auto info = client.value()->describe(name);
  if (info.code() == fencelock::lockpb::NOT_FOUND) {
    if (globals.output == "json") std::printf("{\"name\": %s, \"holders\": []}\n", fencelock::json_quote(name).c_str());
    else std::printf("%s is not held\n", name.c_str());
    return 1;
  }
  if (!info.ok()) return fail(exit_code_for(info.status()), info.status().to_string());
  if (globals.output == "json") std::printf("%s", to_json(info.value()).c_str());
  else print_lock_table(info.value());
  return 0;
}

int run_list(const Globals& globals, const std::string& prefix) {
  auto client = make_client(globals);
  if (!client.ok()) return fail(exit_code_for(client.status()), client.status().message());
  fencelock::clientpb::LockList all;
  std::string after;
  do {
    auto page = client.value()->list(prefix, after, 0);
    if (!page.ok()) return fail(exit_code_for(page.status()), page.status().to_string());
    for (const auto& lock : page.value().locks()) *all.add_locks() = lock;
    after = page.value().next_start_after();
  } while (!after.empty());
  if (globals.output == "json") {
    std::printf("%s", to_json(all).c_str());
    return 0;
  }
  std::printf("%-32s %-10s %-8s %-8s %s\n", "LOCK", "MODE", "HOLDERS", "WAITERS", "TOKENS");
  for (const auto& lock : all.locks()) {
    std::string tokens;
    for (const auto& holder : lock.holders()) tokens += (tokens.empty() ? "" : ",") + std::to_string(holder.token());
    std::string mode = lock.holders().empty() ? "-" : mode_name(lock.holders(0).mode());
    std::printf("%-32s %-10s %-8d %-8d %s\n", lock.name().c_str(), mode.c_str(), lock.holders_size(),
                lock.waiters_size(), tokens.c_str());
  }
  return 0;
}

int run_check(const Globals& globals, const std::string& name, uint64_t token) {
  auto client = make_client(globals);
  if (!client.ok()) return fail(exit_code_for(client.status()), client.status().message());
  auto info = client.value()->describe(name);
  bool current = false;
  if (info.ok()) {
    for (const auto& holder : info.value().holders()) current = current || holder.token() == token;
  } else if (info.code() != fencelock::lockpb::NOT_FOUND) {
    return fail(exit_code_for(info.status()), info.status().to_string());
  }
  if (globals.output == "json") {
    std::printf("{\"lock\": %s, \"token\": %lu, \"current\": %s}\n", fencelock::json_quote(name).c_str(), token,
                current ? "true" : "false");
  } else {
    std::printf("%s token %lu is %s\n", name.c_str(), token, current ? "current" : "not current");
  }
  return current ? 0 : 1;
}

int run_sessions(const Globals& globals) {
  auto client = make_client(globals);
  if (!client.ok()) return fail(exit_code_for(client.status()), client.status().message());
  fencelock::clientpb::SessionList all;
  uint64_t after = 0;
  do {
    auto page = client.value()->list_sessions(after, 0);
    if (!page.ok()) return fail(exit_code_for(page.status()), page.status().to_string());
    for (const auto& session : page.value().sessions()) *all.add_sessions() = session;
    after = page.value().next_start_after();
  } while (after != 0);
  if (globals.output == "json") {
    std::printf("%s", to_json(all).c_str());
    return 0;
  }
  std::printf("%-10s %-10s %-6s %-8s %-16s %s\n", "SESSION", "TTL_MS", "HELD", "WAITING",
              "PRINCIPAL", "CLIENT");
  for (const auto& session : all.sessions()) {
    // "-" for the anonymous principal (authentication off).
    std::printf("%-10lu %-10lu %-6u %-8u %-16s %s\n", session.session_id(), session.ttl_ms(),
                session.held_locks(), session.waiting_locks(),
                session.principal().empty() ? "-" : session.principal().c_str(),
                session.client_name().c_str());
  }
  return 0;
}

std::string seconds_text(double seconds, uint64_t count) {
  if (count == 0) return "-";
  char text[32];
  if (seconds < 1) {
    std::snprintf(text, sizeof text, "%.1fms", seconds * 1000);
  } else {
    std::snprintf(text, sizeof text, "%.2fs", seconds);
  }
  return text;
}

int run_stats(const Globals& globals, const std::string& prefix) {
  auto client = make_client(globals);
  if (!client.ok()) return fail(exit_code_for(client.status()), client.status().message());
  auto stats = client.value()->lock_stats(prefix);
  if (!stats.ok()) return fail(exit_code_for(stats.status()), stats.status().to_string());
  const auto& s = stats.value();
  if (globals.output == "json") {
    std::printf("%s", to_json(s).c_str());
    return 0;
  }
  std::printf("node %lu (applied %lu): %lu grants, %lu hand-offs, %lu waiting; releases: %lu "
              "released, %lu on close, %lu on expiry, %lu forced; sessions: %lu opened, %lu "
              "closed, %lu expired\n",
              s.node_id(), s.applied_index(), s.grants(), s.hand_offs(), s.waiters(), s.released(),
              s.released_on_close(), s.released_on_expiry(), s.force_released(),
              s.sessions_opened(), s.sessions_closed(), s.sessions_expired());
  auto table = [](const char* title, const auto& rows) {
    std::printf("\n%-32s %8s %8s %8s %6s %9s %9s %9s %9s\n", title, "GRANTS", "HANDOFFS",
                "RELEASES", "QUEUE", "WAIT_P50", "WAIT_P99", "HOLD_P50", "HOLD_P99");
    for (const auto& row : rows) {
      std::printf("%-32s %8lu %8lu %8lu %6lu %9s %9s %9s %9s\n", row.name().c_str(), row.grants(),
                  row.hand_offs(), row.releases(), row.queue_length(),
                  seconds_text(row.wait_p50_seconds(), row.waits()).c_str(),
                  seconds_text(row.wait_p99_seconds(), row.waits()).c_str(),
                  seconds_text(row.hold_p50_seconds(), row.holds()).c_str(),
                  seconds_text(row.hold_p99_seconds(), row.holds()).c_str());
    }
  };
  table("PREFIX", s.prefixes());
  table("BUSIEST LOCK", s.top());
  return 0;
}

int run_release(const Globals& globals, const std::string& name, bool force) {
  if (!force) return fail(kExitUsage, "release needs --force: it takes the lock from whoever holds it");
  auto client = make_client(globals);
  if (!client.ok()) return fail(exit_code_for(client.status()), client.status().message());
  Status status = client.value()->force_release(name);
  if (!status.ok()) return fail(status.code() == fencelock::lockpb::LOCK_NOT_HELD ? kExitError : exit_code_for(status),
                                "release of " + name + ": " + status.to_string());
  if (globals.output == "json") {
    std::printf("{\"released\": %s}\n", fencelock::json_quote(name).c_str());
  } else {
    std::printf("released %s\n", name.c_str());
  }
  return 0;
}

int run_status(const Globals& globals) {
  auto client = make_client(globals);
  if (!client.ok()) return fail(exit_code_for(client.status()), client.status().message());
  fencelock::clientpb::ClusterStatusResult result;
  bool any = false;
  for (const std::string& endpoint : endpoint_list(globals)) {
    auto status = client.value()->member_status(endpoint);
    auto* member = result.add_members();
    member->set_address(endpoint);
    if (!status.ok()) {
      member->set_reachable(false);
      member->set_role("unreachable");
      continue;
    }
    any = true;
    for (const auto& self : status.value().members()) {
      if (self.id() == status.value().self_id()) {
        *member = self;
        member->set_address(endpoint);
      }
    }
  }
  if (globals.output == "json") {
    std::printf("%s", to_json(result).c_str());
  } else {
    std::printf("%-4s %-22s %-13s %-6s %-10s %-10s %s\n", "ID", "ADDRESS", "ROLE", "TERM", "COMMIT", "APPLIED", "REACHABLE");
    for (const auto& member : result.members()) {
      std::printf("%-4lu %-22s %-13s %-6lu %-10lu %-10lu %s\n", member.id(), member.address().c_str(),
                  member.role().c_str(), member.term(), member.commit_index(), member.applied_index(),
                  member.reachable() ? "yes" : "no");
    }
  }
  return any ? 0 : kExitUnavailable;
}

// --- fencelock snapshot save --------------------------------------------------

int run_snapshot_save(const Globals& globals, const std::string& file) {
  auto client = make_client(globals);
  if (!client.ok()) return fail(exit_code_for(client.status()), client.status().message());
  auto saved = client.value()->save_snapshot(file);
  if (!saved.ok()) {
    return fail(exit_code_for(saved.status()), "snapshot save: " + saved.status().to_string());
  }
  const auto& s = saved.value();
  if (globals.output == "json") {
    std::printf(
        "{\"file\": %s, \"cluster_id\": %s, \"index\": %lu, \"term\": %lu, \"size\": %lu, "
        "\"sha256\": \"%s\"}\n",
        fencelock::json_quote(file).c_str(), fencelock::json_quote(s.cluster_id).c_str(), s.index,
        s.term, s.size, s.sha256.c_str());
  } else {
    std::printf("saved snapshot of cluster %s to %s\n", s.cluster_id.c_str(), file.c_str());
    std::printf("index   %lu (term %lu)\nsize    %lu bytes\nsha256  %s\n", s.index, s.term, s.size,
                s.sha256.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  fencelock::set_log_level("warn");
  Globals globals;
  CLI::App app{"fencelock: take locks and inspect a fencelock cluster"};
  app.require_subcommand(1);
  app.set_version_flag("--version", FENCELOCK_VERSION, "print the version and exit");
  app.add_option("--endpoints", globals.endpoints, "cluster members, HOST:PORT,... (or FENCELOCK_ENDPOINTS)");
  app.add_option("--output", globals.output, "table or json")->check(CLI::IsMember({"table", "json"}));
  app.add_option("--timeout", globals.timeout, "how long a request may take, e.g. 10s");
  app.add_option("--cacert", globals.cacert,
                 "TLS: the CA that signs the members' certificates (or FENCELOCK_CACERT)")
      ->envname("FENCELOCK_CACERT");
  app.add_option("--cert", globals.cert,
                 "TLS: this client's certificate, for --client-auth cert (or FENCELOCK_CERT)")
      ->envname("FENCELOCK_CERT");
  app.add_option("--key", globals.key, "TLS: the key of --cert (or FENCELOCK_KEY)")
      ->envname("FENCELOCK_KEY");
  app.add_option("--token-file", globals.token_file,
                 "a file holding this client's token, for --client-auth token (or "
                 "FENCELOCK_TOKEN_FILE)")
      ->envname("FENCELOCK_TOKEN_FILE");

  LockArgs lock_args;
  auto* lock = app.add_subcommand("lock", "hold a lock while a command runs");
  lock->add_option("name", lock_args.name, "lock name")->required();
  auto* shared = lock->add_flag("--shared", lock_args.shared, "take the lock shared");
  lock->add_option("--semaphore", lock_args.semaphore, "a semaphore of N holders")->excludes(shared);
  lock->add_option("--ttl", lock_args.ttl, "session TTL, e.g. 10s");
  auto* wait = lock->add_option("--wait", lock_args.wait, "how long to wait for the lock, e.g. 30s");
  lock->add_flag("--no-wait", lock_args.no_wait, "fail at once (exit 75) if the lock is held")->excludes(wait);
  lock->add_option("--value", lock_args.value, "a value stored with the grant (<= 1 KiB)");
  lock->add_option("--kill-grace", lock_args.kill_grace, "SIGTERM this long before SIGKILL (default TTL/5)");
  lock->add_option("command", lock_args.command, "the command to run, after --")->required();
  lock->positionals_at_end(false);

  std::string name;
  auto* holder = app.add_subcommand("holder", "who holds a lock, and who waits");
  holder->add_option("name", name, "lock name")->required();
  std::string prefix;
  auto* list = app.add_subcommand("list", "locks whose name starts with PREFIX");
  list->add_option("prefix", prefix, "name prefix");
  uint64_t token = 0;
  auto* check = app.add_subcommand("check", "is TOKEN the current grant of NAME (exit 0) or not (exit 1)");
  check->add_option("name", name, "lock name")->required();
  check->add_option("token", token, "fencing token")->required();
  auto* sessions = app.add_subcommand("sessions", "open sessions");
  auto* stats = app.add_subcommand(
      "stats", "lock statistics of the member answering: per prefix and the busiest locks");
  stats->add_option("prefix", prefix, "only locks under this prefix");
  bool force = false;
  auto* release = app.add_subcommand("release", "operator: take a lock from its holders");
  release->add_option("name", name, "lock name")->required();
  release->add_flag("--force", force, "required: the holders are not told");
  auto* status = app.add_subcommand("status", "each member: id, address, role, term, commit, applied");
  std::string snapshot_file;
  auto* snapshot = app.add_subcommand("snapshot", "operator: backups (docs/operations.md)");
  snapshot->require_subcommand(1);
  auto* snapshot_save =
      snapshot->add_subcommand("save", "save a consistent snapshot of the cluster to FILE");
  snapshot_save->add_option("file", snapshot_file, "backup file to write (via FILE.tmp)")
      ->required();

  fencelock::cli::MemberArgs member_args;
  using Action = fencelock::cli::MemberArgs::Action;
  std::string catch_up_wait = "120s";
  auto* member = app.add_subcommand("member", "list, add, promote or remove cluster members");
  member->require_subcommand(1);
  auto* member_list = member->add_subcommand("list", "every member: id, role, addresses, match index");
  auto* member_add = member->add_subcommand("add", "add a node as a learner (start it with --join)");
  member_add->add_option("id", member_args.id, "the new node's id, never used before")->required();
  member_add->add_option("peer_addr", member_args.peer_address, "its peer address, HOST:PORT")->required();
  member_add->add_option("client_addr", member_args.client_address, "its client address, HOST:PORT")
      ->required();
  auto* member_promote = member->add_subcommand("promote", "make a caught-up learner a voter");
  member_promote->add_option("id", member_args.id, "the learner's id")->required();
  member_promote->add_option("--wait", catch_up_wait, "how long to wait for it to catch up, e.g. 120s");
  auto* member_remove = member->add_subcommand("remove", "remove a member (a leader hands over first)");
  member_remove->add_option("id", member_args.id, "the member's id")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::CallForVersion&) {
    std::cout << "fencelock " FENCELOCK_VERSION "\n";
    return 0;
  } catch (const CLI::ParseError& e) {
    return fail(kExitUsage, e.what());
  }

  if (*lock) return run_lock(globals, lock_args);
  if (*holder) return run_holder(globals, name);
  if (*list) return run_list(globals, prefix);
  if (*check) return run_check(globals, name, token);
  if (*sessions) return run_sessions(globals);
  if (*stats) return run_stats(globals, prefix);
  if (*release) return run_release(globals, name, force);
  if (*status) return run_status(globals);
  if (*member) {
    member_args.action = *member_list      ? Action::kList
                         : *member_add     ? Action::kAdd
                         : *member_promote ? Action::kPromote
                                           : Action::kRemove;
    (void)member_remove;
    member_args.json = globals.output == "json";
    if (!fencelock::parse_duration(catch_up_wait, member_args.catch_up_wait)) {
      return fail(kExitUsage, "bad duration '" + catch_up_wait + "' for --wait");
    }
    auto client = make_client(globals);
    if (!client.ok()) return fail(exit_code_for(client.status()), client.status().message());
    Status done = fencelock::cli::run_member(*client.value(), member_args);
    if (!done.ok()) return fail(exit_code_for(done), "member: " + done.to_string());
    return 0;
  }
  if (*snapshot_save) return run_snapshot_save(globals, snapshot_file);
  return fail(kExitUsage, "no command");
}
