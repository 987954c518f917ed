#include "storage/disk_log.h"

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/iterator.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <system_error>

#include "common/check.h"
#include "common/logging.h"
#include "storage/snapshot_file.h"
#include "storage/zero_filled_wal.h"

namespace fencelock::storage {
namespace {

// Keys: see the layout in disk_log.h.
constexpr std::string_view kVersionKey = "v";
constexpr std::string_view kIdentityKey = "i";
constexpr std::string_view kHardStateKey = "h";
constexpr std::string_view kSnapshotKey = "s";
constexpr std::string_view kBaseKey = "b";
constexpr char kEntryPrefix = 'e';
constexpr char kEntryPrefixEnd = 'f';  // every entry key sorts below this

// Ranges shorter than this are deleted key by key rather than with a range
// tombstone, which costs every later read that crosses it until compaction.
constexpr uint64_t kPointDeleteLimit = 64;

std::shared_ptr<spdlog::logger> logger() {
  static std::shared_ptr<spdlog::logger> instance = get_logger("storage");
  return instance;
}

void put_u64(std::string& out, uint64_t value) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(value >> shift));
}

void put_u32(std::string& out, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(value >> shift));
}

uint32_t get_u32(std::string_view in) {
  uint32_t value = 0;
  for (size_t i = 0; i < 4; ++i) value = (value << 8) | static_cast<unsigned char>(in[i]);
  return value;
}

uint64_t get_u64(std::string_view in) {
  uint64_t value = 0;
  for (size_t i = 0; i < 8; ++i) value = (value << 8) | static_cast<unsigned char>(in[i]);
  return value;
}

std::string entry_key(uint64_t index) {
  std::string key(1, kEntryPrefix);
  put_u64(key, index);
  return key;
}

std::string encode_pair(uint64_t a, uint64_t b) {
  std::string out;
  put_u64(out, a);
  put_u64(out, b);
  return out;
}

rocksdb::Slice slice(std::string_view s) {
  return rocksdb::Slice(s.data(), s.size());
}

std::string describe(const raftpb::HardState& hs) {
  return fmt::format("term {} vote {} commit {}", hs.term(), hs.vote(), hs.commit());
}

}  // namespace

DiskLog::DiskLog(DiskLogOptions options, std::unique_ptr<rocksdb::Env> env,
                 std::unique_ptr<rocksdb::DB> db)
    : options_(std::move(options)),
      db_dir_(options_.dir / "db"),
      snap_dir_(options_.dir / "snap"),
      env_(std::move(env)),
      db_(std::move(db)),
      cache_(options_.cache_max_entries, options_.cache_max_bytes) {}

DiskLog::~DiskLog() {
  if (db_) {
    rocksdb::Status status = db_->Close();
    if (!status.ok()) {
      logger()->error("closing RocksDB in {} failed: {}", db_dir_.string(), status.ToString());
    }
  }
}

