// Writes the seed corpora of fuzz/corpus/ (committed; run again after a
// change of an input format): valid inputs, so that each fuzzer starts deep.
//
//   build/fuzz/fuzz_make_corpus fuzz/corpus

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "net/frame.h"
#include "proto/client.pb.h"
#include "proto/raft.pb.h"
#include "statemachine/lock_state_machine.h"
#include "storage/backup_file.h"

namespace fs = std::filesystem;
using namespace fencelock;

namespace {

fs::path g_root;

void write(const std::string& target, const std::string& name, const std::string& bytes) {
  fs::create_directories(g_root / target);
  std::ofstream(g_root / target / name, std::ios::binary | std::ios::trunc) << bytes;
}

std::vector<clientpb::Request> requests() {
  std::vector<clientpb::Request> out;
  clientpb::Request r;
  r.set_id(1);
  r.mutable_open_session()->set_ttl_ms(10'000);
  r.mutable_open_session()->set_client_name("seed");
  out.push_back(r);
  r.Clear();
  r.set_id(2);
  auto* a = r.mutable_acquire();
  a->mutable_key()->set_session_id(1);
  a->mutable_key()->set_sequence(1);
  a->set_lock("jobs/a");
  a->set_mode(lockpb::SHARED);
  a->set_wait_ms(1000);
  a->set_value("v");
  a->set_max_holders(2);
  a->set_lock_delay_ms(100);
  a->set_now_ms(5);
  out.push_back(r);
  r.Clear();
  r.set_id(3);
  r.mutable_release()->mutable_key()->set_session_id(1);
  r.mutable_release()->mutable_key()->set_sequence(2);
  r.mutable_release()->set_lock("jobs/a");
  r.mutable_release()->set_token(1);
  out.push_back(r);
  r.Clear();
  r.set_id(4);
  r.mutable_cancel_wait()->mutable_key()->set_session_id(1);
  r.mutable_cancel_wait()->mutable_key()->set_sequence(3);
  r.mutable_cancel_wait()->set_lock("jobs/a");
  r.mutable_cancel_wait()->set_wait_id(9);
  out.push_back(r);
  r.Clear();
  r.set_id(5);
  r.mutable_force_release()->set_lock("jobs/a");
  r.mutable_force_release()->set_now_ms(7);
  out.push_back(r);
  r.Clear();
  r.set_id(6);
  r.mutable_close_session()->mutable_key()->set_session_id(1);
  r.mutable_close_session()->mutable_key()->set_sequence(4);
  out.push_back(r);
  r.Clear();
  r.set_id(7);
  r.mutable_keep_alive()->set_session_id(1);
  out.push_back(r);
  r.Clear();
  r.set_id(8);
  r.mutable_list_locks()->set_prefix("jobs/");
  r.mutable_list_locks()->set_limit(10);
  out.push_back(r);
  r.Clear();
  r.set_id(9);
  r.mutable_member_add()->set_id(4);
  r.mutable_member_add()->set_peer_address("127.0.0.1:7004");
  out.push_back(r);
  r.Clear();
  r.set_id(10);
  r.mutable_backup_chunk()->set_backup_id(1);
  r.mutable_backup_chunk()->set_max_bytes(4096);
  out.push_back(r);
  return out;
}

// Random bytes: the state machine target reads any bytes as commands.
std::string random_bytes(std::mt19937_64& rng, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out.push_back(static_cast<char>(rng()));
  return out;
}

// A state with sessions, holders, waiters and a lock-delay.
std::string busy_snapshot() {
  sm::LockStateMachine machine;
  uint64_t index = 0;
  std::vector<uint64_t> sessions;
  for (int i = 0; i < 3; ++i) {
    lockpb::Command c;
    c.mutable_open_session()->set_client_name("c" + std::to_string(i));
    sessions.push_back(machine.apply(++index, c).session_id);
  }
  auto acquire = [&](uint64_t session, uint64_t sequence, const std::string& lock,
                     lockpb::LockMode mode, uint64_t wait_ms) {
    lockpb::Command c;
    c.mutable_acquire()->mutable_key()->set_session_id(session);
    c.mutable_acquire()->mutable_key()->set_sequence(sequence);
    c.mutable_acquire()->set_lock(lock);
    c.mutable_acquire()->set_mode(mode);
    c.mutable_acquire()->set_wait_ms(wait_ms);
    c.mutable_acquire()->set_value("value");
    c.mutable_acquire()->set_lock_delay_ms(1000);
    machine.apply(++index, c);
  };
  acquire(sessions[0], 1, "a", lockpb::EXCLUSIVE, 0);
  acquire(sessions[1], 1, "a", lockpb::EXCLUSIVE, 5000);
  acquire(sessions[1], 2, "b", lockpb::SHARED, 0);
  acquire(sessions[2], 1, "b", lockpb::SHARED, 0);
  lockpb::Command expire;
  expire.mutable_expire_session()->set_session_id(sessions[2]);
  machine.apply(++index, expire);
  return machine.snapshot();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <fuzz/corpus>\n", argv[0]);
    return 2;
  }
  g_root = argv[1];
  std::mt19937_64 rng(20261203);

  // client_request: one body per kind; frame: those bodies framed, split in
  // pieces of [control, bytes] (max_frame_bytes choice 5: the default).
  std::vector<clientpb::Request> all = requests();
  std::string stream;
  for (size_t i = 0; i < all.size(); ++i) {
    write("client_request", "request-" + std::to_string(i), all[i].SerializeAsString());
    net::append_frame(all[i], stream);
  }
  for (int variant = 0; variant < 4; ++variant) {
    std::string input(1, static_cast<char>(variant == 3 ? 3 : 5));
    for (size_t at = 0; at < stream.size();) {
      size_t piece = std::min<size_t>(stream.size() - at, 1 + rng() % 63);
      uint8_t control =
          static_cast<uint8_t>(piece | (variant & 1 ? 0x40 : 0) | (variant & 2 ? 0x80 : 0));
      input.push_back(static_cast<char>(control));
      input += stream.substr(at, piece);
      at += piece;
    }
    write("frame", "frames-" + std::to_string(variant), input);
  }

  // state_machine: command streams (any bytes decode to commands).
  for (int i = 0; i < 8; ++i) {
    write("state_machine", "random-" + std::to_string(i), random_bytes(rng, 64 + 64 * i));
  }

  // snapshot: real snapshots, whole (option 0) or without their checksum
  // for the target to append (option 1); over an empty or a busy machine.
  sm::LockStateMachine empty;
  for (const auto& [name, bytes] :
       {std::pair{"empty", empty.snapshot()}, std::pair{"busy", busy_snapshot()}}) {
    write("snapshot", std::string(name) + "-whole", std::string(1, '\0') + bytes);
    write("snapshot", std::string(name) + "-unsealed",
          std::string(1, '\3') + bytes.substr(0, bytes.size() - 8));
  }

  // log_recovery: the template directory untouched, a few writes, and
  // backup files (mode 0x80; 0xC0 also fixes their checksums).
  write("log_recovery", "untouched", std::string(1, '\0'));
  for (int i = 0; i < 4; ++i) {
    write("log_recovery", "writes-" + std::to_string(i),
          std::string(1, '\0') + random_bytes(rng, 24 + 24 * i));
  }
  fs::path backup = fs::temp_directory_path() / "fencelock-make-corpus.backup";
  storage::BackupHeader header;
  header.index = 5;
  header.term = 2;
  header.cluster_id = "seed";
  raftpb::ConfState conf;
  conf.add_voters(1);
  header.conf_state = conf.SerializeAsString();
  if (!storage::write_backup_file(backup, header, busy_snapshot()).ok()) return 1;
  std::ifstream in(backup, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  fs::remove(backup);
  write("log_recovery", "backup", std::string(1, '\x80') + bytes);
  write("log_recovery", "backup-fixed", std::string(1, '\xC0') + bytes);
  return 0;
}
