// An independent scalar definition of each ggml block type, written element by element from the
// format's description (ggml-common.h's block structs and ggml-quants.c's reference
// dequantizers): value(type, block, i) is element i of one block. The library's dequantizers
// work a block at a time in loops; these recompute every element from its own bit positions.
#pragma once

#include <cstdint>
#include <cstring>

#include <porta/dtype.hpp>
#include <porta/ggml_quants.hpp>

// The switches below cover the block types and leave the other ggml ids to `default` (the
// honest answer for a file-format enum of dozens of values, as lib/CMakeLists.txt says for the
// reader), so -Wswitch-enum is off for this header.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wswitch-enum"

namespace porta::gguf::test {

inline float ref_f16(const unsigned char* p) {
  const unsigned bits = p[0] | (p[1] << 8);
  const unsigned sign = (bits >> 15) & 1, exponent = (bits >> 10) & 31, mantissa = bits & 1023;
  std::uint32_t out = 0;
  if (exponent == 31) {
    out = (sign << 31) | 0x7f800000u | (mantissa << 13);
  } else if (exponent == 0) {
    float v = static_cast<float>(mantissa) / 16777216.0f;  // mantissa * 2^-24, exact
    return sign ? -v : v;
  } else {
    out = (sign << 31) | ((exponent - 15 + 127) << 23) | (mantissa << 13);
  }
  float f;
  std::memcpy(&f, &out, 4);
  return f;
}

inline const std::int8_t kBook[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                      1,    13,   25,  38,  53,  69,  89,  113};

// Nibble of element i (0..31) in a 16-byte array where element j is the low nibble of byte j
// and element j + 16 the high nibble.
inline int split_nibble(const unsigned char* qs, int i) {
  return i < 16 ? (qs[i] & 15) : (qs[i - 16] >> 4);
}

// Q3_K's sixteen 6-bit scales as ggml unpacks them: four little-endian words, masks and shifts.
inline int q3k_scale(const unsigned char* s12, int j) {
  std::uint32_t aux[4];
  std::memcpy(aux, s12, 12);
  const std::uint32_t k1 = 0x03030303u, k2 = 0x0f0f0f0fu, tmp = aux[2];
  aux[2] = ((aux[0] >> 4) & k2) | (((tmp >> 4) & k1) << 4);
  aux[3] = ((aux[1] >> 4) & k2) | (((tmp >> 6) & k1) << 4);
  aux[0] = (aux[0] & k2) | (((tmp >> 0) & k1) << 4);
  aux[1] = (aux[1] & k2) | (((tmp >> 2) & k1) << 4);
  std::int8_t s[16];
  std::memcpy(s, aux, 16);
  return s[j] - 32;
}

// Q4_K/Q5_K scale (which = 0) or min (which = 1) of sub-block j, from the packing's description:
// 6 bits; for j < 4 the low six bits of byte j (scales) / j + 4 (mins); for j >= 4 a nibble of
// byte j + 4 (low: scale, high: min) below the top two bits of byte j - 4 (scale) / j (min).
inline int k4_field(const unsigned char* s12, int j, int which) {
  if (j < 4) return s12[j + 4 * which] & 63;
  const int low = which == 0 ? (s12[j + 4] & 15) : (s12[j + 4] >> 4);
  const int top = s12[which == 0 ? j - 4 : j] >> 6;
  return low + 16 * top;
}

inline float value(GgmlType type, const unsigned char* b, int i) {
  switch (type) {
    case GgmlType::Q4_0: return static_cast<float>(split_nibble(b + 2, i) - 8) * ref_f16(b);
    case GgmlType::Q4_1:
      return static_cast<float>(split_nibble(b + 4, i)) * ref_f16(b) + ref_f16(b + 2);
    case GgmlType::Q5_0: {
      const int h = (b[2 + i / 8] >> (i % 8)) & 1;  // bit i of the little-endian u32 qh
      return static_cast<float>(split_nibble(b + 6, i) + 16 * h - 16) * ref_f16(b);
    }
    case GgmlType::Q5_1: {
      const int h = (b[4 + i / 8] >> (i % 8)) & 1;
      return static_cast<float>(split_nibble(b + 8, i) + 16 * h) * ref_f16(b) + ref_f16(b + 2);
    }
    case GgmlType::Q8_0: return static_cast<float>(static_cast<std::int8_t>(b[2 + i])) * ref_f16(b);
    case GgmlType::IQ4_NL: return ref_f16(b) * static_cast<float>(kBook[split_nibble(b + 2, i)]);
    case GgmlType::Q2_K: {
      const int sc = b[i / 16];
      const float dl = ref_f16(b + 80) * static_cast<float>(sc % 16);
      const float ml = ref_f16(b + 82) * static_cast<float>(sc / 16);
      const int q = (b[16 + 32 * (i / 128) + i % 32] >> (2 * ((i % 128) / 32))) % 4;
      return dl * static_cast<float>(q) - ml;
    }
    case GgmlType::Q3_K: {
      const float dl = ref_f16(b + 108) * static_cast<float>(q3k_scale(b + 96, i / 16));
      const int low = (b[32 + 32 * (i / 128) + i % 32] >> (2 * ((i % 128) / 32))) % 4;
      const int high = (b[i % 32] >> (4 * (i / 128) + (i % 128) / 32)) % 2;
      return dl * static_cast<float>(low - (high ? 0 : 4));
    }
    case GgmlType::Q4_K:
    case GgmlType::Q5_K: {
      const bool five = type == GgmlType::Q5_K;
      const int sub = i / 32;
      const float dl = ref_f16(b) * static_cast<float>(k4_field(b + 4, sub, 0));
      const float ml = ref_f16(b + 2) * static_cast<float>(k4_field(b + 4, sub, 1));
      const unsigned char byte = b[(five ? 48 : 16) + 32 * (i / 64) + i % 32];
      int q = (i % 64) < 32 ? byte % 16 : byte / 16;
      if (five) q += 16 * ((b[16 + i % 32] >> sub) % 2);
      return dl * static_cast<float>(q) - ml;
    }
    case GgmlType::Q6_K: {
      const int half = i / 128, k = (i % 128) / 32, l = i % 32;
      const unsigned char lo = b[64 * half + l + 32 * (k % 2)];
      const int nibble = k < 2 ? lo % 16 : lo / 16;
      const int high = (b[128 + 32 * half + l] >> (2 * k)) % 4;
      const auto scale = static_cast<std::int8_t>(b[192 + i / 16]);
      return ref_f16(b + 208) * static_cast<float>(scale) * static_cast<float>(nibble + 16 * high - 32);
    }
    case GgmlType::IQ4_XS: {
      const int ib = i / 32, j = i % 32;
      const unsigned scales_h = b[2] | (b[3] << 8);
      const int ls = ((b[4 + ib / 2] >> (4 * (ib % 2))) % 16) + 16 * ((scales_h >> (2 * ib)) % 4);
      const float dl = ref_f16(b) * static_cast<float>(ls - 32);
      return dl * static_cast<float>(kBook[split_nibble(b + 8 + 16 * ib, j)]);
    }
    case GgmlType::F32: {
      float f;
      std::memcpy(&f, b, 4);
      return f;
    }
    case GgmlType::F16: return ref_f16(b);
    case GgmlType::BF16: {
      const std::uint32_t bits = static_cast<std::uint32_t>(b[0] | (b[1] << 8)) << 16;
      float f;
      std::memcpy(&f, &bits, 4);
      return f;
    }
    default: return 0;
  }
}

// Byte offsets of each type's f16 scale fields inside one block.
inline std::vector<int> f16_fields(GgmlType type) {
  switch (type) {
    case GgmlType::Q4_0:
    case GgmlType::Q5_0:
    case GgmlType::Q8_0:
    case GgmlType::IQ4_NL:
    case GgmlType::IQ4_XS: return {0};
    case GgmlType::Q4_1:
    case GgmlType::Q5_1:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K: return {0, 2};
    case GgmlType::Q2_K: return {80, 82};
    case GgmlType::Q3_K: return {108};
    case GgmlType::Q6_K: return {208};
    default: return {};
  }
}

}  // namespace porta::gguf::test

#pragma GCC diagnostic pop
