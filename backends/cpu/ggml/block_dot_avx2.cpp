// block_dot.hpp's kernels with AVX2, FMA and F16C: a 16-element group is two ymm. Codes are
// converted and scaled with the dequantizer's operations (iq4's non-linear book is looked up).
#include <immintrin.h>

#include <cstring>

#include <fmt/format.h>

#include <porta/error.hpp>

#include "ggml/block_dot.hpp"

namespace porta::detail::cpu::ggml {

namespace {

#define PORTA_BLOCK_TARGET __attribute__((target("avx2,fma,f16c")))
#define PORTA_BLOCK_ISA_NAME "avx2"
#define PORTA_BLOCK_MAX_ROWS 4
// Every helper is forced inline: GCC otherwise calls some (w_nibbles, ...) out of line from
// the large kernels, through memory.
#define T PORTA_BLOCK_TARGET __attribute__((always_inline))

struct V {
  __m256 a, b;  // lanes 0..7 and 8..15
};

T inline V v_zero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
T inline V v_add(V x, V y) { return {_mm256_add_ps(x.a, y.a), _mm256_add_ps(x.b, y.b)}; }
T inline V v_fma_x(V w, const float* x, V acc) {
  return {_mm256_fmadd_ps(w.a, _mm256_loadu_ps(x), acc.a),
          _mm256_fmadd_ps(w.b, _mm256_loadu_ps(x + 8), acc.b)};
}
T inline void v_store(float* out, V w) {
  _mm256_storeu_ps(out, w.a);
  _mm256_storeu_ps(out + 8, w.b);
}
T inline float v_sum(V v) {
  const __m256 both = _mm256_add_ps(v.a, v.b);
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(both), _mm256_extractf128_ps(both, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}
T inline V w_int8(__m128i q, float s) {
  const __m256 scale = _mm256_set1_ps(s);
  return {_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), scale),
          _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q, 8))), scale)};
}

// w(q) = (float(q) − offset)·a − b, the dequantizer's operations: the 5-bit books, and the
// linear 4-bit ones.
struct Linear {
  __m256 a, b, offset;
};
T inline Linear linear(float a, float b, int offset) {
  return {_mm256_set1_ps(a), _mm256_set1_ps(b), _mm256_set1_ps(static_cast<float>(offset))};
}
// The weights of eight codes, one per 32-bit lane.
T inline __m256 linear_weights(const Linear& l, __m256i codes) {
  const __m256 q = _mm256_sub_ps(_mm256_cvtepi32_ps(codes), l.offset);
  return _mm256_sub_ps(_mm256_mul_ps(q, l.a), l.b);
}

// A linear book is computed from the code (a convert, a multiply and a subtract, all off the
// shuffle port); a book of values (iq4) is looked up: AVX2 has no 16-entry permute, so two
// 8-entry ones and a blend on the code's top bit. `table` is a constant once inlined.
struct Book16 {
  bool table;
  __m256 low, high;  // table: the entries of codes 0..7 and 8..15
  Linear line;
};
T inline Book16 book16_linear(float a, float b, int offset) {
  const __m256 none = _mm256_setzero_ps();
  return {false, none, none, linear(a, b, offset)};
}
T inline Book16 book16_values(float d, const float* values) {
  const __m256 vd = _mm256_set1_ps(d);
  return {true, _mm256_mul_ps(vd, _mm256_loadu_ps(values)),
          _mm256_mul_ps(vd, _mm256_loadu_ps(values + 8)), linear(0.0f, 0.0f, 0)};
}
// The weights of eight codes (bits 0..3 of each lane; higher bits ignored).
T inline __m256 lookup(const Book16& book, __m256i codes) {
  if (book.table)
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(book.low, codes),
                            _mm256_permutevar8x32_ps(book.high, codes),
                            _mm256_castsi256_ps(_mm256_slli_epi32(codes, 28)));
  return linear_weights(book.line, _mm256_and_si256(codes, _mm256_set1_epi32(15)));
}

T inline void w_nibbles(const Book16& lo, const Book16& hi, __m128i bytes, V& w_lo, V& w_hi) {
  const __m256i a = _mm256_cvtepu8_epi32(bytes), b = _mm256_cvtepu8_epi32(_mm_srli_si128(bytes, 8));
  w_lo = {lookup(lo, a), lookup(lo, b)};
  w_hi = {lookup(hi, _mm256_srli_epi32(a, 4)), lookup(hi, _mm256_srli_epi32(b, 4))};
}

