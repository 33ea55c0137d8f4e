// Look-ups into the embedded planner data, and the one file reader the planner's loaders share.
#include "plan/embedded_data.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include <porta/error.hpp>

namespace porta::plan::detail {

namespace {
bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}
}  // namespace

std::optional<std::string_view> find_embedded(std::string_view kind, std::string_view name) {
  for (const EmbeddedFile& f : embedded_files())
    if (f.kind == kind && iequal(f.name, name)) return f.text;
  return std::nullopt;
}

std::vector<std::string> embedded_names(std::string_view kind) {
  std::vector<std::string> names;
  for (const EmbeddedFile& f : embedded_files())
    if (f.kind == kind) names.emplace_back(f.name);
  return names;
}

std::string read_text_file(const std::string& path, std::string_view what) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw Error(ErrorCode::NotFound, fmt::format("{} '{}' does not exist", what, path));
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in && !in.eof())
    throw Error(ErrorCode::Io, fmt::format("{} '{}' could not be read", what, path));
  return text.str();
}

}  // namespace porta::plan::detail
