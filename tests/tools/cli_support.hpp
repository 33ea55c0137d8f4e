// Runs the real `porta` program (PORTA_CLI_PATH, set by tests/CMakeLists.txt when the CLI is
// built) for the tests that check its output and exit codes.
#pragma once

#ifdef PORTA_CLI_PATH

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

#include <catch2/catch.hpp>

namespace porta::test {

struct CliResult {
  int exit_code = -1;  // -1: killed by a signal (a crash)
  std::string output;  // stdout and stderr together
};

inline CliResult run_porta(const std::string& args) {
  const std::string command = std::string(PORTA_CLI_PATH) + " " + args + " 2>&1";
  CliResult result;
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::array<char, 4096> chunk{};
  std::size_t n = 0;
  while ((n = fread(chunk.data(), 1, chunk.size(), pipe)) > 0)
    result.output.append(chunk.data(), n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace porta::test

#endif  // PORTA_CLI_PATH
