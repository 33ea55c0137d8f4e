// Runs the real `porta` program (PORTA_CLI_PATH, set by tests/CMakeLists.txt when the CLI is
// built) for the tests that check its output and exit codes.
#pragma once

#ifdef PORTA_CLI_PATH

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>
#include <string_view>

#include <catch2/catch.hpp>

namespace porta::test {

struct CliResult {
  int exit_code = -1;  // -1: killed by a signal (a crash)
  std::string output;  // stdout and stderr together
};

inline CliResult run_porta(const std::string& args) {
  // Appended piece by piece: GCC 12 warns (-Warray-bounds, a false positive) on the inlined
  // operator+ chain.
  std::string command = PORTA_CLI_PATH;
  command += ' ';
  command += args;
  command += " 2>&1";
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

// The rest of the line after the first `marker` in `output`, or "(none)" when there is none.
inline std::string rest_of_line_after(const std::string& output, std::string_view marker) {
  const auto at = output.find(marker);
  if (at == std::string::npos) return "(none)";
  const auto begin = at + marker.size();
  return output.substr(begin, output.find('\n', begin) - begin);
}

// What the program printed after "label: " (the first such line).
inline std::string line_after(const std::string& output, const std::string& label) {
  return rest_of_line_after(output, label + ": ");
}

}  // namespace porta::test

#endif  // PORTA_CLI_PATH
