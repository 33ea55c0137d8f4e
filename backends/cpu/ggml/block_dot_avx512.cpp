// block_dot.hpp's kernels with AVX-512F/BW/VL: a 16-element group is one zmm, and the 4-bit and
// 5-bit codes index 16- and 32-entry tables of the block's f32 weights (vpermps, vpermt2ps), so a
// weight costs one widening and one permute, not a convert, a multiply and a subtract.
// GCC 12's AVX-512 conversion intrinsics pass _mm512_undefined_*() as the unused merge source,
// which -Wmaybe-uninitialized reports once inlined here; nothing is read uninitialised.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <cstring>

#include <fmt/format.h>

#include <porta/error.hpp>

#include "ggml/block_dot.hpp"

namespace porta::detail::cpu::ggml {

namespace {

#define PORTA_BLOCK_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define PORTA_BLOCK_ISA_NAME "avx512"
#define PORTA_BLOCK_MAX_ROWS 8
// Every helper is forced inline: GCC otherwise calls some (w_nibbles, ...) out of line from
// the large kernels, through memory.
#define T PORTA_BLOCK_TARGET __attribute__((always_inline))

using V = __m512;

T inline V v_zero() { return _mm512_setzero_ps(); }
T inline V v_add(V a, V b) { return _mm512_add_ps(a, b); }
T inline V v_fma_x(V w, const float* x, V acc) {
  return _mm512_fmadd_ps(w, _mm512_loadu_ps(x), acc);
}
T inline void v_store(float* out, V w) { _mm512_storeu_ps(out, w); }
T inline float v_sum(V v) {
  // Zero-masked extraction: GCC 12 flags the unmasked intrinsic's undefined pass-through.
  const __m256 half =
      _mm256_add_ps(_mm512_castps512_ps256(v),
                    _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xFF, _mm512_castps_pd(v), 1)));
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(half), _mm256_extractf128_ps(half, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}
T inline V w_int8(__m128i q, float s) {
  return _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(0xFFFF, _mm512_maskz_cvtepi8_epi32(0xFFFF, q)),
                       _mm512_set1_ps(s));
}

T inline __m512 iota16() {
  return _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}

struct Book16 {
  __m512 table;
};
T inline Book16 book16_linear(float a, float b, int offset) {
  const __m512 q = _mm512_sub_ps(iota16(), _mm512_set1_ps(static_cast<float>(offset)));
  return {_mm512_sub_ps(_mm512_mul_ps(q, _mm512_set1_ps(a)), _mm512_set1_ps(b))};
}
T inline Book16 book16_values(float d, const float* values) {
  return {_mm512_mul_ps(_mm512_set1_ps(d), _mm512_loadu_ps(values))};
}

struct Book32 {
  __m512 low, high;  // codes 0..15 and 16..31
};
T inline Book32 book32_linear(float a, float b, int offset) {
  const __m512 q = _mm512_sub_ps(iota16(), _mm512_set1_ps(static_cast<float>(offset)));
  const __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
  return {_mm512_sub_ps(_mm512_mul_ps(q, va), vb),
          _mm512_sub_ps(_mm512_mul_ps(_mm512_add_ps(q, _mm512_set1_ps(16.0f)), va), vb)};
}

// vpermps reads the low four bits of each index, so the low nibble needs no mask.
T inline void w_nibbles(const Book16& lo, const Book16& hi, __m128i bytes, V& w_lo, V& w_hi) {
  const __m512i idx = _mm512_maskz_cvtepu8_epi32(0xFFFF, bytes);
  w_lo = _mm512_permutexvar_ps(idx, lo.table);
  w_hi = _mm512_permutexvar_ps(_mm512_srli_epi32(idx, 4), hi.table);
}

T inline void w_nibbles5(const Book32& lo, const Book32& hi, __m128i bytes, std::uint32_t lo_bits,
                         std::uint32_t hi_bits, V& w_lo, V& w_hi) {
  const __m512i idx = _mm512_maskz_cvtepu8_epi32(0xFFFF, bytes);
  const __m512i sixteen = _mm512_set1_epi32(16);
  const __m512i lo_code = _mm512_and_si512(idx, _mm512_set1_epi32(15));
  const __m512i hi_code = _mm512_srli_epi32(idx, 4);
  w_lo = _mm512_permutex2var_ps(
      lo.low, _mm512_mask_or_epi32(lo_code, static_cast<__mmask16>(lo_bits), lo_code, sixteen),
      lo.high);
  w_hi = _mm512_permutex2var_ps(
      hi.low, _mm512_mask_or_epi32(hi_code, static_cast<__mmask16>(hi_bits), hi_code, sixteen),
      hi.high);
}

// 16 codes widened to one 32-bit lane each, for the 2- and 3-bit types.
using Idx = __m512i;
T inline Idx widen(__m128i bytes) { return _mm512_maskz_cvtepu8_epi32(0xFFFF, bytes); }
T inline Idx field(Idx v, int shift, int mask) {
  return _mm512_and_si512(_mm512_srl_epi32(v, _mm_cvtsi32_si128(shift)), _mm512_set1_epi32(mask));
}
T inline Idx with_bit(Idx v, std::uint32_t lanes, int value) {
  return _mm512_mask_or_epi32(v, static_cast<__mmask16>(lanes), v, _mm512_set1_epi32(value));
}
T inline V lookup16(const Book16& book, Idx codes) {
  return _mm512_permutexvar_ps(codes, book.table);
}

T inline std::uint32_t byte_bits(__m128i bytes, int bit) {
  return _cvtmask16_u32(_mm_test_epi8_mask(bytes, _mm_set1_epi8(static_cast<char>(1 << bit))));
}

#undef T
#include "ggml/block_kernels.inl"

}  // namespace

PORTA_BLOCK_TARGET void matmul_blocks_avx512(gguf::GgmlType type, const std::byte* w,
                                             std::size_t row_bytes, std::int64_t n_rows,
                                             std::int64_t k, const float* x, std::int64_t ldx,
                                             std::int64_t rows, float* y, std::int64_t ldy) {
  matmul_blocks(type, w, row_bytes, n_rows, k, x, ldx, rows, y, ldy);
}

PORTA_BLOCK_TARGET void dequantize_blocks_avx512(gguf::GgmlType type, const std::byte* w,
                                                 std::size_t row_bytes, std::int64_t n_rows,
                                                 std::int64_t k, float* out, std::int64_t ldo) {
  dequantize_blocks(type, w, row_bytes, n_rows, k, out, ldo);
}

}  // namespace porta::detail::cpu::ggml
