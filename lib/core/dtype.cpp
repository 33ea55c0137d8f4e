#include <porta/dtype.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include <porta/error.hpp>

namespace porta {

std::string_view dtype_name(DType t) noexcept {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
    case DType::I8: return "i8";
    case DType::I32: return "i32";
    case DType::I64: return "i64";
    case DType::F8E4M3: return "f8_e4m3";
  }
  return "?";
}

DType parse_dtype(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  struct Spelling {
    std::string_view text;
    DType type;
  };
  static constexpr std::array<Spelling, 21> kSpellings{{
      {"f32", DType::F32},
      {"float32", DType::F32},
      {"float", DType::F32},
      {"fp32", DType::F32},
      {"f16", DType::F16},
      {"float16", DType::F16},
      {"half", DType::F16},
      {"fp16", DType::F16},
      {"bf16", DType::BF16},
      {"bfloat16", DType::BF16},
      {"i8", DType::I8},
      {"int8", DType::I8},
      {"i32", DType::I32},
      {"int32", DType::I32},
      {"i64", DType::I64},
      {"int64", DType::I64},
      {"f8_e4m3", DType::F8E4M3},
      {"fp8_e4m3", DType::F8E4M3},
      {"float8_e4m3fn", DType::F8E4M3},
      {"f8e4m3", DType::F8E4M3},
      {"e4m3", DType::F8E4M3},
  }};
  for (const auto& s : kSpellings)
    if (s.text == lower) return s.type;
  throw Error(
      ErrorCode::InvalidArgument,
      fmt::format("unknown dtype '{}' (expected one of f32, f16, bf16, i8, i32, i64, f8_e4m3)",
                  name));
}

namespace {

float round_to_integer(float value) { return std::nearbyint(value); }  // ties-to-even by default

template <class Int>
Int saturate_from_f32(float value) {
  if (std::isnan(value)) return 0;
  const float rounded = round_to_integer(value);
  constexpr auto lo = std::numeric_limits<Int>::min();
  constexpr auto hi = std::numeric_limits<Int>::max();
  if (rounded <= static_cast<float>(lo)) return lo;
  if (rounded >= static_cast<float>(hi)) return hi;
  return static_cast<Int>(rounded);
}

template <class Int>
Int saturate_from_i64(std::int64_t value) {
  return static_cast<Int>(std::clamp<std::int64_t>(value, std::numeric_limits<Int>::min(),
                                                   std::numeric_limits<Int>::max()));
}

// Elements are read and written with memcpy: tensors viewed in a safetensors mapping may sit at
// any byte offset, and memcpy of a known size compiles to a plain (unaligned-safe) load.
template <class T>
T read_element(const void* data, std::size_t i) noexcept {
  T value;
  std::memcpy(&value, static_cast<const char*>(data) + i * sizeof(T), sizeof(T));
  return value;
}

template <class T>
void write_element(void* data, std::size_t i, T value) noexcept {
  std::memcpy(static_cast<char*>(data) + i * sizeof(T), &value, sizeof(T));
}

}  // namespace

float load_as_f32(const void* data, DType t, std::size_t i) noexcept {
  switch (t) {
    case DType::F32: return read_element<float>(data, i);
    case DType::F16: return f16_bits_to_f32(read_element<std::uint16_t>(data, i));
    case DType::BF16: return bf16_bits_to_f32(read_element<std::uint16_t>(data, i));
    case DType::F8E4M3: return f8e4m3_bits_to_f32(read_element<std::uint8_t>(data, i));
    case DType::I8: return read_element<std::int8_t>(data, i);
    case DType::I32: return static_cast<float>(read_element<std::int32_t>(data, i));
    case DType::I64: return static_cast<float>(read_element<std::int64_t>(data, i));
  }
  return 0.0f;
}

void store_from_f32(void* data, DType t, std::size_t i, float value) noexcept {
  switch (t) {
    case DType::F32: write_element(data, i, value); break;
    case DType::F16: write_element(data, i, f32_to_f16_bits(value)); break;
    case DType::BF16: write_element(data, i, f32_to_bf16_bits(value)); break;
    case DType::F8E4M3: write_element(data, i, f32_to_f8e4m3_bits(value)); break;
    case DType::I8: write_element(data, i, saturate_from_f32<std::int8_t>(value)); break;
    case DType::I32: write_element(data, i, saturate_from_f32<std::int32_t>(value)); break;
    case DType::I64: write_element(data, i, saturate_from_f32<std::int64_t>(value)); break;
  }
}

namespace {

std::int64_t load_as_i64(const void* data, DType t, std::size_t i) noexcept {
  switch (t) {
    case DType::I8: return read_element<std::int8_t>(data, i);
    case DType::I32: return read_element<std::int32_t>(data, i);
    case DType::I64: return read_element<std::int64_t>(data, i);
    case DType::F32:
    case DType::F16:
    case DType::BF16:
    case DType::F8E4M3: break;  // callers pass integer dtypes only
  }
  return 0;
}

void store_from_i64(void* data, DType t, std::size_t i, std::int64_t value) noexcept {
  switch (t) {
    case DType::I8: write_element(data, i, saturate_from_i64<std::int8_t>(value)); break;
    case DType::I32: write_element(data, i, saturate_from_i64<std::int32_t>(value)); break;
    case DType::I64: write_element(data, i, value); break;
    case DType::F32:
    case DType::F16:
    case DType::BF16:
    case DType::F8E4M3: break;  // callers pass integer dtypes only
  }
}

}  // namespace

void convert(const void* src, DType src_type, void* dst, DType dst_type, std::size_t count) {
  if (count == 0) return;  // empty tensors may have null data
  if (src_type == dst_type) {
    std::memcpy(dst, src, count * dtype_size(src_type));
    return;
  }
  if (is_integer(src_type) && is_integer(dst_type)) {
    for (std::size_t i = 0; i < count; ++i)
      store_from_i64(dst, dst_type, i, load_as_i64(src, src_type, i));
    return;
  }
  // The float pairs of loading and casting weights, as typed loops (the same bit functions as
  // store_from_f32/load_as_f32, without two dtype switches per element): a GGUF's embedding
  // table dequantized to bf16 spent most of its load time in those switches.
  // (memcpy'd elements: a mapped tensor may sit at any byte offset)
  if (src_type == DType::F32 && dst_type == DType::BF16) {
    for (std::size_t i = 0; i < count; ++i)
      write_element(dst, i, f32_to_bf16_bits(read_element<float>(src, i)));
    return;
  }
  if (src_type == DType::F32 && dst_type == DType::F16) {
    for (std::size_t i = 0; i < count; ++i)
      write_element(dst, i, f32_to_f16_bits(read_element<float>(src, i)));
    return;
  }
  if (src_type == DType::BF16 && dst_type == DType::F32) {
    for (std::size_t i = 0; i < count; ++i)
      write_element(dst, i, bf16_bits_to_f32(read_element<std::uint16_t>(src, i)));
    return;
  }
  if (src_type == DType::F16 && dst_type == DType::F32) {
    for (std::size_t i = 0; i < count; ++i)
      write_element(dst, i, f16_bits_to_f32(read_element<std::uint16_t>(src, i)));
    return;
  }
  for (std::size_t i = 0; i < count; ++i)
    store_from_f32(dst, dst_type, i, load_as_f32(src, src_type, i));
}

}  // namespace porta
