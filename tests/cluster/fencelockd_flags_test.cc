// fencelockd's start-up errors: a wrong flag, an unknown id, a port in use,
// an unusable data directory, a directory of another cluster — each one line
// on stderr and exit code 2 (a JSON line with --log-format json). And
// --config reads the same keys from TOML.

#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "net/asio.h"
#include "tests/cluster/process_cluster.h"

namespace fencelock::testing {
namespace {

struct Outcome {
  int exit_code = -1;
  std::string stderr_text;
};

// Runs fencelockd with `args`; kills it if it is still running after
// `timeout` (a node that started fine runs until stopped).
Outcome run_daemon(std::vector<std::string> args, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  args.insert(args.begin(), FENCELOCKD_PATH);
  int pipe_fds[2];
  REQUIRE(pipe(pipe_fds) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pipe_fds[1], 2);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(pipe_fds[1]);
  int status = 0;
  bool exited = eventually([&] { return waitpid(pid, &status, WNOHANG) == pid; }, timeout);
  if (!exited) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  Outcome outcome;
  char buffer[4096];
  ssize_t n;
  while ((n = read(pipe_fds[0], buffer, sizeof buffer)) > 0) outcome.stderr_text.append(buffer, n);
  close(pipe_fds[0]);
  outcome.exit_code = exited && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return outcome;
}

struct TempDir {
  TempDir() {
    std::random_device random;
    path = std::filesystem::temp_directory_path() / ("fencelockd-flags-" + std::to_string(random()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::filesystem::path path;
};

std::vector<std::string> good_args(const TempDir& dir, uint16_t peer_port, uint16_t client_port) {
  return {"--id", "1", "--peers", "1=127.0.0.1:" + std::to_string(peer_port),
          "--client-addr", "127.0.0.1:" + std::to_string(client_port),
          "--data-dir", (dir.path / "data").string()};
}

void check_one_line_exit_2(const Outcome& outcome, const std::string& must_contain) {
  INFO(outcome.stderr_text);
  CHECK(outcome.exit_code == 2);
  CHECK(std::count(outcome.stderr_text.begin(), outcome.stderr_text.end(), '\n') == 1);
  CHECK_THAT(outcome.stderr_text, Catch::StartsWith("fencelockd: ") && Catch::Contains(must_contain));
}

}  // namespace

TEST_CASE("fencelockd: an unknown flag is one line and exit code 2", "[flags]") {
  TempDir dir;
  auto args = good_args(dir, free_port(), free_port());
  args.push_back("--no-such-flag");
  check_one_line_exit_2(run_daemon(args), "no-such-flag");
}

TEST_CASE("fencelockd: a missing required flag is one line and exit code 2", "[flags]") {
  check_one_line_exit_2(run_daemon({"--id", "1"}), "required");
}

TEST_CASE("fencelockd: an id that is not among the peers is one line and exit code 2", "[flags]") {
  TempDir dir;
  auto args = good_args(dir, free_port(), free_port());
  args[1] = "4";
  check_one_line_exit_2(run_daemon(args), "--id 4 is not among --peers");
}

TEST_CASE("fencelockd: malformed --peers is one line and exit code 2", "[flags]") {
  TempDir dir;
  auto args = good_args(dir, free_port(), free_port());
  args[3] = "1=localhost";
  check_one_line_exit_2(run_daemon(args), "--peers");
}

TEST_CASE("fencelockd: a --lazy-window-us beyond its limit is one line and exit code 2", "[flags]") {
  TempDir dir;
  auto args = good_args(dir, free_port(), free_port());
  args.push_back("--lazy-window-us");
  args.push_back("100001");
  check_one_line_exit_2(run_daemon(args), "--lazy-window-us");
}

TEST_CASE("fencelockd: a client port in use is one line and exit code 2", "[flags]") {
  TempDir dir;
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor taken(
      io, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  auto args = good_args(dir, free_port(), taken.local_endpoint().port());
  check_one_line_exit_2(run_daemon(args), "cannot listen on client address");
}

TEST_CASE("fencelockd: an unusable data directory is one line and exit code 2", "[flags]") {
  TempDir dir;
  std::ofstream(dir.path / "file") << "not a directory";
  auto args = good_args(dir, free_port(), free_port());
  args[7] = (dir.path / "file" / "data").string();
  check_one_line_exit_2(run_daemon(args), (dir.path / "file").string());
}

TEST_CASE("fencelockd: a data directory of another node is one line and exit code 2", "[flags]") {
  TempDir dir;
  uint16_t peer_port = free_port();
  auto args = good_args(dir, peer_port, free_port());
  // First start: initializes the directory as node 1, then stops on SIGKILL.
  run_daemon(args, std::chrono::milliseconds(1500));
  std::vector<std::string> other = {"--id", "2", "--peers", "2=127.0.0.1:" + std::to_string(free_port()),
                                    "--client-addr", "127.0.0.1:" + std::to_string(free_port()),
                                    "--data-dir", (dir.path / "data").string()};
  check_one_line_exit_2(run_daemon(other), "node");
}

TEST_CASE("fencelockd: --config reads the same keys from a TOML file", "[flags]") {
  TempDir dir;
  uint16_t client_port = free_port();
  std::ofstream(dir.path / "node.toml")
      << "id = 1\n"
      << "peers = \"1=127.0.0.1:" << free_port() << "\"\n"
      << "client-addr = \"127.0.0.1:" << client_port << "\"\n"
      << "data-dir = \"" << (dir.path / "data").string() << "\"\n"
      << "tick-ms = 20\n";
  // It starts and serves: still running when killed.
  auto outcome = run_daemon({"--config", (dir.path / "node.toml").string()}, std::chrono::milliseconds(1500));
  INFO(outcome.stderr_text);
  CHECK(outcome.exit_code == -1);
  CHECK_THAT(outcome.stderr_text, Catch::Contains("serving clients on 127.0.0.1:" + std::to_string(client_port)));
  // A bad key in the file is an error like a bad flag.
  std::ofstream(dir.path / "bad.toml") << "id = 1\nbogus-key = 3\n";
  check_one_line_exit_2(run_daemon({"--config", (dir.path / "bad.toml").string()}), "bogus");
}

TEST_CASE("fencelockd: TLS and client-auth flags that do not go together are one line and exit code 2",
          "[flags]") {
  TempDir dir;
  std::string file = (dir.path / "file").string();
  std::ofstream(file) << "not a certificate\n";
  auto with = [&](std::vector<std::string> extra) {
    auto args = good_args(dir, free_port(), free_port());
    args.insert(args.end(), extra.begin(), extra.end());
    return run_daemon(args);
  };
  check_one_line_exit_2(with({"--client-auth", "cert"}), "--client-auth cert needs TLS");
  check_one_line_exit_2(with({"--client-auth", "token", "--acl", file}),
                        "--client-auth token and --tokens-file go together");
  check_one_line_exit_2(with({"--client-auth", "none", "--acl", file}),
                        "--acl needs --client-auth cert or token");
  check_one_line_exit_2(with({"--tls-cert", file}), "TLS needs all three");
  check_one_line_exit_2(with({"--tls-cert", file, "--tls-key", file, "--tls-ca", file}),
                        "holds no PEM certificate");
  check_one_line_exit_2(with({"--client-auth", "sometimes"}), "--client-auth");
}

TEST_CASE("fencelockd: a --log-format other than text or json is one line and exit code 2",
          "[flags]") {
  TempDir dir;
  auto args = good_args(dir, free_port(), free_port());
  args.insert(args.end(), {"--log-format", "xml"});
  check_one_line_exit_2(run_daemon(args), "--log-format");
}

TEST_CASE("fencelockd: --log-format json from a TOML file makes every line JSON, the first included",
          "[flags]") {
  TempDir dir;
  uint16_t client_port = free_port();
  std::ofstream(dir.path / "node.toml")
      << "id = 1\n"
      << "peers = \"1=127.0.0.1:" << free_port() << "\"\n"
      << "client-addr = \"127.0.0.1:" << client_port << "\"\n"
      << "data-dir = \"" << (dir.path / "data").string() << "\"\n"
      << "log-format = \"json\"\n";
  auto outcome = run_daemon({"--config", (dir.path / "node.toml").string()}, std::chrono::milliseconds(1500));
  INFO(outcome.stderr_text);
  CHECK(outcome.exit_code == -1);  // started and served until killed
  std::istringstream lines(outcome.stderr_text);
  std::string line;
  int count = 0;
  bool serving = false;
  while (std::getline(lines, line)) {
    INFO(line);
    ++count;
    auto object = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    REQUIRE(object.is_object());
    CHECK(object.value("node", 0) == 1);
    std::string msg = object.value("msg", "");
    serving = serving || msg.find("serving clients on 127.0.0.1:" + std::to_string(client_port)) !=
                             std::string::npos;
  }
  CHECK(count >= 2);
  CHECK(serving);
}

TEST_CASE("fencelockd: with --log-format json a start-up error is one JSON line and exit code 2",
          "[flags]") {
  TempDir dir;
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor taken(
      io, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  auto args = good_args(dir, free_port(), taken.local_endpoint().port());
  args.insert(args.end(), {"--log-format", "json"});
  // Whatever the level: a node that does not start says why.
  auto level = GENERATE(as<std::string>{}, "info", "off");
  args.insert(args.end(), {"--log-level", level});
  auto outcome = run_daemon(args);
  INFO(outcome.stderr_text);
  CHECK(outcome.exit_code == 2);
  CHECK(std::count(outcome.stderr_text.begin(), outcome.stderr_text.end(), '\n') == 1);
  auto object = nlohmann::json::parse(outcome.stderr_text, nullptr, /*allow_exceptions=*/false);
  REQUIRE(object.is_object());
  CHECK(object.value("level", "") == "error");
  CHECK(object.value("logger", "") == "fencelockd");
  CHECK(object.value("node", 0) == 1);
  CHECK_THAT(object.value("msg", ""), Catch::StartsWith("fencelockd: ") &&
                                          Catch::Contains("cannot listen on client address"));
}

}  // namespace fencelock::testing