Result<std::unique_ptr<DiskLog>> DiskLog::open(const DiskLogOptions& options) {
  const std::filesystem::path& dir = options.dir;
  std::filesystem::path db_dir = dir / "db";
  std::error_code ec;
  std::filesystem::create_directories(dir / "snap", ec);
  if (ec) {
    return Status(lockpb::INTERNAL,
                  fmt::format("cannot create data directory {}: {}", dir.string(), ec.message()));
  }
  bool fresh = !std::filesystem::exists(db_dir / "CURRENT", ec);
  if (ec) {
    return Status(lockpb::INTERNAL,
                  fmt::format("cannot read data directory {}: {}", dir.string(), ec.message()));
  }
  if (fresh) {
    // A crash while RocksDB created the store leaves files but no CURRENT,
    // and nothing was ever acknowledged: create it again. Table files or a
    // WAL without CURRENT are a damaged store, never silently replaced.
    std::filesystem::directory_iterator it(db_dir, ec);
    for (; !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      std::string extension = it->path().extension().string();
      if (extension == ".sst" || extension == ".log") {
        return Status(lockpb::INTERNAL,
                      fmt::format("data directory {} is damaged: {} holds {} but no CURRENT file",
                                  dir.string(), db_dir.string(), it->path().filename().string()));
      }
    }
  }

  // A crash can leave a torn last record in front of a WAL's zeros, which
  // RocksDB would take for corruption (storage/zero_filled_wal.h).
  if (!fresh) {
    std::filesystem::directory_iterator it(db_dir, ec);
    for (; !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      if (it->path().extension() != ".log" || !it->is_regular_file()) continue;
      auto tail = trim_torn_wal_tail(it->path());
      if (!tail.ok()) return tail.status();
    }
    if (ec) {
      return Status(lockpb::INTERNAL,
                    fmt::format("cannot list {}: {}", db_dir.string(), ec.message()));
    }
  }

  rocksdb::Options db_options;
  // Synced writes go to zero-filled WALs: one device write and a flush per
  // fdatasync instead of also an inode write (storage/zero_filled_wal.h).
  std::unique_ptr<rocksdb::Env> env;
  if (options.sync) {
    env = make_zero_filled_wal_env();
    db_options.env = env.get();
  }
  db_options.create_if_missing = fresh;
  db_options.paranoid_checks = true;
  // An acknowledged write must never be rolled back: tolerate only a torn
  // last record (a crash while writing it, before its fsync returned) and
  // refuse to open on corruption anywhere else, where the default
  // (kPointInTimeRecovery) would silently stop replay before it.
  db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  db_options.keep_log_file_num = 4;
  db_options.max_manifest_file_size = 64 * 1024 * 1024;
  rocksdb::DB* raw_db = nullptr;
  rocksdb::Status status = rocksdb::DB::Open(db_options, db_dir.string(), &raw_db);
  if (!status.ok()) {
    return Status(lockpb::INTERNAL, fmt::format("cannot open the log store in {}: {}",
                                                db_dir.string(), status.ToString()));
  }
  std::unique_ptr<DiskLog> log(
      new DiskLog(options, std::move(env), std::unique_ptr<rocksdb::DB>(raw_db)));
  Status recovered = log->recover();
  if (!recovered.ok()) return recovered;
  if (!options.sync) {
    logger()->warn(
        "fsync is DISABLED for {} (--unsafe-no-fsync): a machine crash loses acknowledged "
        "entries; never use this in production",
        dir.string());
  }
  return log;
}

Status DiskLog::initialize() {
  raftpb::HardState hard_state;
  raftpb::SnapshotMetadata metadata;
  *metadata.mutable_conf_state() = options_.initial_conf_state;
  if (const auto& initial = options_.initial_snapshot.metadata(); initial.index() > 0) {
    // The snapshot file first: the batch below is what makes the directory
    // initialized, and it names the file.
    metadata.set_index(initial.index());
    metadata.set_term(initial.term());
    Status status = write_snapshot_file(snapshot_path(initial.term(), initial.index()), initial.index(), initial.term(),
                                        options_.initial_snapshot.data(), options_.sync);
    if (!status.ok()) return status;
    hard_state.set_term(initial.term());
    hard_state.set_commit(initial.index());
    options_.initial_snapshot.Clear();  // its data is in the file now
  }
  rocksdb::WriteBatch batch;
  std::string version;
  put_u32(version, kFormatVersion);
  batch.Put(slice(kVersionKey), version);
  batch.Put(slice(kIdentityKey), encode_pair(options_.cluster_id, options_.node_id));
  batch.Put(slice(kHardStateKey), hard_state.SerializeAsString());
  batch.Put(slice(kSnapshotKey), metadata.SerializeAsString());
  batch.Put(slice(kBaseKey), encode_pair(metadata.index(), metadata.term()));
  rocksdb::WriteOptions write_options;
  write_options.sync = options_.sync;
  rocksdb::Status status = db_->Write(write_options, &batch);
  if (!status.ok()) {
    return Status(lockpb::INTERNAL, fmt::format("cannot initialize the data directory {}: {}",
                                                options_.dir.string(), status.ToString()));
  }
  logger()->info("initialized data directory {} for cluster {} node {}{}", options_.dir.string(),
                 options_.cluster_id, options_.node_id,
                 metadata.index() > 0 ? fmt::format(" from a snapshot at index {} term {}",
                                                    metadata.index(), metadata.term())
                                      : "");
  return Status::ok_status();
}

