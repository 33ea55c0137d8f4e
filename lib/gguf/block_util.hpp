// Little helpers shared by the ggml block (de)quantizers: unaligned little-endian loads and
// stores of the f16 scales, and the 6-bit scale packing of the K-quants.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include <porta/dtype.hpp>

namespace porta::gguf::detail {

inline constexpr int kQK = 32;    // elements per block of the 32-element types
inline constexpr int kQKK = 256;  // elements per K-quant super-block

inline std::uint8_t byte_at(const std::byte* p, std::size_t i) {
  return static_cast<std::uint8_t>(p[i]);
}
inline float load_f16(const std::byte* p) {
  std::uint16_t bits = 0;
  std::memcpy(&bits, p, 2);
  return f16_bits_to_f32(bits);
}
inline void store_f16(std::byte* p, float value) {
  const std::uint16_t bits = f32_to_f16_bits(value);
  std::memcpy(p, &bits, 2);
}
// The f32 value an f16 store of `value` reads back as: quantizers compute with the stored scale.
inline float through_f16(float value) { return f16_bits_to_f32(f32_to_f16_bits(value)); }

// Scale and min j (0..7) of Q4_K/Q5_K's 12 packed bytes: 6 bits each; j < 4 sit in the low six
// bits of bytes j and j + 4, j >= 4 in the nibbles of byte j + 4 with their top two bits in the
// spare high bits of bytes j - 4 and j.
inline void k4_scale_min(int j, const std::byte* q, std::uint8_t& scale, std::uint8_t& min) {
  const auto b = [q](int i) { return static_cast<std::uint8_t>(q[i]); };
  if (j < 4) {
    scale = b(j) & 63;
    min = b(j + 4) & 63;
  } else {
    scale = static_cast<std::uint8_t>((b(j + 4) & 0xF) | ((b(j - 4) >> 6) << 4));
    min = static_cast<std::uint8_t>((b(j + 4) >> 4) | ((b(j) >> 6) << 4));
  }
}

// Round half away from zero, as C's roundf (the quantizers' rounding).
inline int round_int(float x) { return static_cast<int>(std::lround(x)); }
inline int clamp_code(float x, int lo, int hi) { return std::clamp(round_int(x), lo, hi); }
inline float inverse(float d) { return d != 0 ? 1.0f / d : 0.0f; }

// The value of largest magnitude, with its sign: the quantizers map it onto the most negative
// code so that the full code range is used.
inline float signed_absmax(const float* x, int n) {
  float best = 0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > std::fabs(best)) best = x[i];
  return best;
}

}  // namespace porta::gguf::detail
