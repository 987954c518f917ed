// The ZooKeeper driver: the standard lock recipe, as Curator's
// InterProcessMutex takes it, through the C client's asynchronous API
// (libzookeeper_mt).
//
//   acquire: create /locks/<name>/_c_<id>-lock-<seq> EPHEMERAL_SEQUENTIAL
//            (creating /locks/<name> if missing); get children; if ours has
//            the lowest sequence it is held; else getData with a watch on the
//            child just below ours, and on its deletion (or NoNode) get the
//            children again.
//   release: delete our child (retried on connection loss, like Curator's
//            guaranteed delete).
//
// Curator's "protected" mode is kept: the child name carries a per-client
// id, so after a connection loss during create the client finds its child
// among the children instead of creating a second one.
//
// A ZooKeeper session is a zhandle, i.e. one TCP connection and two client
// threads; as Curator shares one session among many locks, the lock
// workloads put `sessions_per_connection` clients on one zhandle. The
// keepalive workload holds one zhandle per idle session.
//
// Thread-safety: as Driver. A client's Slot is touched by the one operation
// it has in flight (which runs on its zhandle's completion thread, or on the
// caller's thread when it starts).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zookeeper/zookeeper.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>

#include "cli/bench/driver.h"

namespace fencelock::bench {
namespace {

using namespace std::chrono_literals;

std::string zerror_text(const char* step, int rc) { return std::string(step) + ": " + zerror(rc); }

bool connection_error(int rc) {
  return rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT || rc == ZSESSIONMOVED;
}

class ZooKeeperDriver;

struct Handle {
  zhandle_t* zh = nullptr;
  std::atomic<bool> connected{false};
  std::atomic<bool> expired{false};
};

struct Slot {
  ZooKeeperDriver* driver = nullptr;
  int index = 0;
  Handle* handle = nullptr;
  std::string parent;  // /locks/<name>
  std::string prefix;  // _c_<id>-lock-
  std::string node;    // our child's name, empty when we have none
  uint64_t generation = 0;  // bumped per wait: stale watches are ignored
  Completion done;
  bool releasing = false;
};

struct WatchContext {
  Slot* slot;
  uint64_t generation;
};

class ZooKeeperDriver : public Driver {
 public:
  explicit ZooKeeperDriver(DriverOptions options) : options_(std::move(options)) {
    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    // Connection losses during failover are expected; keep them off the terminal.
    log_ = std::fopen("/dev/null", "w");
    if (log_) zoo_set_log_stream(log_);
    std::random_device random;
    nonce_ = std::to_string(random() % 1000000);
  }
  ~ZooKeeperDriver() override {
    close_sessions();
    if (log_) std::fclose(log_);
  }

  std::string name() const override { return "zookeeper"; }

  Outcome open_sessions(int count, std::chrono::milliseconds timeout) override {
    int per = options_.keepalive_only ? 1 : std::max(1, options_.sessions_per_connection);
    int handles = (count + per - 1) / per;
    rlimit files{};
    if (getrlimit(RLIMIT_NOFILE, &files) == 0 && static_cast<uint64_t>(handles) * 3 + 256 > files.rlim_cur) {
      return {std::to_string(handles) + " ZooKeeper sessions need " + std::to_string(handles * 3 + 256) +
              " file descriptors (a socket and a pipe each); the limit is " + std::to_string(files.rlim_cur)};
    }
    std::string hosts;
    for (const auto& endpoint : options_.endpoints) hosts += (hosts.empty() ? "" : ",") + endpoint;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (int h = 0; h < handles; ++h) {
      auto handle = std::make_unique<Handle>();
      handle->zh = zookeeper_init(hosts.c_str(), &ZooKeeperDriver::session_watcher,
                                  static_cast<int>(options_.session_ttl.count()), nullptr, handle.get(), 0);
      if (!handle->zh) return {"zookeeper_init failed: " + std::string(std::strerror(errno))};
      handles_.push_back(std::move(handle));
      // Connect in waves: thousands of handshakes at once only time out.
      if (h % 1000 == 999) wait_connected(h + 1, deadline);
    }
    if (!wait_connected(handles, deadline)) {
      int connected = 0;
      for (auto& handle : handles_) connected += handle->connected.load() ? 1 : 0;
      return {"connected " + std::to_string(connected) + " of " + std::to_string(handles) +
              " ZooKeeper sessions in time"};
    }
    slots_ = std::vector<Slot>(static_cast<size_t>(count));
    for (int i = 0; i < count; ++i) {
      Slot& slot = slots_[static_cast<size_t>(i)];
      slot.driver = this;
      slot.index = i;
      slot.handle = handles_[static_cast<size_t>(i / per)].get();
      slot.prefix = "_c_" + nonce_ + "-" + std::to_string(i) + "-lock-";
    }
    return {};
  }

