#include "tests/cluster/process_cluster.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "net/asio.h"

#ifndef FENCELOCKD_PATH
#error "FENCELOCKD_PATH must name the fencelockd binary"
#endif

namespace fencelock::testing {

uint16_t free_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor acceptor(
      io, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  return acceptor.local_endpoint().port();
}

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

ProcessCluster::ProcessCluster(ProcessClusterOptions options) : options_(std::move(options)) {
  std::random_device random;
  keep_dir_ = !options_.dir.empty();
  dir_ = keep_dir_ ? options_.dir
                   : std::filesystem::temp_directory_path() /
                         ("fencelock-cluster-" + std::to_string(getpid()) + "-" + std::to_string(random()));
  std::filesystem::create_directories(dir_);
  for (int i = 1; i <= options_.nodes; ++i) {
    peer_addrs_[i] = "127.0.0.1:" + std::to_string(free_port());
    client_addrs_[i] = "127.0.0.1:" + std::to_string(free_port());
    if (options_.http) http_addrs_[i] = "127.0.0.1:" + std::to_string(free_port());
  }
  last_id_ = static_cast<uint64_t>(options_.nodes);
}

uint64_t ProcessCluster::add_joining_node() {
  uint64_t id = ++last_id_;
  peer_addrs_[id] = "127.0.0.1:" + std::to_string(free_port());
  client_addrs_[id] = "127.0.0.1:" + std::to_string(free_port());
  if (options_.http) http_addrs_[id] = "127.0.0.1:" + std::to_string(free_port());
  joining_.insert(id);
  return id;
}

void ProcessCluster::forget(uint64_t id) {
  if (running(id)) terminate(id);
  peer_addrs_.erase(id);
  client_addrs_.erase(id);
  forgotten_.insert(id);
  probe_.reset();
}

ProcessCluster::~ProcessCluster() {
  probe_.reset();
  // A REQUIRE failed (the test is unwinding): show what every node logged.
  if (std::uncaught_exceptions() > 0 || std::getenv("FENCELOCK_TEST_LOGS") != nullptr) {
    for (uint64_t id : ids()) std::fprintf(stderr, "%s", log_tail(id, 200).c_str());
    for (uint64_t id : forgotten_) std::fprintf(stderr, "%s", log_tail(id, 100).c_str());
  }
  for (auto& [id, pid] : pids_) {
    ::kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  if (keep_dir_) return;
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

pid_t ProcessCluster::pid(uint64_t id) const {
  auto it = pids_.find(id);
  return it == pids_.end() ? -1 : it->second;
}

std::vector<uint64_t> ProcessCluster::ids() const {
  std::vector<uint64_t> out;
  for (const auto& [id, address] : client_addrs_) out.push_back(id);
  return out;
}

std::vector<std::string> ProcessCluster::client_endpoints() const {
  std::vector<std::string> out;
  for (const auto& [id, address] : client_addrs_) out.push_back(address);
  return out;
}

std::filesystem::path ProcessCluster::data_dir(uint64_t id) const {
  return dir_ / ("n" + std::to_string(id));
}

void ProcessCluster::start(uint64_t id) {
  if (running(id)) return;
  std::string peers;
  std::string join;
  for (const auto& [peer, address] : peer_addrs_) {
    if (joining_.contains(peer)) continue;
    if (!peers.empty()) peers += ",";
    std::string dial = address;
    if (options_.dial_address && peer != id) dial = options_.dial_address(id, peer, address);
    peers += std::to_string(peer) + "=" + dial;
  }
  std::vector<std::string> args = {
      FENCELOCKD_PATH,
      "--id", std::to_string(id),
      "--client-addr", client_addrs_.at(id),
      "--peer-addr", peer_addrs_.at(id),
      "--data-dir", (data_dir(id) / "data").string(),
      "--tick-ms", std::to_string(options_.tick_ms),
      "--election-ticks", std::to_string(options_.election_ticks),
      "--snapshot-every", std::to_string(options_.snapshot_every),
      "--keep-log-entries", std::to_string(options_.keep_log_entries),
      "--seed", std::to_string(id * 7919),
  };
  if (joining_.contains(id)) {
    for (const auto& [other, address] : client_addrs_) {
      if (other != id) join += (join.empty() ? "" : ",") + address;
    }
    args.insert(args.begin() + 3, {"--join", join});
  } else {
    args.insert(args.begin() + 3, {"--peers", peers});
  }
  if (options_.unsafe_no_fsync) args.push_back("--unsafe-no-fsync");
  if (options_.http) args.insert(args.end(), {"--http-addr", http_addrs_.at(id)});
  for (const auto& flag : options_.extra_flags) args.push_back(flag);
  if (options_.node_flags) {
    for (const auto& flag : options_.node_flags(id)) args.push_back(flag);
  }
  std::filesystem::create_directories(data_dir(id));
  std::string log = (data_dir(id) / "fencelockd.log").string();
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    // A test process that crashes must not leave its nodes running (one
    // did, holding its ports until killed by hand): they die with it. Every
    // caller forks from the test's main thread, which lives as long as it.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  pids_[id] = pid;
}

void ProcessCluster::start_all() {
  for (uint64_t id : ids()) start(id);
}

void ProcessCluster::kill(uint64_t id, int signal) {
  auto it = pids_.find(id);
  if (it == pids_.end()) return;
  ::kill(it->second, signal);
  if (signal == SIGKILL) {
    waitpid(it->second, nullptr, 0);
    pids_.erase(it);
  }
}

int ProcessCluster::terminate(uint64_t id, std::chrono::milliseconds timeout) {
  auto it = pids_.find(id);
  if (it == pids_.end()) return -1;
  pid_t pid = it->second;
  ::kill(pid, SIGTERM);
  int status = 0;
  bool exited = eventually([&] { return waitpid(pid, &status, WNOHANG) == pid; }, timeout);
  if (!exited) {
    ::kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  pids_.erase(id);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool ProcessCluster::running(uint64_t id) const {
  auto it = pids_.find(id);
  if (it == pids_.end()) return false;
  return waitpid(it->second, nullptr, WNOHANG) == 0;
}

client::ClientOptions ProcessCluster::client_options() const {
  client::ClientOptions options;
  options.endpoints = client_endpoints();
  options.tls_ca_file = options_.client_ca;
  options.tls_cert_file = options_.client_cert;
  options.tls_key_file = options_.client_key;
  options.token = options_.client_token;
  return options;
}

std::shared_ptr<client::Client> ProcessCluster::client() {
  return client::Client::connect(client_options()).value();
}

std::optional<clientpb::ClusterStatusResult> ProcessCluster::status_of(uint64_t id) {
  if (!probe_) {
    client::ClientOptions options = client_options();
    options.connect_timeout = std::chrono::milliseconds(300);
    probe_ = client::Client::connect(options).value();
  }
  auto status = probe_->member_status(client_endpoint(id));
  if (!status.ok()) return std::nullopt;
  return status.value();
}

uint64_t ProcessCluster::wait_for_leader(std::chrono::milliseconds timeout) {
  uint64_t leader = 0;
  eventually(
      [&] {
        for (uint64_t id : ids()) {
          if (!running(id)) continue;
          auto status = status_of(id);
          if (!status) continue;
          for (const auto& member : status->members()) {
            if (member.id() == id && member.role() == "leader") {
              leader = id;
              return true;
            }
          }
        }
        return false;
      },
      timeout);
  return leader;
}

std::string ProcessCluster::log_tail(uint64_t id, int lines) const {
  std::ifstream in(data_dir(id) / "fencelockd.log");
  std::vector<std::string> all;
  for (std::string line; std::getline(in, line);) all.push_back(line);
  std::ostringstream out;
  for (size_t i = all.size() > static_cast<size_t>(lines) ? all.size() - lines : 0; i < all.size(); ++i) {
    out << "n" << id << ": " << all[i] << "\n";
  }
  return out.str();
}

}  // namespace fencelock::testing
