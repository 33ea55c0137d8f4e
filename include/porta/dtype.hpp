// Element types porta understands and exact conversions between them.
//
// Storage types for the 16- and 8-bit floats (Half, BFloat16, Float8E4M3) are plain bit wrappers;
// arithmetic always happens in f32 after widening. Every narrowing conversion rounds to nearest,
// ties to even, keeps NaN a NaN and handles subnormals, so that results are identical on every
// backend and match PyTorch's own casts.
#pragma once

#include <porta/config.hpp>

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

PORTA_API_BEGIN
namespace porta {

enum class DType : std::uint8_t {
  F32,
  F16,
  BF16,
  I8,
  I32,
  I64,
  F8E4M3,  // e4m3fn: no infinities, NaN is S.1111.111, largest finite value 448
};

inline constexpr DType kAllDTypes[] = {DType::F32, DType::F16, DType::BF16,  DType::I8,
                                       DType::I32, DType::I64, DType::F8E4M3};

constexpr std::size_t dtype_size(DType t) noexcept {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::I8: return 1;
    case DType::I32: return 4;
    case DType::I64: return 8;
    case DType::F8E4M3: return 1;
  }
  return 0;
}

constexpr bool is_floating(DType t) noexcept {
  return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::F8E4M3;
}
constexpr bool is_integer(DType t) noexcept { return !is_floating(t); }

// Canonical lower-case names: "f32", "f16", "bf16", "i8", "i32", "i64", "f8_e4m3".
std::string_view dtype_name(DType t) noexcept;
// Accepts the canonical names and common spellings ("float32", "bfloat16", "int32", "fp8_e4m3",
// and safetensors' "F32", "BF16", "F8_E4M3", ...). Throws porta::Error naming the string otherwise.
DType parse_dtype(std::string_view name);

// ---- bit-exact scalar conversions ------------------------------------------------------------

namespace detail {
constexpr std::uint32_t f32_bits(float f) noexcept { return std::bit_cast<std::uint32_t>(f); }
constexpr float bits_f32(std::uint32_t u) noexcept { return std::bit_cast<float>(u); }

// Shift `mantissa` right by `shift` bits rounding to nearest, ties to even.
constexpr std::uint32_t shift_round_even(std::uint32_t mantissa, int shift) noexcept {
  if (shift >= 32) return 0;
  const std::uint32_t kept = mantissa >> shift;
  const std::uint32_t rest = mantissa & ((1u << shift) - 1u);
  const std::uint32_t half = 1u << (shift - 1);
  return kept + ((rest > half || (rest == half && (kept & 1u))) ? 1u : 0u);
}
}  // namespace detail

