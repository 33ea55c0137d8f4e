// Round-to-nearest quantizers of ggml's 32-element block types. They pick each block's scale
// from its extreme values the way ggml's reference quantizers do and round every value to the
// nearest code under the scale as stored (f16), so dequantizing gives the closest value the
// block can represent with that scale.
#include <algorithm>
#include <cmath>
#include <cstring>

#include <porta/ggml_quants.hpp>

#include "gguf/block_util.hpp"
#include "gguf/blocks.hpp"

namespace porta::gguf::detail {

namespace {

// Writes 32 codes (0..15) as Q4_0-ordered nibbles: element j low, element j + 16 high.
void pack_nibbles(const int* codes, std::byte* qs) {
  for (int j = 0; j < kQK / 2; ++j)
    qs[j] = static_cast<std::byte>(codes[j] | (codes[j + kQK / 2] << 4));
}

// Writes 5-bit codes: nibbles as Q4_0, the fifth bits into the u32 qh (bit i for element i).
void pack_q5(const int* codes, std::byte* qh, std::byte* qs) {
  std::uint32_t high = 0;
  int low[kQK];
  for (int i = 0; i < kQK; ++i) {
    low[i] = codes[i] & 0xF;
    high |= static_cast<std::uint32_t>((codes[i] >> 4) & 1) << i;
  }
  for (int b = 0; b < 4; ++b) qh[b] = static_cast<std::byte>((high >> (8 * b)) & 0xFF);
  pack_nibbles(low, qs);
}

// Codes 0..levels-1 for x = q * d + m with m = min(x) and d from the range.
void min_scale_codes(const float* x, int levels, float& d, float& m, int* codes) {
  const float lo = *std::min_element(x, x + kQK);
  const float hi = *std::max_element(x, x + kQK);
  d = through_f16((hi - lo) / static_cast<float>(levels - 1));
  m = through_f16(lo);
  const float id = inverse(d);
  for (int i = 0; i < kQK; ++i) codes[i] = clamp_code((x[i] - m) * id, 0, levels - 1);
}

}  // namespace

void quantize_q4_0(const float* x, std::byte* block) {
  // The extreme value maps to code 0 (-8), so the full negative range is used.
  const float d = through_f16(signed_absmax(x, kQK) / -8.0f);
  const float id = inverse(d);
  int codes[kQK];
  for (int i = 0; i < kQK; ++i) codes[i] = clamp_code(x[i] * id, -8, 7) + 8;
  store_f16(block, d);
  pack_nibbles(codes, block + 2);
}

void quantize_q4_1(const float* x, std::byte* block) {
  float d = 0, m = 0;
  int codes[kQK];
  min_scale_codes(x, 16, d, m, codes);
  store_f16(block, d);
  store_f16(block + 2, m);
  pack_nibbles(codes, block + 4);
}

void quantize_q5_0(const float* x, std::byte* block) {
  const float d = through_f16(signed_absmax(x, kQK) / -16.0f);
  const float id = inverse(d);
  int codes[kQK];
  for (int i = 0; i < kQK; ++i) codes[i] = clamp_code(x[i] * id, -16, 15) + 16;
  store_f16(block, d);
  pack_q5(codes, block + 2, block + 6);
}

void quantize_q5_1(const float* x, std::byte* block) {
  float d = 0, m = 0;
  int codes[kQK];
  min_scale_codes(x, 32, d, m, codes);
  store_f16(block, d);
  store_f16(block + 2, m);
  pack_q5(codes, block + 4, block + 8);
}

void quantize_q8_0(const float* x, std::byte* block) {
  const float d = through_f16(std::fabs(signed_absmax(x, kQK)) / 127.0f);
  const float id = inverse(d);
  store_f16(block, d);
  for (int i = 0; i < kQK; ++i)
    block[2 + i] = static_cast<std::byte>(static_cast<std::int8_t>(clamp_code(x[i] * id, -127, 127)));
}

namespace {
// The code-book index whose value times `d` is nearest to x.
int nearest_iq4(float x, float d) {
  int best = 0;
  float best_error = INFINITY;
  for (int k = 0; k < 16; ++k) {
    const float error = std::fabs(x - d * static_cast<float>(kIq4nlValues[k]));
    if (error < best_error) {
      best_error = error;
      best = k;
    }
  }
  return best;
}
}  // namespace

void quantize_iq4_nl(const float* x, std::byte* block) {
  // The extreme value maps onto the book's -127.
  const float d = through_f16(signed_absmax(x, kQK) / -127.0f);
  int codes[kQK];
  for (int i = 0; i < kQK; ++i) codes[i] = nearest_iq4(x[i], d);
  store_f16(block, d);
  pack_nibbles(codes, block + 2);
}

// Shared with quantize_k.cpp's IQ4_XS.
int iq4_nearest_code(float x, float d) { return nearest_iq4(x, d); }

}  // namespace porta::gguf::detail
