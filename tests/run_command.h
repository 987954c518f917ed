#pragma once
// Runs a shell command for a test and keeps what it printed (stdout and
// stderr together) and its exit code. Header-only; Catch2 must be included.

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace fencelock::testing {

struct CommandRun {
  int exit_code = -1;  // -1 when it did not exit normally (a signal)
  std::string output;
};

inline CommandRun run_command(const std::string& command) {
  CommandRun run;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) run.output.append(buffer, n);
  int status = pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

}  // namespace fencelock::testing
