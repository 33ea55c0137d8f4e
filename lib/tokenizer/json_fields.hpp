// Reading tokenizer.json fields with errors that name the field's path (e.g.
// "pre_tokenizer.pretokenizers[2].behavior"), so that a malformed file says what is wrong where.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <porta/error.hpp>

namespace porta::tok {

using json = nlohmann::json;

[[noreturn]] inline void bad_field(std::string_view path, std::string_view problem) {
  throw Error(ErrorCode::CorruptFile, fmt::format("{}: {}", path, problem));
}

inline std::string join_path(std::string_view path, std::string_view key) {
  return path.empty() ? std::string(key) : fmt::format("{}.{}", path, key);
}

// obj[key], which must exist (and not be null).
inline const json& required(const json& obj, std::string_view key, std::string_view path) {
  if (!obj.is_object()) bad_field(path, "expected a JSON object");
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) bad_field(join_path(path, key), "missing");
  return *it;
}

inline std::string string_field(const json& obj, std::string_view key, std::string_view path) {
  const json& v = required(obj, key, path);
  if (!v.is_string()) bad_field(join_path(path, key), "expected a string");
  return v.get<std::string>();
}

inline std::string string_or(const json& obj, std::string_view key, std::string_view path,
                             std::string fallback) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_string()) bad_field(join_path(path, key), "expected a string");
  return it->get<std::string>();
}

inline bool bool_or(const json& obj, std::string_view key, std::string_view path, bool fallback) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) bad_field(join_path(path, key), "expected true or false");
  return it->get<bool>();
}

inline std::int64_t int_or(const json& obj, std::string_view key, std::string_view path,
                           std::int64_t fallback) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_number_integer()) bad_field(join_path(path, key), "expected an integer");
  return it->get<std::int64_t>();
}

inline std::int32_t token_id(const json& v, std::string_view path) {
  if (!v.is_number_integer() || v.get<std::int64_t>() < 0 ||
      v.get<std::int64_t>() > INT32_MAX)
    bad_field(path, "expected a token id (a non-negative integer)");
  return static_cast<std::int32_t>(v.get<std::int64_t>());
}

// The component's "type" string.
inline std::string type_of(const json& obj, std::string_view path) {
  return string_field(obj, "type", path);
}

}  // namespace porta::tok