  void acquire(int session, const std::string& lock, Completion done) override {
    Slot& slot = slots_[static_cast<size_t>(session)];
    slot.parent = "/locks/" + lock;
    slot.done = std::move(done);
    slot.releasing = false;
    if (slot.node.empty()) {
      create(&slot);
    } else {
      // Left over from an acquire that failed part-way: wait on it.
      get_children(&slot);
    }
  }

  void release(int session, Completion done) override {
    Slot& slot = slots_[static_cast<size_t>(session)];
    slot.done = std::move(done);
    slot.releasing = true;
    remove(&slot);
  }

  void close_sessions() override {
    {
      std::lock_guard lock(guard_->mutex);
      guard_->closing = true;
    }
    // zookeeper_close waits for the server's answer (the close is a
    // transaction, which also deletes the session's ephemeral nodes): close
    // thousands from several threads.
    std::atomic<size_t> next{0};
    std::vector<std::thread> closers;
    for (int t = 0; t < std::min<int>(32, static_cast<int>(handles_.size())); ++t) {
      closers.emplace_back([&] {
        for (size_t i; (i = next.fetch_add(1)) < handles_.size();) {
          if (handles_[i]->zh) zookeeper_close(handles_[i]->zh);
          handles_[i]->zh = nullptr;
        }
      });
    }
    for (auto& closer : closers) closer.join();
    std::lock_guard lock(guard_->mutex);
    guard_->closed = true;
    handles_.clear();
    slots_.clear();
  }

  int lost_sessions() override {
    int lost = 0;
    for (auto& handle : handles_) lost += handle->expired.load() ? 1 : 0;
    return lost;
  }

  int leader_index() override {
    for (size_t i = 0; i < options_.endpoints.size(); ++i) {
      if (four_letter_word(options_.endpoints[i], "srvr").find("Mode: leader") != std::string::npos) {
        return static_cast<int>(i);
      }
    }
    return -1;
  }

 private:
  bool wait_connected(int handles, std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    return cv_.wait_until(lock, deadline, [&] {
      for (int h = 0; h < handles; ++h) {
        if (!handles_[static_cast<size_t>(h)]->connected.load()) return false;
      }
      return true;
    });
  }

  static void session_watcher(zhandle_t*, int type, int state, const char*, void* context) {
    if (type != ZOO_SESSION_EVENT) return;
    auto* handle = static_cast<Handle*>(context);
    if (state == ZOO_CONNECTED_STATE) handle->connected = true;
    if (state == ZOO_EXPIRED_SESSION_STATE) handle->expired = true;
    std::lock_guard lock(mutex_);
    cv_.notify_all();
  }

  // Step 1: create our ephemeral sequential child.
  void create(Slot* slot) {
    std::string path = slot->parent + "/" + slot->prefix;
    int rc = zoo_acreate(slot->handle->zh, path.c_str(), "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL_SEQUENTIAL,
                         &ZooKeeperDriver::created, slot);
    if (rc != ZOK) fail(slot, zerror_text("create", rc));
  }