Status DiskLog::recover() {
  const std::string path = options_.dir.string();
  auto damaged = [&](const std::string& what) {
    return Status(lockpb::INTERNAL, fmt::format("data directory {} is damaged: {}", path, what));
  };
  rocksdb::ReadOptions read_options;
  read_options.verify_checksums = true;
  auto get = [&](std::string_view key, std::string& value) -> Result<bool> {
    rocksdb::Status status = db_->Get(read_options, slice(key), &value);
    if (status.IsNotFound()) return false;
    if (!status.ok()) return damaged(fmt::format("reading key \"{}\": {}", key, status.ToString()));
    return true;
  };

  std::string value;
  Result<bool> found = get(kIdentityKey, value);
  if (!found.ok()) return found.status();
  if (!found.value()) {
    // A crash between creating RocksDB and the first write leaves an empty
    // store; anything else without an identity is not ours.
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read_options));
    it->SeekToFirst();
    if (!it->status().ok()) return damaged(it->status().ToString());
    if (it->Valid()) return damaged("the store holds data but no identity key");
    Status status = initialize();
    if (!status.ok()) return status;
    found = get(kIdentityKey, value);
    if (!found.ok()) return found.status();
  }
  if (value.size() != 16) return damaged("identity record has the wrong size");
  uint64_t cluster_id = get_u64(value);
  uint64_t node_id = get_u64(std::string_view(value).substr(8));
  if (cluster_id != options_.cluster_id || node_id != options_.node_id) {
    return Status(lockpb::FAILED_PRECONDITION,
                  fmt::format("data directory {} belongs to cluster {} node {}, but this node was "
                              "started as cluster {} node {}",
                              path, cluster_id, node_id, options_.cluster_id, options_.node_id));
  }

  found = get(kVersionKey, value);
  if (!found.ok()) return found.status();
  if (!found.value() || value.size() != 4) return damaged("missing format version");
  uint32_t version = get_u32(value);
  if (version != kFormatVersion) {
    return Status(lockpb::FAILED_PRECONDITION,
                  fmt::format("data directory {} has format version {}, this build reads {}", path,
                              version, kFormatVersion));
  }

  found = get(kHardStateKey, value);
  if (!found.ok()) return found.status();
  if (!found.value() || !hard_state_.ParseFromString(value)) return damaged("bad hard state");

  found = get(kBaseKey, value);
  if (!found.ok()) return found.status();
  if (!found.value() || value.size() != 16) return damaged("bad log base record");
  base_index_ = get_u64(value);
  base_term_ = get_u64(std::string_view(value).substr(8));

  found = get(kSnapshotKey, value);
  if (!found.ok()) return found.status();
  raftpb::SnapshotMetadata metadata;
  if (!found.value() || !metadata.ParseFromString(value)) return damaged("bad snapshot metadata");
  snapshot_metadata_ = metadata;
  std::string snapshot_name;
  if (metadata.index() > 0) {
    snapshot_name = snapshot_file_name(metadata.term(), metadata.index());
    Result<std::string> data =
        read_snapshot_file(snap_dir_ / snapshot_name, metadata.index(), metadata.term());
    if (!data.ok()) return data.status();
    snapshot_data_ = std::make_shared<const std::string>(std::move(data).value());
  }

  // Scan the live range: every index in (base, last] must be present. This
  // reads the whole retained log once, which compaction keeps short.
  last_index_ = base_index_;
  std::string lower = entry_key(0);
  std::string upper(1, kEntryPrefixEnd);
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions scan_options = read_options;
  scan_options.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(scan_options));
  std::vector<raftpb::Entry> tail;
  uint64_t last_term = base_term_;
  for (it->Seek(lower); it->Valid(); it->Next()) {
    rocksdb::Slice key = it->key();
    if (key.size() != 9) return damaged("malformed entry key");
    uint64_t index = get_u64(std::string_view(key.data() + 1, 8));
    if (index <= base_index_) {
      return damaged(fmt::format("entry {} is below the compaction point {}", index, base_index_));
    }
    if (index != last_index_ + 1) {
      return damaged(fmt::format("entry {} is missing from the live range [{}, {}]",
                                 last_index_ + 1, base_index_ + 1, index));
    }
    raftpb::Entry entry;
    if (!entry.ParseFromArray(it->value().data(), static_cast<int>(it->value().size())) ||
        entry.index() != index) {
      return damaged(fmt::format("entry {} does not parse", index));
    }
    // Raft §5.3: a log's terms never decrease (from the compaction point's
    // on); the core's log matching relies on it.
    if (entry.term() < last_term) {
      return damaged(fmt::format("entry {} has term {}, below the term {} before it", index,
                                 entry.term(), last_term));
    }
    last_term = entry.term();
    last_index_ = index;
    tail.push_back(std::move(entry));
    if (tail.size() >= 2 * std::max<size_t>(options_.cache_max_entries, 1)) {
      cache_.append(tail.begin(), tail.end());
      tail.clear();
    }
  }
  if (!it->status().ok()) return damaged(it->status().ToString());
  cache_.append(tail.begin(), tail.end());

  if (hard_state_.commit() > last_index_) {
    return damaged(fmt::format("the hard state commits index {} but the log ends at {}",
                               hard_state_.commit(), last_index_));
  }
  remove_snapshot_files_except(snapshot_name);
  logger()->info(
      "opened {}: cluster {} node {}, log [{}, {}], snapshot at index {} term {}, hard state {}",
      path, cluster_id, node_id, base_index_ + 1, last_index_, metadata.index(), metadata.term(),
      describe(hard_state_));
  return Status::ok_status();
}

