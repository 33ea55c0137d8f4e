// Shared helpers of the tokenizer tests: the real tokenizers next to the project (skipped with a
// message where absent), reading cases.jsonl, and writing tokenizer files for a test.
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <porta/tokenizer.hpp>

namespace porta::test {

// The folder of a real tokenizer ("deepseek_v3", "qwen3"), or "" (with a warning) when absent.
inline std::string tokenizer_data_dir(const std::string& name) {
  const std::filesystem::path dir = std::filesystem::path(PORTA_TOKENIZER_DATA_DIR) / name;
  if (!std::filesystem::exists(dir / "tokenizer.json")) {
    WARN("skipped: " << dir.string()
                     << " is absent (the real tokenizers live in ../shared/data/tokenizers)");
    return "";
  }
  return dir.string();
}

inline std::vector<nlohmann::json> read_cases(const std::string& dir) {
  std::ifstream in(std::filesystem::path(dir) / "cases.jsonl");
  REQUIRE(in.good());
  std::vector<nlohmann::json> cases;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) cases.push_back(nlohmann::json::parse(line));
  return cases;
}

// A scratch directory under the build tree holding the given tokenizer files.
inline std::string write_tokenizer_dir(const std::string& name, const std::string& tokenizer_json,
                                       const std::string& config_json = "") {
  const auto dir = std::filesystem::path(PORTA_TEST_TMPDIR) / "tokenizer" / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << tokenizer_json;
  if (!config_json.empty()) std::ofstream(dir / "tokenizer_config.json") << config_json;
  return dir.string();
}

}  // namespace porta::test
