// Dequantizers of ggml's 256-element super-block types (Q2_K..Q6_K, IQ4_XS), following the
// order of operations of ggml's reference code (sub-block scale = super scale x small integer,
// rounded; then value = sub-block scale x code [- sub-block min]) so that results are
// bit-identical to the format's definition.
#include <porta/ggml_quants.hpp>

#include "gguf/block_util.hpp"
#include "gguf/blocks.hpp"

namespace porta::gguf::detail {

// Q2_K: scales[16] (low nibble scale, high nibble min, per 16 elements), qs[64] (2-bit codes),
// f16 d, f16 dmin. Element e: code bits 2 * ((e % 128) / 32) of qs[32 * (e / 128) + e % 32].
void dequantize_q2_k(const std::byte* block, float* out) {
  const std::byte* scales = block;
  const std::byte* qs = block + 16;
  const float d = load_f16(block + 80);
  const float dmin = load_f16(block + 82);
  for (int e = 0; e < kQKK; e += 16) {
    const std::uint8_t sc = byte_at(scales, e / 16);
    const float dl = d * static_cast<float>(sc & 0xF);
    const float ml = dmin * static_cast<float>(sc >> 4);
    const int shift = 2 * ((e % 128) / 32);
    for (int l = 0; l < 16; ++l) {
      const int q = (byte_at(qs, 32 * (e / 128) + e % 32 + l) >> shift) & 3;
      out[e + l] = dl * static_cast<float>(q) - ml;
    }
  }
}

// Q3_K: hmask[32], qs[64], scales[12] (sixteen 6-bit scales, biased by 32), f16 d. Element e:
// low two bits as Q2_K, third bit (4 * (e / 128) + (e % 128) / 32) of hmask[e % 32]; a clear
// third bit subtracts 4.
void dequantize_q3_k(const std::byte* block, float* out) {
  const std::byte* hmask = block;
  const std::byte* qs = block + 32;
  const std::byte* packed = block + 96;
  const float d = load_f16(block + 108);
  for (int e = 0; e < kQKK; e += 16) {
    const int j = e / 16;
    const int low = j < 8 ? byte_at(packed, j) & 0xF : byte_at(packed, j - 8) >> 4;
    const int high = (byte_at(packed, 8 + j % 4) >> (2 * (j / 4))) & 3;
    const float dl = d * static_cast<float>((low | (high << 4)) - 32);
    const int shift = 2 * ((e % 128) / 32);
    const int hbit = 4 * (e / 128) + (e % 128) / 32;
    for (int l = 0; l < 16; ++l) {
      const int i = e % 32 + l;
      const int q = (byte_at(qs, 32 * (e / 128) + i) >> shift) & 3;
      const int sub = ((byte_at(hmask, i) >> hbit) & 1) ? 0 : 4;
      out[e + l] = dl * static_cast<float>(q - sub);
    }
  }
}

// Q4_K: f16 d, f16 dmin, scales[12] (eight 6-bit scale/min pairs), qs[128]. Each 64 elements
// share 32 bytes: the first 32 elements are their low nibbles, the next 32 the high nibbles.
void dequantize_q4_k(const std::byte* block, float* out) {
  const float d = load_f16(block);
  const float dmin = load_f16(block + 2);
  const std::byte* scales = block + 4;
  const std::byte* qs = block + 16;
  for (int sub = 0; sub < 8; ++sub) {
    std::uint8_t sc = 0, m = 0;
    k4_scale_min(sub, scales, sc, m);
    const float dl = d * static_cast<float>(sc);
    const float ml = dmin * static_cast<float>(m);
    const int shift = 4 * (sub % 2);
    for (int l = 0; l < 32; ++l) {
      const int q = (byte_at(qs, 32 * (sub / 2) + l) >> shift) & 0xF;
      out[32 * sub + l] = dl * static_cast<float>(q) - ml;
    }
  }
}

// Q5_K: Q4_K plus qh[32]: the fifth bit of element 32 * sub + l is bit sub of qh[l].
void dequantize_q5_k(const std::byte* block, float* out) {
  const float d = load_f16(block);
  const float dmin = load_f16(block + 2);
  const std::byte* scales = block + 4;
  const std::byte* qh = block + 16;
  const std::byte* qs = block + 48;
  for (int sub = 0; sub < 8; ++sub) {
    std::uint8_t sc = 0, m = 0;
    k4_scale_min(sub, scales, sc, m);
    const float dl = d * static_cast<float>(sc);
    const float ml = dmin * static_cast<float>(m);
    const int shift = 4 * (sub % 2);
    for (int l = 0; l < 32; ++l) {
      const int q = ((byte_at(qs, 32 * (sub / 2) + l) >> shift) & 0xF) |
                    (((byte_at(qh, l) >> sub) & 1) << 4);
      out[32 * sub + l] = dl * static_cast<float>(q) - ml;
    }
  }
}

// Q6_K: ql[128] (low nibbles), qh[64] (high two bits), int8 scales[16], f16 d. Within each half
// of 128 elements, quarter k of element l (l < 32) has its nibble in ql[l + 32 * (k % 2)]
// (high nibble when k >= 2) and its high bits at 2k of qh[l]; value d * scale * (q - 32).
void dequantize_q6_k(const std::byte* block, float* out) {
  const std::byte* ql = block;
  const std::byte* qh = block + 128;
  const std::byte* scales = block + 192;
  const float d = load_f16(block + 208);
  for (int e = 0; e < kQKK; ++e) {
    const int half = e / 128, k = (e % 128) / 32, l = e % 32;
    const int nibble = (byte_at(ql, 64 * half + l + 32 * (k % 2)) >> (4 * (k / 2))) & 0xF;
    const int high = (byte_at(qh, 32 * half + l) >> (2 * k)) & 3;
    const int q = (nibble | (high << 4)) - 32;
    const auto scale = static_cast<std::int8_t>(byte_at(scales, e / 16));
    out[e] = d * static_cast<float>(scale) * static_cast<float>(q);
  }
}

// IQ4_XS: f16 d, u16 scales_h, scales_l[4], qs[128]. Sub-block ib (32 elements) has the 6-bit
// scale (nibble ib % 2 of scales_l[ib / 2]) | (bits 2 ib of scales_h) << 4, biased by 32, and
// its 16 bytes of code-book nibbles laid out as IQ4_NL.
void dequantize_iq4_xs(const std::byte* block, float* out) {
  const float d = load_f16(block);
  const unsigned scales_h = byte_at(block, 2) | (byte_at(block, 3) << 8);
  const std::byte* scales_l = block + 4;
  const std::byte* qs = block + 8;
  for (int ib = 0; ib < 8; ++ib) {
    const int ls = ((byte_at(scales_l, ib / 2) >> (4 * (ib % 2))) & 0xF) |
                   static_cast<int>(((scales_h >> (2 * ib)) & 3u) << 4);
    const float dl = d * static_cast<float>(ls - 32);
    for (int j = 0; j < 16; ++j) {
      const std::uint8_t b = byte_at(qs, 16 * ib + j);
      out[32 * ib + j] = dl * static_cast<float>(kIq4nlValues[b & 0xF]);
      out[32 * ib + j + 16] = dl * static_cast<float>(kIq4nlValues[b >> 4]);
    }
  }
}

}  // namespace porta::gguf::detail
