// storage_crash_helper DIR SEED ACK_FD [FILE_SIZE_LIMIT]: the child of the
// crash test. Opens
// the DiskLog in DIR (cluster 1, node 1, sync on), starts a new term,
// overwrites a short uncommitted suffix, then appends batches forever. After
// each save() returns it writes an acknowledgement of three big-endian
// uint64 (first index of the batch, last index, term) to ACK_FD; before
// overwriting entries it writes (first overwritten index, 0, term). Every
// ~40 batches it takes a snapshot at the commit index and compacts. The
// parent SIGKILLs it at a random moment. Exits 2 if the log cannot be opened.
// With FILE_SIZE_LIMIT, after opening the log it ignores SIGXFSZ and sets
// RLIMIT_FSIZE to that many bytes, so writes soon fail with EFBIG like on a
// full disk, and the log must abort (FL_CHECK) rather than go on.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "common/logging.h"
#include "storage/disk_log.h"

namespace {

using fencelock::storage::DiskLog;
using fencelock::storage::DiskLogOptions;
namespace raftpb = fencelock::raftpb;

std::string entry_data(uint64_t index, uint64_t term) {
  std::string data = std::to_string(index) + ":" + std::to_string(term) + ":";
  data.resize(100, 'x');
  return data;
}

void put_u64(unsigned char* out, uint64_t value) {
  for (int i = 7; i >= 0; --i, value >>= 8) out[i] = static_cast<unsigned char>(value & 0xff);
}

void acknowledge(int fd, uint64_t lo, uint64_t hi, uint64_t term) {
  unsigned char message[24];
  put_u64(message, lo);
  put_u64(message + 8, hi);
  put_u64(message + 16, term);
  size_t done = 0;
  while (done < sizeof(message)) {
    ssize_t n = ::write(fd, message + done, sizeof(message) - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) std::_Exit(3);  // the parent is gone
    done += static_cast<size_t>(n);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4 && argc != 5) {
    std::fprintf(stderr, "usage: %s DIR SEED ACK_FD [FILE_SIZE_LIMIT]\n", argv[0]);
    return 1;
  }
  fencelock::set_log_level("warn");
  DiskLogOptions options;
  options.dir = argv[1];
  options.cluster_id = 1;
  options.node_id = 1;
  options.initial_conf_state.add_voters(1);
  options.keep_entries_after_snapshot = 20;
  std::mt19937_64 rng(std::strtoull(argv[2], nullptr, 10));
  int ack_fd = std::atoi(argv[3]);
  auto pick = [&](uint64_t lo, uint64_t hi) {
    return std::uniform_int_distribution<uint64_t>(lo, hi)(rng);
  };

  auto opened = DiskLog::open(options);
  if (!opened.ok()) {
    std::fprintf(stderr, "%s\n", opened.status().to_string().c_str());
    return 2;
  }
  std::unique_ptr<DiskLog> log = std::move(opened).value();
  if (argc == 5) {
    ::signal(SIGXFSZ, SIG_IGN);
    rlim_t limit = std::strtoull(argv[4], nullptr, 10);
    struct rlimit rl = {limit, limit};
    if (::setrlimit(RLIMIT_FSIZE, &rl) != 0) return 5;
  }
  raftpb::HardState hard_state = log->initial_state().hard_state;
  hard_state.set_term(hard_state.term() + 1);
  hard_state.set_vote(1);
  uint64_t last = log->last_index();
  // Overwrite up to 3 uncommitted entries with the new term (Raft §5.3).
  uint64_t overwritable =
      std::min<uint64_t>(3, last - std::max(hard_state.commit(), log->first_index() - 1));
  uint64_t next = last + 1 - pick(0, overwritable);
  // Announce the overwrite before it happens (hi = 0): once it is durable,
  // the old entries from `next` on are legitimately gone even if the kill
  // comes before the acknowledgement.
  if (next <= last) acknowledge(ack_fd, next, 0, hard_state.term());

  for (uint64_t batch_number = 1;; ++batch_number) {
    uint64_t count = pick(1, 16);
    std::vector<raftpb::Entry> entries;
    for (uint64_t i = next; i < next + count; ++i) {
      raftpb::Entry entry;
      entry.set_index(i);
      entry.set_term(hard_state.term());
      entry.set_data(entry_data(i, hard_state.term()));
      entries.push_back(std::move(entry));
    }
    // Entries acknowledged by the previous batch are now "committed".
    hard_state.set_commit(next - 1);
    fencelock::Status status = log->save(&hard_state, entries);
    if (!status.ok()) {
      std::fprintf(stderr, "save: %s\n", status.to_string().c_str());
      return 4;
    }
    acknowledge(ack_fd, next, next + count - 1, hard_state.term());
    next += count;
    if (batch_number % 40 == 0) {
      uint64_t index = hard_state.commit();
      status =
          log->create_snapshot(index, options.initial_conf_state, "snap:" + std::to_string(index));
      if (status.ok()) status = log->compact_to_snapshot();
      if (!status.ok()) {
        std::fprintf(stderr, "snapshot: %s\n", status.to_string().c_str());
        return 4;
      }
    }
  }
}