constexpr std::uint16_t f32_to_f16_bits(float value) noexcept {
  std::uint32_t x = detail::f32_bits(value);
  const std::uint16_t sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  x &= 0x7fffffffu;
  if (x > 0x7f800000u)  // NaN: keep it quiet, keep the top payload bits
    return static_cast<std::uint16_t>(sign | 0x7e00u | ((x >> 13) & 0x3ffu));
  if (x >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds to infinity
  if (x < 0x38800000u) {                        // below 2^-14: f16 subnormal or zero
    if (x < 0x33000000u) return sign;           // below 2^-25: rounds to zero
    const std::uint32_t exponent = x >> 23;
    const std::uint32_t mantissa = (x & 0x7fffffu) | 0x800000u;
    return static_cast<std::uint16_t>(
        sign | detail::shift_round_even(mantissa, static_cast<int>(126 - exponent)));
  }
  // Normal: rebias the exponent (127 -> 15); a rounding carry correctly bumps the exponent.
  return static_cast<std::uint16_t>(sign | detail::shift_round_even(x - 0x38000000u, 13));
}

constexpr float f16_bits_to_f32(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu;
  const std::uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0) {
    const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;  // 2^-24
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 31) return detail::bits_f32(sign | 0x7f800000u | (mantissa << 13));
  return detail::bits_f32(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

constexpr std::uint16_t f32_to_bf16_bits(float value) noexcept {
  const std::uint32_t x = detail::f32_bits(value);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((x >> 16) | 0x40u);
  return static_cast<std::uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

constexpr float bf16_bits_to_f32(std::uint16_t b) noexcept {
  return detail::bits_f32(static_cast<std::uint32_t>(b) << 16);
}

// f32 -> e4m3fn. Values whose rounded magnitude exceeds 448, infinities and NaN become NaN, as
// PyTorch's float8_e4m3fn cast does; quantisers that want saturation clamp before converting.
constexpr std::uint8_t f32_to_f8e4m3_bits(float value) noexcept {
  std::uint32_t x = detail::f32_bits(value);
  const std::uint8_t sign = static_cast<std::uint8_t>((x >> 24) & 0x80u);
  x &= 0x7fffffffu;
  if (x > 0x43e80000u) return sign | 0x7fu;  // > 464 (or inf/NaN): no finite e4m3 value
  if (x < 0x3c800000u) {                     // below 2^-6: subnormal (units of 2^-9) or zero
    if (x < 0x3a800000u) return sign;        // below 2^-10: rounds to zero
    const std::uint32_t exponent = x >> 23;
    const std::uint32_t mantissa = (x & 0x7fffffu) | 0x800000u;
    return static_cast<std::uint8_t>(
        sign | detail::shift_round_even(mantissa, static_cast<int>(141 - exponent)));
  }
  return static_cast<std::uint8_t>(sign | detail::shift_round_even(x - 0x3c000000u, 20));
}

constexpr float f8e4m3_bits_to_f32(std::uint8_t b) noexcept {
  const bool negative = (b & 0x80u) != 0;
  const std::uint32_t exponent = (b >> 3) & 0xfu;
  const std::uint32_t mantissa = b & 0x7u;
  float magnitude = 0.0f;
  if (exponent == 15 && mantissa == 7) {
    magnitude = std::numeric_limits<float>::quiet_NaN();
  } else if (exponent == 0) {
    magnitude = static_cast<float>(mantissa) * 0.001953125f;  // 2^-9
  } else {
    magnitude = detail::bits_f32(((exponent + 120u) << 23) | (mantissa << 20));
  }
  return negative ? -magnitude : magnitude;
}

// ---- storage types ----------------------------------------------------------------------------

struct Half {
  std::uint16_t bits = 0;
  static constexpr Half from_float(float f) noexcept { return Half{f32_to_f16_bits(f)}; }
  constexpr float to_float() const noexcept { return f16_bits_to_f32(bits); }
};

struct BFloat16 {
  std::uint16_t bits = 0;
  static constexpr BFloat16 from_float(float f) noexcept { return BFloat16{f32_to_bf16_bits(f)}; }
  constexpr float to_float() const noexcept { return bf16_bits_to_f32(bits); }
};

struct Float8E4M3 {
  std::uint8_t bits = 0;
  static constexpr Float8E4M3 from_float(float f) noexcept {
    return Float8E4M3{f32_to_f8e4m3_bits(f)};
  }
  constexpr float to_float() const noexcept { return f8e4m3_bits_to_f32(bits); }
};

// The C++ storage type of each dtype, and back.
template <class T>
struct dtype_of;
template <>
struct dtype_of<float> {
  static constexpr DType value = DType::F32;
};
template <>
struct dtype_of<Half> {
  static constexpr DType value = DType::F16;
};
template <>
struct dtype_of<BFloat16> {
  static constexpr DType value = DType::BF16;
};
template <>
struct dtype_of<std::int8_t> {
  static constexpr DType value = DType::I8;
};
template <>
struct dtype_of<std::int32_t> {
  static constexpr DType value = DType::I32;
};
template <>
struct dtype_of<std::int64_t> {
  static constexpr DType value = DType::I64;
};
template <>
struct dtype_of<Float8E4M3> {
  static constexpr DType value = DType::F8E4M3;
};
template <class T>
inline constexpr DType dtype_of_v = dtype_of<T>::value;

// Read element `i` of a buffer of dtype `t` as f32 (integers convert exactly up to 2^24).
float load_as_f32(const void* data, DType t, std::size_t i) noexcept;
// Write `value` into element `i` of a buffer of dtype `t`, rounding (floats) or rounding to
// nearest and saturating (integers); NaN stored into an integer becomes 0.
void store_from_f32(void* data, DType t, std::size_t i, float value) noexcept;
// Convert `count` elements between dtypes. Integer-to-integer conversions are exact where the
// value fits and saturate where it does not; float-to-integer rounds to nearest, ties to even.
void convert(const void* src, DType src_type, void* dst, DType dst_type, std::size_t count);

}  // namespace porta
PORTA_API_END