std::filesystem::path DiskLog::snapshot_path(uint64_t term, uint64_t index) const {
  return snap_dir_ / snapshot_file_name(term, index);
}

void DiskLog::remove_snapshot_files_except(const std::string& keep_name) const {
  std::error_code ec;
  bool removed = false;
  std::filesystem::directory_iterator it(snap_dir_, ec);
  for (; !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name == keep_name || !is_snapshot_file_name(name)) continue;
    // A snapshot being written off the loop (begin_snapshot), or its
    // temporary file.
    std::string_view base = name;
    if (base.ends_with(".tmp")) base.remove_suffix(4);
    if (reserved_.contains(std::string(base))) continue;
    std::error_code remove_ec;
    if (std::filesystem::remove(it->path(), remove_ec)) {
      removed = true;
    } else {
      logger()->warn("cannot remove old snapshot file {}: {}", it->path().string(),
                     remove_ec.message());
    }
  }
  if (ec) logger()->warn("cannot list {}: {}", snap_dir_.string(), ec.message());
  if (removed && options_.sync) {
    Status status = sync_directory(snap_dir_);
    if (!status.ok()) logger()->warn("{}", status.message());
  }
}

void DiskLog::write_or_die(rocksdb::WriteBatch& batch, const char* what, bool sync) {
  rocksdb::WriteOptions write_options;
  write_options.sync = sync;
  const auto start = std::chrono::steady_clock::now();
  rocksdb::Status status = db_->Write(write_options, &batch);
  if (sync) sync_writes_.observe(std::chrono::steady_clock::now() - start);
  FL_CHECK(status.ok(), "cannot persist {} to {}: {}", what, db_dir_.string(), status.ToString());
}

raft::InitialState DiskLog::initial_state() const {
  return raft::InitialState{hard_state_, snapshot_metadata_.conf_state()};
}

uint64_t DiskLog::first_index() const {
  return base_index_ + 1;
}

uint64_t DiskLog::last_index() const {
  return last_index_;
}

