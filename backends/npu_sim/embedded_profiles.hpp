// The device profiles compiled into the library (generated from profiles/*.json at build time).
#pragma once

#include <span>
#include <string_view>

namespace porta::detail::npu_sim {

struct EmbeddedProfile {
  std::string_view name;  // the file name without .json: "910b2"
  std::string_view json;
};

std::span<const EmbeddedProfile> embedded_profiles();

}  // namespace porta::detail::npu_sim