  static void created(int rc, const char* value, const void* data) {
    auto* slot = static_cast<Slot*>(const_cast<void*>(data));
    auto* self = slot->driver;
    if (rc == ZOK) {
      std::string path = value;
      slot->node = path.substr(path.rfind('/') + 1);
      self->get_children(slot);
    } else if (rc == ZNONODE) {
      self->create_parents(slot);
    } else if (connection_error(rc)) {
      // Protected mode: the child may exist; get_children finds it by prefix.
      self->recover(slot, zerror_text("create", rc));
    } else {
      self->fail(slot, zerror_text("create", rc));
    }
  }

  // Curator's creatingParentContainersIfNeeded: /locks, then /locks/<name>.
  void create_parents(Slot* slot) {
    int rc = zoo_acreate(slot->handle->zh, "/locks", "", 0, &ZOO_OPEN_ACL_UNSAFE, 0,
                         [](int, const char*, const void* data) {
                           auto* slot = static_cast<Slot*>(const_cast<void*>(data));
                           int rc = zoo_acreate(slot->handle->zh, slot->parent.c_str(), "", 0,
                                                &ZOO_OPEN_ACL_UNSAFE, 0,
                                                [](int rc, const char*, const void* data) {
                                                  auto* slot = static_cast<Slot*>(const_cast<void*>(data));
                                                  if (rc == ZOK || rc == ZNODEEXISTS) {
                                                    slot->driver->create(slot);
                                                  } else {
                                                    slot->driver->fail(slot, zerror_text("create parent", rc));
                                                  }
                                                },
                                                slot);
                           if (rc != ZOK) slot->driver->fail(slot, zerror_text("create parent", rc));
                         },
                         slot);
    if (rc != ZOK) fail(slot, zerror_text("create /locks", rc));
  }

  // Step 2: are we the lowest?
  void get_children(Slot* slot) {
    int rc = zoo_aget_children(slot->handle->zh, slot->parent.c_str(), 0, &ZooKeeperDriver::children, slot);
    if (rc != ZOK) fail(slot, zerror_text("getChildren", rc));
  }

  static void children(int rc, const String_vector* strings, const void* data) {
    auto* slot = static_cast<Slot*>(const_cast<void*>(data));
    auto* self = slot->driver;
    if (rc != ZOK) {
      if (connection_error(rc)) {
        self->recover(slot, zerror_text("getChildren", rc));
      } else {
        self->fail(slot, zerror_text("getChildren", rc));
      }
      return;
    }
    std::vector<std::string> names;
    for (int i = 0; i < strings->count; ++i) names.emplace_back(strings->data[i]);
    if (slot->node.empty()) {
      // Recovering after a lost create: adopt our child if it was made.
      for (const auto& name : names) {
        if (name.rfind(slot->prefix, 0) == 0) slot->node = name;
      }
      if (slot->node.empty()) {
        self->create(slot);
        return;
      }
    }
    // Curator sorts by the sequence number after the lock name.
    auto sequence = [](const std::string& name) { return name.substr(name.size() - 10); };
    std::sort(names.begin(), names.end(),
              [&](const std::string& a, const std::string& b) { return sequence(a) < sequence(b); });
    auto ours = std::find(names.begin(), names.end(), slot->node);
    if (ours == names.end()) {
      slot->node.clear();
      self->fail(slot, "our lock node vanished (session expired?)");
      return;
    }
    if (ours == names.begin()) {
      self->succeed(slot);
      return;
    }
    // Step 3: watch the child just below ours.
    std::string predecessor = slot->parent + "/" + *(ours - 1);
    auto* watch = new WatchContext{slot, ++slot->generation};
    rc = zoo_awget(slot->handle->zh, predecessor.c_str(), &ZooKeeperDriver::predecessor_changed, watch,
                   &ZooKeeperDriver::watched, watch);
    if (rc != ZOK) self->fail(slot, zerror_text("getData", rc));
  }

