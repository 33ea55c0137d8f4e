// Round-to-nearest quantizers of ggml's 256-element super-block types. Each sub-block gets the
// scale (and minimum) its range asks for; those are quantized against the super-block's f16
// scales into the few bits the format gives them; the values are then rounded to the nearest
// code under the sub-block scale as the dequantizer will compute it.
#include <algorithm>
#include <cmath>
#include <cstring>

#include <porta/ggml_quants.hpp>

#include "gguf/block_util.hpp"
#include "gguf/blocks.hpp"

namespace porta::gguf::detail {

namespace {

// Per sub-block of `size` elements: scale = range / (levels - 1) and min = -min(0, lowest), so
// that x = scale * q - min with q in [0, levels).
void ranges(const float* x, int subs, int size, int levels, float* scale, float* min) {
  for (int s = 0; s < subs; ++s) {
    const float* v = x + s * size;
    const float lo = std::min(0.0f, *std::min_element(v, v + size));
    const float hi = *std::max_element(v, v + size);
    scale[s] = (hi - lo) / static_cast<float>(levels - 1);
    min[s] = -lo;
  }
}

// Quantizes non-negative per-sub-block numbers to `bits`-bit integers against one f16 scale.
float quantize_scales(const float* values, int n, int max_code, int* codes) {
  const float top = *std::max_element(values, values + n);
  const float d = through_f16(top / static_cast<float>(max_code));
  const float id = inverse(d);
  for (int i = 0; i < n; ++i) codes[i] = clamp_code(values[i] * id, 0, max_code);
  return d;
}

// Q4_K/Q5_K's packing of eight 6-bit scales and mins into 12 bytes (see k4_scale_min).
void pack_k4_scales(const int* sc, const int* m, std::byte* out) {
  std::uint8_t b[12] = {};
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      b[j] = static_cast<std::uint8_t>(b[j] | (sc[j] & 63));
      b[j + 4] = static_cast<std::uint8_t>(b[j + 4] | (m[j] & 63));
    } else {
      b[j + 4] = static_cast<std::uint8_t>((sc[j] & 0xF) | ((m[j] & 0xF) << 4));
      b[j - 4] = static_cast<std::uint8_t>(b[j - 4] | ((sc[j] >> 4) << 6));
      b[j] = static_cast<std::uint8_t>(b[j] | ((m[j] >> 4) << 6));
    }
  }
  std::memcpy(out, b, 12);
}

// Codes for x = dl * q - ml, q in [0, levels).
int affine_code(float x, float dl, float ml, int levels) {
  return clamp_code((x + ml) * inverse(dl), 0, levels - 1);
}

// Q4_K and Q5_K: eight sub-blocks of 32 with 6-bit scales and mins.
void quantize_k4_codes(const float* x, int levels, std::byte* head, int* codes) {
  float scale[8], min[8];
  ranges(x, 8, 32, levels, scale, min);
  int sc[8], m[8];
  const float d = quantize_scales(scale, 8, 63, sc);
  const float dmin = quantize_scales(min, 8, 63, m);
  store_f16(head, d);
  store_f16(head + 2, dmin);
  pack_k4_scales(sc, m, head + 4);
  for (int s = 0; s < 8; ++s) {
    const float dl = d * static_cast<float>(sc[s]);
    const float ml = dmin * static_cast<float>(m[s]);
    for (int l = 0; l < 32; ++l) codes[32 * s + l] = affine_code(x[32 * s + l], dl, ml, levels);
  }
}

// Signed sub-block scales (x = scale * q, q in [lo, hi]) quantized to `bits`-bit signed
// integers against one f16 super scale: returns the super scale, fills the integers.
float signed_scales(const float* x, int subs, int size, float code_at_extreme, int max_int,
                    int* ints) {
  float scale[16];
  float top = 0;
  for (int s = 0; s < subs; ++s) {
    scale[s] = signed_absmax(x + s * size, size) / code_at_extreme;
    top = std::max(top, std::fabs(scale[s]));
  }
  const float d = through_f16(top / static_cast<float>(max_int));
  const float id = inverse(d);
  for (int s = 0; s < subs; ++s) ints[s] = clamp_code(scale[s] * id, -max_int - 1, max_int);
  return d;
}

}  // namespace

void quantize_q2_k(const float* x, std::byte* block) {
  float scale[16], min[16];
  ranges(x, 16, 16, 4, scale, min);
  int sc[16], m[16];
  const float d = quantize_scales(scale, 16, 15, sc);
  const float dmin = quantize_scales(min, 16, 15, m);
  std::memset(block, 0, 84);
  for (int s = 0; s < 16; ++s) block[s] = static_cast<std::byte>(sc[s] | (m[s] << 4));
  for (int e = 0; e < kQKK; ++e) {
    const int s = e / 16;
    const int q = affine_code(x[e], d * static_cast<float>(sc[s]),
                              dmin * static_cast<float>(m[s]), 4);
    std::byte& target = block[16 + 32 * (e / 128) + e % 32];
    target |= static_cast<std::byte>(q << (2 * ((e % 128) / 32)));
  }
  store_f16(block + 80, d);
  store_f16(block + 82, dmin);
}

