// The planner's built-in JSON files (cluster profiles, model configs, npu-sim chip profiles),
// embedded at configure time by lib/plan/embed.cmake.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace porta::plan::detail {

struct EmbeddedFile {
  std::string_view kind;  // "cluster", "model", "chip"
  std::string_view name;  // the file name without .json
  std::string_view text;
};

std::span<const EmbeddedFile> embedded_files();

// The text of a built-in file of `kind` named `name` (case-insensitive), if there is one.
std::optional<std::string_view> find_embedded(std::string_view kind, std::string_view name);
std::vector<std::string> embedded_names(std::string_view kind);

// Reads a whole file; porta::Error (NotFound / Io) naming it otherwise.
std::string read_text_file(const std::string& path, std::string_view what);

}  // namespace porta::plan::detail