  static void watched(int rc, const char*, int, const Stat*, const void* data) {
    auto* watch = static_cast<WatchContext*>(const_cast<void*>(data));
    Slot* slot = watch->slot;
    if (rc == ZOK) return;  // wait for the watch to fire
    bool current = watch->generation == slot->generation;
    ++slot->generation;  // no watch was left (NoNode) or it is moot now
    delete watch;
    if (!current) return;
    if (rc == ZNONODE) {
      slot->driver->get_children(slot);
    } else if (connection_error(rc)) {
      slot->driver->recover(slot, zerror_text("getData", rc));
    } else {
      slot->driver->fail(slot, zerror_text("getData", rc));
    }
  }

  static void predecessor_changed(zhandle_t*, int type, int, const char*, void* context) {
    auto* watch = static_cast<WatchContext*>(context);
    if (type == ZOO_SESSION_EVENT) return;  // the watch stays registered across a reconnect
    Slot* slot = watch->slot;
    bool current = watch->generation == slot->generation;
    delete watch;
    if (current) slot->driver->get_children(slot);
  }

  // Release: delete our child; NoNode means it is gone already.
  void remove(Slot* slot) {
    std::string path = slot->parent + "/" + slot->node;
    int rc = zoo_adelete(slot->handle->zh, path.c_str(), -1, &ZooKeeperDriver::removed, slot);
    if (rc != ZOK) fail(slot, zerror_text("delete", rc));
  }

  static void removed(int rc, const void* data) {
    auto* slot = static_cast<Slot*>(const_cast<void*>(data));
    if (rc == ZOK || rc == ZNONODE) {
      slot->node.clear();
      slot->driver->succeed(slot);
    } else if (connection_error(rc)) {
      slot->driver->recover(slot, zerror_text("delete", rc));
    } else {
      slot->driver->fail(slot, zerror_text("delete", rc));
    }
  }

  // A connection loss: retry the step after a pause (the client reconnects
  // to another member by itself), and count the error.
  void recover(Slot* slot, std::string error) {
    options_.scheduler->after(50ms, [this, guard = guard_, slot, error = std::move(error)] {
      std::lock_guard lock(guard->mutex);
      if (guard->closed) return;  // the slot, maybe the driver, is gone
      if (guard->closing) {
        fail(slot, error);
      } else if (slot->releasing) {
        remove(slot);
      } else {
        get_children(slot);
      }
    });
  }

  void succeed(Slot* slot) {
    Completion done = std::move(slot->done);
    slot->done = nullptr;
    if (done) done({});
  }

  void fail(Slot* slot, std::string error) {
    Completion done = std::move(slot->done);
    slot->done = nullptr;
    if (done) done({std::move(error)});
  }

  static std::string four_letter_word(const std::string& endpoint, const char* word) {
    auto colon = endpoint.rfind(':');
    if (colon == std::string::npos) return "";
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(std::stoi(endpoint.substr(colon + 1))));
    if (inet_pton(AF_INET, endpoint.substr(0, colon).c_str(), &address.sin_addr) != 1) return "";
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return "";
    timeval timeout{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    std::string answer;
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
        write(fd, word, 4) == 4) {
      char buffer[4096];
      ssize_t n;
      while ((n = read(fd, buffer, sizeof buffer)) > 0) answer.append(buffer, static_cast<size_t>(n));
    }
    close(fd);
    return answer;
  }

  DriverOptions options_;
  FILE* log_ = nullptr;
  std::string nonce_;
  std::vector<std::unique_ptr<Handle>> handles_;
  std::vector<Slot> slots_;
  // Orders retries after a connection loss (timer thread) against closing;
  // shared with pending retries, so it outlives the driver.
  struct Guard {
    std::mutex mutex;
    bool closing = false;
    bool closed = false;
  };
  std::shared_ptr<Guard> guard_ = std::make_shared<Guard>();
  static inline std::mutex mutex_;
  static inline std::condition_variable cv_;
};

}  // namespace

std::unique_ptr<Driver> make_zookeeper_driver(const DriverOptions& options) {
  return std::make_unique<ZooKeeperDriver>(options);
}

}  // namespace fencelock::bench