raftpb::Snapshot DiskLog::snapshot() const {
  raftpb::Snapshot snapshot;
  *snapshot.mutable_metadata() = snapshot_metadata_;
  snapshot.set_data(*snapshot_data_);
  return snapshot;
}

raftpb::Snapshot DiskLog::snapshot_to_send() const {
  raftpb::Snapshot snapshot;
  *snapshot.mutable_metadata() = snapshot_metadata_;
  return snapshot;
}

raftpb::Entry DiskLog::read_entry(uint64_t index) const {
  std::string value;
  rocksdb::Status status = db_->Get(rocksdb::ReadOptions(), entry_key(index), &value);
  FL_CHECK(status.ok(), "entry {} of the live range [{}, {}] is unreadable in {}: {}", index,
           base_index_ + 1, last_index_, db_dir_.string(), status.ToString());
  raftpb::Entry entry;
  FL_CHECK(entry.ParseFromString(value) && entry.index() == index,
           "entry {} in {} is damaged (does not parse)", index, db_dir_.string());
  return entry;
}

uint64_t DiskLog::term(uint64_t index) const {
  FL_CHECK(index >= base_index_ && index <= last_index_, "term({}) outside [{}, {}]", index,
           base_index_, last_index_);
  if (index == base_index_) return base_term_;
  if (cache_.contains(index)) return cache_.at(index).term();
  return read_entry(index).term();
}

bool DiskLog::append_from_db(uint64_t lo, uint64_t hi, uint64_t max_bytes, uint64_t& bytes,
                             std::vector<raftpb::Entry>& out) const {
  std::string upper = entry_key(hi);
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions read_options;
  read_options.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read_options));
  uint64_t index = lo;
  for (it->Seek(entry_key(lo)); index < hi; it->Next(), ++index) {
    FL_CHECK(it->Valid() && it->key() == entry_key(index),
             "entry {} of the live range [{}, {}] is missing in {} ({})", index, base_index_ + 1,
             last_index_, db_dir_.string(), it->status().ToString());
    raftpb::Entry entry;
    FL_CHECK(entry.ParseFromArray(it->value().data(), static_cast<int>(it->value().size())) &&
                 entry.index() == index,
             "entry {} in {} is damaged (does not parse)", index, db_dir_.string());
    bytes += entry.ByteSizeLong();
    if (!out.empty() && bytes > max_bytes) return false;
    out.push_back(std::move(entry));
  }
  return true;
}

std::vector<raftpb::Entry> DiskLog::entries(uint64_t lo, uint64_t hi, uint64_t max_bytes) const {
  FL_CHECK(lo >= first_index() && lo <= hi && hi <= last_index_ + 1,
           "entries({}, {}) outside [{}, {}]", lo, hi, first_index(), last_index_ + 1);
  std::vector<raftpb::Entry> out;
  uint64_t bytes = 0;
  uint64_t cache_first = cache_.empty() ? last_index_ + 1 : cache_.first_index();
  if (lo < cache_first) {
    if (!append_from_db(lo, std::min(hi, cache_first), max_bytes, bytes, out)) return out;
    lo = std::min(hi, cache_first);
  }
  for (uint64_t i = lo; i < hi; ++i) {
    const raftpb::Entry& entry = cache_.at(i);
    bytes += entry.ByteSizeLong();
    if (!out.empty() && bytes > max_bytes) break;
    out.push_back(entry);
  }
  return out;
}

