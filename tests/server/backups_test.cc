// server::Backups: a snapshot held for `fencelock snapshot save` comes back
// whole in bounded chunks, and one that is not held is NOT_FOUND.

#include "server/backups.h"

#include <catch2/catch.hpp>
#include <map>
#include <string>

#include "common/logging.h"
#include "storage/backup_file.h"

namespace fencelock::server {
namespace {

using namespace std::chrono_literals;

// An Env that only records answers.
class AnswerEnv final : public Env {
 public:
  SteadyTime now() const override { return SteadyTime(); }
  void post(std::function<void()>) override {}
  void write(raft::WriteMode, size_t, std::chrono::microseconds, std::function<void()>,
             std::function<void()>) override {}
  void send(const raftpb::Message&) override {}
  std::string peer_client_address(uint64_t) const override { return ""; }
  bool peer_connected(uint64_t) const override { return false; }
  void set_peers(const std::map<uint64_t, std::string>&) override {}
  void send_snapshot(const raftpb::Message&, std::shared_ptr<const std::string>) override {}
  void run_in_background(std::function<void()>, std::function<void()>) override {}
  void respond(ConnectionId, const clientpb::Response& response) override {
    answers[response.id()] = response;
  }
  void stop() override {}

  std::map<uint64_t, clientpb::Response> answers;
};

struct Fixture {
  explicit Fixture(uint32_t max_frame_bytes = 4u << 20)
      : responder(env, 1), backups(1, 42, max_frame_bytes, responder, get_logger("node")) {}

  // Begins a backup of `data`; returns its info.
  clientpb::BackupInfo begin(std::string data, SteadyTime now = SteadyTime()) {
    Backups::Source source{77, 3, "prod", {}};
    source.conf_state.add_voters(1);
    source.conf_state.add_voters(2);
    backups.begin(Caller{1, ++request_id}, now, source, std::move(data));
    return env.answers.at(request_id).backup_info();
  }
  clientpb::Response chunk(uint64_t id, uint64_t offset, uint32_t max_bytes = 0,
                           SteadyTime now = SteadyTime()) {
    clientpb::Request request;
    request.mutable_backup_chunk()->set_backup_id(id);
    request.mutable_backup_chunk()->set_offset(offset);
    request.mutable_backup_chunk()->set_max_bytes(max_bytes);
    REQUIRE(Backups::handles(request));
    backups.serve(Caller{1, ++request_id}, request, now);
    return env.answers.at(request_id);
  }
  clientpb::Response end(uint64_t id) {
    clientpb::Request request;
    request.mutable_backup_end()->set_backup_id(id);
    backups.serve(Caller{1, ++request_id}, request, SteadyTime());
    return env.answers.at(request_id);
  }
  // Fetches the whole backup; checks every chunk's size.
  std::string fetch(const clientpb::BackupInfo& info, size_t max_chunk) {
    std::string out;
    while (out.size() < info.size()) {
      clientpb::Response response = chunk(info.backup_id(), out.size());
      REQUIRE(response.code() == lockpb::OK);
      REQUIRE(response.backup_data().offset() == out.size());
      REQUIRE_FALSE(response.backup_data().data().empty());
      CHECK(response.backup_data().data().size() <= max_chunk);
      out += response.backup_data().data();
    }
    return out;
  }

  AnswerEnv env;
  Responder responder;
  Backups backups;
  uint64_t request_id = 0;
};

std::string big_data(size_t bytes) {
  std::string data(bytes, '\0');
  for (size_t i = 0; i < bytes; ++i) data[i] = static_cast<char>((i * 2654435761u) >> 13);
  return data;
}

}  // namespace

TEST_CASE("a backup larger than a frame comes back whole in chunks of at most 1 MiB",
          "[server][backup]") {
  Fixture f;
  const std::string data = big_data(3'500'000);
  clientpb::BackupInfo info = f.begin(data);
  CHECK(info.backup_id() != 0);
  CHECK(info.node_id() == 1);
  CHECK(info.index() == 77);
  CHECK(info.term() == 3);
  CHECK(info.size() == data.size());
  CHECK(info.cluster_id() == "prod");
  raftpb::ConfState conf_state;
  REQUIRE(conf_state.ParseFromString(info.conf_state()));
  CHECK(conf_state.voters_size() == 2);
  CHECK(info.sha256() == storage::to_bytes(storage::sha256(data)));
  CHECK(f.fetch(info, Backups::kMaxChunkBytes) == data);
  // At the end: empty data; past it: an error.
  CHECK(f.chunk(info.backup_id(), data.size()).backup_data().data().empty());
  CHECK(f.chunk(info.backup_id(), data.size() + 1).code() == lockpb::INVALID_ARGUMENT);
  // The client may ask for less.
  CHECK(f.chunk(info.backup_id(), 10, 100).backup_data().data() == data.substr(10, 100));
}

TEST_CASE("a chunk is at most half the node's maximum frame", "[server][backup]") {
  Fixture f(1u << 20);
  const std::string data = big_data(1'300'000);
  clientpb::BackupInfo info = f.begin(data);
  CHECK(f.fetch(info, 512 * 1024) == data);
}

TEST_CASE("a backup not held is NOT_FOUND: unknown, ended, idle too long, or pushed out",
          "[server][backup]") {
  Fixture f;
  clientpb::BackupInfo info = f.begin("abc");
  auto unknown = f.chunk(info.backup_id() + 1, 0);
  CHECK(unknown.code() == lockpb::NOT_FOUND);
  CHECK_THAT(unknown.message(),
             Catch::Contains("is not held by node 1") && Catch::Contains("start the backup again"));

  // BackupEnd frees it.
  CHECK(f.end(info.backup_id()).code() == lockpb::OK);
  CHECK(f.chunk(info.backup_id(), 0).code() == lockpb::NOT_FOUND);
  CHECK(f.end(info.backup_id()).code() == lockpb::NOT_FOUND);

  // Unused for the idle timeout: dropped; a chunk request keeps it.
  const SteadyTime t0;
  clientpb::BackupInfo kept = f.begin("kept", t0);
  clientpb::BackupInfo idle = f.begin("idle", t0);
  REQUIRE(f.chunk(kept.backup_id(), 0, 0, t0 + 50s).code() == lockpb::OK);
  f.backups.expire(t0 + Backups::kIdleTimeout);
  CHECK(f.chunk(idle.backup_id(), 0).code() == lockpb::NOT_FOUND);
  CHECK(f.chunk(kept.backup_id(), 0).code() == lockpb::OK);
  f.backups.expire(t0 + 50s + Backups::kIdleTimeout);
  CHECK(f.backups.held() == 0);

  // At most kMaxHeld: a new one pushes out the least recently used.
  std::vector<clientpb::BackupInfo> infos;
  for (size_t i = 0; i <= Backups::kMaxHeld; ++i) {
    infos.push_back(f.begin("b" + std::to_string(i), t0 + std::chrono::seconds(i)));
  }
  CHECK(f.backups.held() == Backups::kMaxHeld);
  CHECK(f.chunk(infos[0].backup_id(), 0).code() == lockpb::NOT_FOUND);
  for (size_t i = 1; i <= Backups::kMaxHeld; ++i) {
    CHECK(f.chunk(infos[i].backup_id(), 0).backup_data().data() == "b" + std::to_string(i));
  }
}

}  // namespace fencelock::server
