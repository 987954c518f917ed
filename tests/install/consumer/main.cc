// A program outside the fencelock tree, built against an installed copy of
// libfencelock (tests/install/install_test.sh builds it twice: with
// find_package(fencelock) and with pkg-config).
//
//   fencelock-consumer                  prints the versions; checks the fence
//   fencelock-consumer ENDPOINTS LOCK   takes LOCK on the cluster twice, and
//                                       checks the second token fences the first
//   fencelock-consumer --no-server ENDPOINT
//                                       expects a clean UNAVAILABLE/TIMEOUT
//
// Exit code 0 when every check holds, 1 otherwise.

#include <fencelock/fence.h>
#include <fencelock/version.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "client/session.h"

namespace fl = fencelock::client;
using namespace std::chrono_literals;

namespace {

int fail(const std::string& what) {
  std::fprintf(stderr, "fencelock-consumer: %s\n", what.c_str());
  return 1;
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    out.push_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

int no_server(const std::string& endpoint) {
  fl::ClientOptions options;
  options.endpoints = {endpoint};
  options.request_timeout = 1500ms;
  options.connect_timeout = 300ms;
  auto client = fl::Client::connect(options);
  if (!client.ok()) return fail("connect: " + client.status().to_string());
  auto session = fl::Session::open(client.value(), {.ttl = 5s});
  if (session.ok()) return fail("a session opened with no server at " + endpoint);
  auto code = session.status().code();
  if (code != fencelock::lockpb::UNAVAILABLE && code != fencelock::lockpb::TIMEOUT) {
    return fail("expected UNAVAILABLE or TIMEOUT, got " + session.status().to_string());
  }
  std::printf("no server at %s: %s\n", endpoint.c_str(), session.status().to_string().c_str());
  return 0;
}

int with_cluster(const std::string& endpoints, const std::string& name) {
  fl::ClientOptions options;
  options.endpoints = split(endpoints);
  auto client = fl::Client::connect(options);
  if (!client.ok()) return fail("connect: " + client.status().to_string());

  fencelock::Fence fence;
  uint64_t tokens[2] = {0, 0};
  for (uint64_t& token : tokens) {
    auto session =
        fl::Session::open(client.value(), {.ttl = 5s, .client_name = "fencelock-consumer"});
    if (!session.ok()) return fail("open session: " + session.status().to_string());
    fl::AcquireOptions acquire;
    acquire.wait = 10s;
    auto lock = session.value()->acquire(name, acquire);
    if (!lock.ok()) return fail("acquire " + name + ": " + lock.status().to_string());
    token = lock.value()->token();
    if (!fence.admit(name, token)) return fail("the fence refused a fresh token");
    auto released = lock.value()->release();
    if (!released.ok()) return fail("release: " + released.to_string());
    auto closed = session.value()->close();
    if (!closed.ok()) return fail("close session: " + closed.to_string());
    std::printf("held %s with token %llu\n", name.c_str(), static_cast<unsigned long long>(token));
  }
  if (tokens[1] <= tokens[0]) return fail("the second grant's token did not grow");
  if (fence.admit(name, tokens[0])) return fail("the fence admitted the first, stale token");
  std::printf("fenced the stale token %llu\n", static_cast<unsigned long long>(tokens[0]));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::printf("fencelock headers %s, library %s\n", FENCELOCK_VERSION,
              fencelock::library_version());
  if (std::strcmp(FENCELOCK_VERSION, fencelock::library_version()) != 0) {
    return fail("the headers and the library are of different versions");
  }
  if (argc == 3 && std::strcmp(argv[1], "--no-server") == 0) return no_server(argv[2]);
  if (argc == 3) return with_cluster(argv[1], argv[2]);
  if (argc != 1) return fail("usage: fencelock-consumer [--no-server ENDPOINT | ENDPOINTS LOCK]");
  fencelock::Fence fence;
  if (!fence.admit("x", 2) || fence.admit("x", 1)) return fail("the fence does not fence");
  return 0;
}