Status DiskLog::save(const raftpb::HardState* hard_state, const std::vector<raftpb::Entry>& entries,
                     bool sync) {
  for (size_t i = 1; i < entries.size(); ++i) {
    if (entries[i].index() != entries[i - 1].index() + 1) {
      return Status(lockpb::INVALID_ARGUMENT,
                    fmt::format("save of non-contiguous entries: {} follows {}", entries[i].index(),
                                entries[i - 1].index()));
    }
  }
  auto first_new = entries.begin();
  while (first_new != entries.end() && first_new->index() <= base_index_) ++first_new;
  if (first_new != entries.end() && first_new->index() > last_index_ + 1) {
    return Status(lockpb::INVALID_ARGUMENT,
                  fmt::format("save at index {} leaves a gap after the last index {}",
                              first_new->index(), last_index_));
  }
  if (hard_state == nullptr && first_new == entries.end()) return Status::ok_status();

  rocksdb::WriteBatch batch;
  if (hard_state != nullptr) batch.Put(slice(kHardStateKey), hard_state->SerializeAsString());
  uint64_t new_last = last_index_;
  std::string value;
  for (auto it = first_new; it != entries.end(); ++it) {
    value.clear();
    it->AppendToString(&value);
    batch.Put(entry_key(it->index()), value);
    new_last = it->index();
  }
  // Raft §5.3: an appended entry that conflicts replaces it and all that
  // follow it. The new entries overwrite their own indices; delete the rest.
  if (first_new != entries.end() && new_last < last_index_) {
    if (last_index_ - new_last <= kPointDeleteLimit) {
      for (uint64_t i = new_last + 1; i <= last_index_; ++i) batch.Delete(entry_key(i));
    } else {
      batch.DeleteRange(entry_key(new_last + 1), entry_key(last_index_ + 1));
    }
  }
  write_or_die(batch, "hard state and entries", sync && options_.sync);

  if (hard_state != nullptr) hard_state_ = *hard_state;
  if (first_new != entries.end()) {
    cache_.append(first_new, entries.end());
    last_index_ = new_last;
  }
  return Status::ok_status();
}

void DiskLog::write_snapshot_or_die(uint64_t index, uint64_t term, std::string_view data) {
  Status status = write_snapshot_file(snapshot_path(term, index), index, term, data, options_.sync);
  FL_CHECK(status.ok(), "{}", status.message());
}

Status DiskLog::apply_snapshot(const raftpb::Snapshot& snapshot) {
  const raftpb::SnapshotMetadata& metadata = snapshot.metadata();
  if (metadata.index() <= snapshot_metadata_.index()) return Status::ok_status();
  write_snapshot_or_die(metadata.index(), metadata.term(), snapshot.data());

  rocksdb::WriteBatch batch;
  batch.Put(slice(kSnapshotKey), metadata.SerializeAsString());
  batch.Put(slice(kBaseKey), encode_pair(metadata.index(), metadata.term()));
  batch.DeleteRange(entry_key(0), std::string(1, kEntryPrefixEnd));
  write_or_die(batch, "snapshot metadata", options_.sync);

  snapshot_metadata_ = metadata;
  snapshot_data_ = std::make_shared<const std::string>(snapshot.data());
  base_index_ = metadata.index();
  base_term_ = metadata.term();
  last_index_ = metadata.index();
  cache_.clear();
  remove_snapshot_files_except(snapshot_file_name(metadata.term(), metadata.index()));
  logger()->info("installed snapshot at index {} term {} in {}", metadata.index(), metadata.term(),
                 options_.dir.string());
  return Status::ok_status();
}

Status DiskLog::create_snapshot(uint64_t index, const raftpb::ConfState& conf_state,
                                std::string_view data) {
  if (index <= snapshot_metadata_.index()) return Status::ok_status();
  Result<SnapshotTicket> ticket = begin_snapshot(index);
  if (!ticket.ok()) return ticket.status();
  Status status = write_snapshot(ticket.value(), data);
  if (!status.ok()) abandon_snapshot(ticket.value());
  FL_CHECK(status.ok(), "{}", status.message());
  status = finish_snapshot(ticket.value(), conf_state, std::make_shared<const std::string>(data));
  if (status.ok()) remove_snapshot_files_except(snapshot_file_name(ticket.value().term, index));
  return status;
}

