// Dequantizers of ggml's 32-element block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL), in the
// order of operations of ggml's reference code so that results are bit-identical: the integer
// code converts exactly to f32, is multiplied by the f16 scale (one rounding) and, for the types
// with a minimum, the minimum is added (a second rounding).
#include <porta/ggml_quants.hpp>

#include "gguf/block_util.hpp"
#include "gguf/blocks.hpp"

namespace porta::gguf::detail {

// Q4_0: f16 d, 16 bytes of nibbles; element j is the low nibble of byte j, element j + 16 its
// high nibble; value (q - 8) * d.
void dequantize_q4_0(const std::byte* block, float* out) {
  const float d = load_f16(block);
  const std::byte* qs = block + 2;
  for (int j = 0; j < kQK / 2; ++j) {
    const int lo = (byte_at(qs, j) & 0xF) - 8;
    const int hi = (byte_at(qs, j) >> 4) - 8;
    out[j] = static_cast<float>(lo) * d;
    out[j + kQK / 2] = static_cast<float>(hi) * d;
  }
}

// Q4_1: f16 d, f16 m, nibbles as Q4_0; value q * d + m.
void dequantize_q4_1(const std::byte* block, float* out) {
  const float d = load_f16(block);
  const float m = load_f16(block + 2);
  const std::byte* qs = block + 4;
  for (int j = 0; j < kQK / 2; ++j) {
    out[j] = static_cast<float>(byte_at(qs, j) & 0xF) * d + m;
    out[j + kQK / 2] = static_cast<float>(byte_at(qs, j) >> 4) * d + m;
  }
}

namespace {
std::uint32_t load_u32(const std::byte* p) {
  return static_cast<std::uint32_t>(byte_at(p, 0)) | static_cast<std::uint32_t>(byte_at(p, 1)) << 8 |
         static_cast<std::uint32_t>(byte_at(p, 2)) << 16 |
         static_cast<std::uint32_t>(byte_at(p, 3)) << 24;
}
// The 5-bit codes of a Q5 block: nibbles as Q4_0, the fifth bit of element i is bit i of qh.
void q5_codes(const std::byte* qh_bytes, const std::byte* qs, int* codes) {
  const std::uint32_t qh = load_u32(qh_bytes);
  for (int j = 0; j < kQK / 2; ++j) {
    codes[j] = static_cast<int>((byte_at(qs, j) & 0xF) | (((qh >> j) & 1u) << 4));
    codes[j + kQK / 2] = static_cast<int>((byte_at(qs, j) >> 4) | (((qh >> (j + 16)) & 1u) << 4));
  }
}
}  // namespace

// Q5_0: f16 d, u32 qh, 16 bytes of nibbles; value (q - 16) * d.
void dequantize_q5_0(const std::byte* block, float* out) {
  const float d = load_f16(block);
  int codes[kQK];
  q5_codes(block + 2, block + 6, codes);
  for (int j = 0; j < kQK; ++j) out[j] = static_cast<float>(codes[j] - 16) * d;
}

// Q5_1: f16 d, f16 m, u32 qh, nibbles; value q * d + m.
void dequantize_q5_1(const std::byte* block, float* out) {
  const float d = load_f16(block);
  const float m = load_f16(block + 2);
  int codes[kQK];
  q5_codes(block + 4, block + 8, codes);
  for (int j = 0; j < kQK; ++j) out[j] = static_cast<float>(codes[j]) * d + m;
}

// Q8_0: f16 d, 32 int8; value q * d.
void dequantize_q8_0(const std::byte* block, float* out) {
  const float d = load_f16(block);
  for (int j = 0; j < kQK; ++j)
    out[j] = static_cast<float>(static_cast<std::int8_t>(byte_at(block + 2, j))) * d;
}

// IQ4_NL: f16 d, nibbles as Q4_0 indexing the non-linear code book; value d * book[q].
void dequantize_iq4_nl(const std::byte* block, float* out) {
  const float d = load_f16(block);
  const std::byte* qs = block + 2;
  for (int j = 0; j < kQK / 2; ++j) {
    out[j] = d * static_cast<float>(kIq4nlValues[byte_at(qs, j) & 0xF]);
    out[j + kQK / 2] = d * static_cast<float>(kIq4nlValues[byte_at(qs, j) >> 4]);
  }
}

}  // namespace porta::gguf::detail
