// Field checks for the planner's JSON profiles (see json_fields.hpp).
#include "plan/json_fields.hpp"

#include <cmath>

#include <fmt/format.h>

#include <porta/error.hpp>

namespace porta::plan::detail {

using nlohmann::json;

Fields::Fields(const json& object, std::string source, std::string prefix)
    : j_(object), source_(std::move(source)), prefix_(std::move(prefix)) {
  if (!j_.is_object())
    throw Error(ErrorCode::CorruptFile,
                fmt::format("{}: {} must be a JSON object", source_,
                            prefix_.empty() ? std::string("the file") : "field '" + prefix_ + "'"));
}

void Fields::fail(const std::string& key, const std::string& why) const {
  throw Error(ErrorCode::CorruptFile,
              fmt::format("{}: field '{}{}' {}", source_, prefix_.empty() ? "" : prefix_ + ".", key,
                          why));
}

bool Fields::has(const std::string& key) const { return j_.contains(key) && !j_.at(key).is_null(); }

double Fields::positive(const std::string& key, std::optional<double> fallback,
                        bool allow_zero) const {
  if (!has(key)) {
    if (!fallback) fail(key, "is missing");
    return *fallback;
  }
  const json& v = j_.at(key);
  if (!v.is_number()) fail(key, fmt::format("must be a number, not {}", v.dump()));
  const double value = v.get<double>();
  if (!std::isfinite(value) || value < 0 || (!allow_zero && value == 0))
    fail(key, fmt::format("must be {}, not {}", allow_zero ? ">= 0" : "positive", v.dump()));
  return value;
}

double Fields::fraction(const std::string& key, std::optional<double> fallback) const {
  const double value = positive(key, fallback);
  if (value > 1) fail(key, fmt::format("must be a fraction in (0, 1], not {}", value));
  return value;
}

int Fields::count(const std::string& key, std::optional<int> fallback) const {
  if (!has(key)) {
    if (!fallback) fail(key, "is missing");
    return *fallback;
  }
  const json& v = j_.at(key);
  if (!v.is_number_integer()) fail(key, fmt::format("must be an integer, not {}", v.dump()));
  const auto value = v.get<long long>();
  if (value < 1 || value > 1'000'000) fail(key, fmt::format("must be in [1, 1000000], not {}", value));
  return static_cast<int>(value);
}

std::string Fields::text(const std::string& key, std::optional<std::string> fallback) const {
  if (!has(key)) {
    if (!fallback) fail(key, "is missing");
    return *fallback;
  }
  const json& v = j_.at(key);
  if (!v.is_string()) fail(key, fmt::format("must be a string, not {}", v.dump()));
  return v.get<std::string>();
}

Fields Fields::object(const std::string& key) const {
  if (!has(key)) fail(key, "is missing");
  if (!j_.at(key).is_object()) fail(key, "must be a JSON object");
  return Fields(j_.at(key), source_, prefix_.empty() ? key : prefix_ + "." + key);
}

}  // namespace porta::plan::detail