// 16 codes widened to one 32-bit lane each, for the 2- and 3-bit types.
struct Idx {
  __m256i a, b;
};
T inline Idx widen(__m128i bytes) {
  return {_mm256_cvtepu8_epi32(bytes), _mm256_cvtepu8_epi32(_mm_srli_si128(bytes, 8))};
}
T inline Idx field(Idx v, int shift, int mask) {
  const __m128i count = _mm_cvtsi32_si128(shift);
  const __m256i m = _mm256_set1_epi32(mask);
  return {_mm256_and_si256(_mm256_srl_epi32(v.a, count), m),
          _mm256_and_si256(_mm256_srl_epi32(v.b, count), m)};
}
// `value` or-ed into lane i where bit i of `lanes` is set.
T inline __m256i or_where(__m256i v, std::uint32_t lanes, int value) {
  const __m256i lane_bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256i set = _mm256_cmpeq_epi32(
      _mm256_and_si256(_mm256_set1_epi32(static_cast<int>(lanes)), lane_bit), lane_bit);
  return _mm256_or_si256(v, _mm256_and_si256(set, _mm256_set1_epi32(value)));
}
T inline Idx with_bit(Idx v, std::uint32_t lanes, int value) {
  return {or_where(v.a, lanes, value), or_where(v.b, lanes >> 8, value)};
}
T inline V lookup16(const Book16& book, Idx codes) {
  return {lookup(book, codes.a), lookup(book, codes.b)};
}

using Book32 = Linear;
T inline Book32 book32_linear(float a, float b, int offset) { return linear(a, b, offset); }
// 16 bytes, byte i 16 where bit i of `bits` is set, else 0.
T inline __m128i fifth_bits(std::uint32_t bits) {
  const __m128i spread =
      _mm_shuffle_epi8(_mm_cvtsi32_si128(static_cast<int>(bits)),
                       _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1));
  const __m128i bit = _mm_setr_epi8(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
  return _mm_and_si128(_mm_cmpeq_epi8(_mm_and_si128(spread, bit), bit), _mm_set1_epi8(16));
}
// The weights of eight 5-bit codes, one per byte.
T inline __m256 w_codes5(const Book32& book, __m128i codes) {
  return linear_weights(book, _mm256_cvtepu8_epi32(codes));
}
// The codes are put together as bytes, 16 at a time, before they are widened.
T inline void w_nibbles5(const Book32& lo, const Book32& hi, __m128i bytes, std::uint32_t lo_bits,
                         std::uint32_t hi_bits, V& w_lo, V& w_hi) {
  const __m128i nibble = _mm_set1_epi8(0x0F);
  const __m128i lo_codes = _mm_or_si128(_mm_and_si128(bytes, nibble), fifth_bits(lo_bits));
  const __m128i hi_codes =
      _mm_or_si128(_mm_and_si128(_mm_srli_epi16(bytes, 4), nibble), fifth_bits(hi_bits));
  w_lo = {w_codes5(lo, lo_codes), w_codes5(lo, _mm_srli_si128(lo_codes, 8))};
  w_hi = {w_codes5(hi, hi_codes), w_codes5(hi, _mm_srli_si128(hi_codes, 8))};
}

T inline std::uint32_t byte_bits(__m128i bytes, int bit) {
  // Shifting 16-bit lanes left by 7 - bit puts bit `bit` of each byte at its top.
  return static_cast<std::uint32_t>(
      _mm_movemask_epi8(_mm_sll_epi16(bytes, _mm_cvtsi32_si128(7 - bit))));
}

#undef T
#include "ggml/block_kernels.inl"

}  // namespace

PORTA_BLOCK_TARGET void matmul_blocks_avx2(gguf::GgmlType type, const std::byte* w,
                                           std::size_t row_bytes, std::int64_t n_rows,
                                           std::int64_t k, const float* x, std::int64_t ldx,
                                           std::int64_t rows, float* y, std::int64_t ldy) {
  matmul_blocks(type, w, row_bytes, n_rows, k, x, ldx, rows, y, ldy);
}

PORTA_BLOCK_TARGET void dequantize_blocks_avx2(gguf::GgmlType type, const std::byte* w,
                                               std::size_t row_bytes, std::int64_t n_rows,
                                               std::int64_t k, float* out, std::int64_t ldo) {
  dequantize_blocks(type, w, row_bytes, n_rows, k, out, ldo);
}

}  // namespace porta::detail::cpu::ggml
