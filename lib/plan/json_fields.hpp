// A checked reader of one JSON object's fields for the planner's profiles: every failure is a
// porta::Error (CorruptFile) naming the file and the dotted field path.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace porta::plan::detail {

class Fields {
 public:
  Fields(const nlohmann::json& object, std::string source, std::string prefix = "");

  [[noreturn]] void fail(const std::string& key, const std::string& why) const;
  bool has(const std::string& key) const;
  // A number > 0 (or >= 0 when `allow_zero`); `fallback` when absent, an error if no fallback.
  double positive(const std::string& key, std::optional<double> fallback = {},
                  bool allow_zero = false) const;
  double fraction(const std::string& key, std::optional<double> fallback = {}) const;  // (0, 1]
  int count(const std::string& key, std::optional<int> fallback = {}) const;            // >= 1
  std::string text(const std::string& key, std::optional<std::string> fallback = {}) const;
  Fields object(const std::string& key) const;

 private:
  const nlohmann::json& j_;
  std::string source_;
  std::string prefix_;
};

}  // namespace porta::plan::detail
