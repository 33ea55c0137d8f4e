// block_dot.hpp's kernels with AVX2, FMA and F16C: 8-lane f32 vectors.
#include <immintrin.h>

#include <cstring>

#include <fmt/format.h>

#include <porta/dtype.hpp>
#include <porta/error.hpp>

#include "gguf/block_util.hpp"
#include "ggml/block_dot.hpp"

namespace porta::detail::cpu::ggml {

namespace {

#define PORTA_BLOCK_TARGET __attribute__((target("avx2,fma,f16c")))
#define PORTA_BLOCK_ISA_NAME "avx2"
using Vec = __m256;

PORTA_BLOCK_TARGET inline Vec vzero() { return _mm256_setzero_ps(); }
PORTA_BLOCK_TARGET inline Vec vadd(Vec a, Vec b) { return _mm256_add_ps(a, b); }
PORTA_BLOCK_TARGET inline Vec vfma(float s, Vec v, Vec acc) {
  return _mm256_fmadd_ps(_mm256_set1_ps(s), v, acc);
}
PORTA_BLOCK_TARGET inline Vec vdot16(__m128i codes, const float* x) {
  const __m256 a = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(codes));
  const __m256 b = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(codes, 8)));
  return _mm256_fmadd_ps(b, _mm256_loadu_ps(x + 8), _mm256_mul_ps(a, _mm256_loadu_ps(x)));
}
PORTA_BLOCK_TARGET inline Vec vload16(const float* x) {
  return _mm256_add_ps(_mm256_loadu_ps(x), _mm256_loadu_ps(x + 8));
}
PORTA_BLOCK_TARGET inline float vsum(Vec v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

#include "ggml/block_kernels.inl"

}  // namespace

PORTA_BLOCK_TARGET float block_dot_avx2(gguf::GgmlType type, const std::byte* row, const float* x,
                                        std::int64_t k) {
  return dot_blocks(type, row, x, k);
}

}  // namespace porta::detail::cpu::ggml