void quantize_q3_k(const float* x, std::byte* block) {
  int ints[16];
  // The extreme value maps to code -4.
  const float d = signed_scales(x, 16, 16, -4.0f, 31, ints);
  std::memset(block, 0, 110);
  std::byte* hmask = block;
  std::byte* qs = block + 32;
  std::byte* packed = block + 96;
  for (int j = 0; j < 16; ++j) {
    const int u = ints[j] + 32;  // 0..63
    if (j < 8)
      packed[j] |= static_cast<std::byte>(u & 0xF);
    else
      packed[j - 8] |= static_cast<std::byte>((u & 0xF) << 4);
    packed[8 + j % 4] |= static_cast<std::byte>((u >> 4) << (2 * (j / 4)));
  }
  for (int e = 0; e < kQKK; ++e) {
    const float dl = d * static_cast<float>(ints[e / 16]);
    const int u = clamp_code(x[e] * inverse(dl), -4, 3) + 4;  // 0..7
    qs[32 * (e / 128) + e % 32] |= static_cast<std::byte>((u & 3) << (2 * ((e % 128) / 32)));
    if (u >= 4)
      hmask[e % 32] |= static_cast<std::byte>(1 << (4 * (e / 128) + (e % 128) / 32));
  }
  store_f16(block + 108, d);
}

void quantize_q4_k(const float* x, std::byte* block) {
  int codes[kQKK];
  quantize_k4_codes(x, 16, block, codes);
  std::byte* qs = block + 16;
  for (int i = 0; i < 128; ++i) {
    const int chunk = i / 32, l = i % 32;
    qs[i] = static_cast<std::byte>(codes[64 * chunk + l] | (codes[64 * chunk + 32 + l] << 4));
  }
}

void quantize_q5_k(const float* x, std::byte* block) {
  int codes[kQKK];
  quantize_k4_codes(x, 32, block, codes);
  std::byte* qh = block + 16;
  std::byte* qs = block + 48;
  std::memset(qh, 0, 32);
  for (int i = 0; i < 128; ++i) {
    const int chunk = i / 32, l = i % 32;
    qs[i] = static_cast<std::byte>((codes[64 * chunk + l] & 0xF) |
                                   ((codes[64 * chunk + 32 + l] & 0xF) << 4));
  }
  for (int e = 0; e < kQKK; ++e)
    qh[e % 32] |= static_cast<std::byte>(((codes[e] >> 4) & 1) << (e / 32));
}

void quantize_q6_k(const float* x, std::byte* block) {
  int ints[16];
  const float d = signed_scales(x, 16, 16, -32.0f, 127, ints);
  std::memset(block, 0, 210);
  std::byte* ql = block;
  std::byte* qh = block + 128;
  for (int s = 0; s < 16; ++s)
    block[192 + s] = static_cast<std::byte>(static_cast<std::int8_t>(ints[s]));
  for (int e = 0; e < kQKK; ++e) {
    const float dl = d * static_cast<float>(ints[e / 16]);
    const int u = clamp_code(x[e] * inverse(dl), -32, 31) + 32;  // 0..63
    const int half = e / 128, k = (e % 128) / 32, l = e % 32;
    ql[64 * half + l + 32 * (k % 2)] |= static_cast<std::byte>((u & 0xF) << (4 * (k / 2)));
    qh[32 * half + l] |= static_cast<std::byte>((u >> 4) << (2 * k));
  }
  store_f16(block + 208, d);
}

void quantize_iq4_xs(const float* x, std::byte* block) {
  int ints[8];
  const float d = signed_scales(x, 8, 32, -127.0f, 31, ints);
  std::memset(block, 0, 136);
  store_f16(block, d);
  unsigned scales_h = 0;
  for (int ib = 0; ib < 8; ++ib) {
    const int ls = ints[ib] + 32;
    block[4 + ib / 2] |= static_cast<std::byte>((ls & 0xF) << (4 * (ib % 2)));
    scales_h |= static_cast<unsigned>(ls >> 4) << (2 * ib);
    const float dl = d * static_cast<float>(ints[ib]);
    for (int j = 0; j < 16; ++j) {
      const int lo = iq4_nearest_code(x[32 * ib + j], dl);
      const int hi = iq4_nearest_code(x[32 * ib + j + 16], dl);
      block[8 + 16 * ib + j] = static_cast<std::byte>(lo | (hi << 4));
    }
  }
  block[2] = static_cast<std::byte>(scales_h & 0xFF);
  block[3] = static_cast<std::byte>(scales_h >> 8);
}

}  // namespace porta::gguf::detail