Result<SnapshotTicket> DiskLog::begin_snapshot(uint64_t index) {
  if (index <= snapshot_metadata_.index()) {
    return Status(lockpb::INVALID_ARGUMENT,
                  fmt::format("snapshot at {} is not newer than the latest, at {}", index,
                              snapshot_metadata_.index()));
  }
  if (index < base_index_ || index > last_index_) {
    return Status(lockpb::INVALID_ARGUMENT, fmt::format("snapshot at {} outside the log [{}, {}]",
                                                        index, base_index_, last_index_));
  }
  SnapshotTicket ticket{index, term(index)};
  reserved_.insert(snapshot_file_name(ticket.term, ticket.index));
  return ticket;
}

Status DiskLog::write_snapshot(const SnapshotTicket& ticket, std::string_view data) const {
  return write_snapshot_file(snapshot_path(ticket.term, ticket.index), ticket.index, ticket.term,
                             data, options_.sync);
}

Status DiskLog::finish_snapshot(const SnapshotTicket& ticket, const raftpb::ConfState& conf_state,
                                std::shared_ptr<const std::string> data) {
  const std::string name = snapshot_file_name(ticket.term, ticket.index);
  if (!reserved_.contains(name)) {
    return Status(lockpb::INVALID_ARGUMENT,
                  fmt::format("snapshot at {} was not begun", ticket.index));
  }
  if (ticket.index <= snapshot_metadata_.index()) {
    return Status(lockpb::INVALID_ARGUMENT,
                  fmt::format("snapshot at {} is older than the one installed meanwhile, at {}",
                              ticket.index, snapshot_metadata_.index()));
  }
  raftpb::SnapshotMetadata metadata;
  metadata.set_index(ticket.index);
  metadata.set_term(ticket.term);
  *metadata.mutable_conf_state() = conf_state;
  rocksdb::WriteBatch batch;
  batch.Put(slice(kSnapshotKey), metadata.SerializeAsString());
  write_or_die(batch, "snapshot metadata", options_.sync);

  snapshot_metadata_ = std::move(metadata);
  snapshot_data_ = std::move(data);
  reserved_.erase(name);
  return Status::ok_status();
}

std::vector<std::string> DiskLog::obsolete_snapshot_files() const {
  std::vector<std::string> files;
  const std::string current =
      snapshot_file_name(snapshot_metadata_.term(), snapshot_metadata_.index());
  std::error_code ec;
  std::filesystem::directory_iterator it(snap_dir_, ec);
  for (; !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name == current || !name.ends_with(".snap") || reserved_.contains(name)) continue;
    files.push_back(it->path().string());
  }
  return files;
}

void DiskLog::abandon_snapshot(const SnapshotTicket& ticket) {
  const std::string name = snapshot_file_name(ticket.term, ticket.index);
  if (reserved_.erase(name) == 0) return;
  if (name == snapshot_file_name(snapshot_metadata_.term(), snapshot_metadata_.index())) return;
  std::error_code ec;
  std::filesystem::remove(snap_dir_ / name, ec);
  std::filesystem::remove(snap_dir_ / (name + ".tmp"), ec);
}

Status DiskLog::compact(uint64_t index) {
  if (index <= base_index_) return Status::ok_status();
  if (index > last_index_) {
    return Status(lockpb::INVALID_ARGUMENT,
                  fmt::format("compact({}) beyond the last index {}", index, last_index_));
  }
  uint64_t index_term = term(index);
  rocksdb::WriteBatch batch;
  batch.Put(slice(kBaseKey), encode_pair(index, index_term));
  batch.DeleteRange(entry_key(0), entry_key(index + 1));
  // Not synced: a compaction a crash loses leaves entries nobody needs, and
  // the next synced write makes it durable anyway. The snapshot it
  // compacts to was synced before (finish_snapshot, apply_snapshot).
  write_or_die(batch, "log compaction", /*sync=*/false);
  base_index_ = index;
  base_term_ = index_term;
  cache_.drop_through(index);
  return Status::ok_status();
}

Status DiskLog::compact_to_snapshot() {
  uint64_t snapshot_index = snapshot_metadata_.index();
  if (snapshot_index <= options_.keep_entries_after_snapshot) return Status::ok_status();
  return compact(snapshot_index - options_.keep_entries_after_snapshot);
}

}  // namespace fencelock::storage
