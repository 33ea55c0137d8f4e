// Constants of the GGUF container shared by the reader and the writer (see docs/gguf.md).
#pragma once

#include <cstddef>
#include <cstdint>

#include <porta/gguf.hpp>

namespace porta::gguf::detail {

inline constexpr std::uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
inline constexpr std::uint32_t kMaxDims = 4;         // GGML_MAX_DIMS

// Bytes of a scalar of `type` in the file; 0 for strings and arrays (variable length).
constexpr std::size_t scalar_bytes(ValueType type) noexcept {
  switch (type) {
    case ValueType::U8:
    case ValueType::I8:
    case ValueType::Bool: return 1;
    case ValueType::U16:
    case ValueType::I16: return 2;
    case ValueType::U32:
    case ValueType::I32:
    case ValueType::F32: return 4;
    case ValueType::U64:
    case ValueType::I64:
    case ValueType::F64: return 8;
    case ValueType::String:
    case ValueType::Array: return 0;
  }
  return 0;
}

constexpr bool valid_value_type(std::uint32_t id) noexcept { return id <= 12; }

}  // namespace porta::gguf::detail
