// Constants and dtype spellings of the safetensors format, shared by the reader and the writer.
//
// Layout: an 8-byte little-endian unsigned header length N, N bytes of UTF-8 JSON (an object whose
// keys are tensor names plus an optional "__metadata__" string map, each tensor an object with
// "dtype", "shape" and "data_offsets": [begin, end) relative to the data section), then the data
// section, which starts at byte 8 + N.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string_view>

#include <porta/dtype.hpp>

namespace porta::io::detail {

inline constexpr std::size_t kSafetensorsLengthBytes = 8;
// Real headers are kilobytes to a few megabytes (DeepSeek-V3 shards: about 100 kB). A larger
// value is a corrupt length field, and refusing it keeps a bad file from costing gigabytes.
inline constexpr std::size_t kMaxSafetensorsHeaderBytes = 100u * 1024u * 1024u;
inline constexpr std::string_view kMetadataKey = "__metadata__";

struct SafetensorsDTypeName {
  std::string_view name;
  DType dtype;
};
inline constexpr std::array<SafetensorsDTypeName, 7> kSafetensorsDTypes{{
    {"F32", DType::F32},
    {"F16", DType::F16},
    {"BF16", DType::BF16},
    {"F8_E4M3", DType::F8E4M3},
    {"I8", DType::I8},
    {"I32", DType::I32},
    {"I64", DType::I64},
}};

constexpr std::optional<DType> safetensors_dtype(std::string_view name) noexcept {
  for (const auto& entry : kSafetensorsDTypes)
    if (entry.name == name) return entry.dtype;
  return std::nullopt;
}

constexpr std::string_view safetensors_dtype_name(DType dtype) noexcept {
  for (const auto& entry : kSafetensorsDTypes)
    if (entry.dtype == dtype) return entry.name;
  return "?";
}

}  // namespace porta::io::detail
