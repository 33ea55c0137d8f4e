// block_dot.hpp's kernels with AVX-512F/BW/VL: 16-lane f32 vectors (the code extraction stays
// 256-bit).
// GCC 12's AVX-512 conversion intrinsics pass _mm512_undefined_*() as the unused merge source,
// which -Wmaybe-uninitialized reports once inlined here; nothing is read uninitialised.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <cstring>

#include <fmt/format.h>

#include <porta/dtype.hpp>
#include <porta/error.hpp>

#include "gguf/block_util.hpp"
#include "ggml/block_dot.hpp"

namespace porta::detail::cpu::ggml {

namespace {

#define PORTA_BLOCK_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define PORTA_BLOCK_ISA_NAME "avx512"
using Vec = __m512;

PORTA_BLOCK_TARGET inline Vec vzero() { return _mm512_setzero_ps(); }
PORTA_BLOCK_TARGET inline Vec vadd(Vec a, Vec b) { return _mm512_add_ps(a, b); }
PORTA_BLOCK_TARGET inline Vec vfma(float s, Vec v, Vec acc) {
  return _mm512_fmadd_ps(_mm512_set1_ps(s), v, acc);
}
PORTA_BLOCK_TARGET inline Vec vdot16(__m128i codes, const float* x) {
  // Zero-masked widening: GCC 12 at -Og flags the unmasked intrinsics' undefined pass-through
  // operand (-Wuninitialized); the values are the same.
  return _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(0xFFFF, _mm512_maskz_cvtepi8_epi32(0xFFFF, codes)),
                       _mm512_loadu_ps(x));
}
PORTA_BLOCK_TARGET inline Vec vload16(const float* x) { return _mm512_loadu_ps(x); }
PORTA_BLOCK_TARGET inline float vsum(Vec v) {
  // Through memory: GCC 12's 512-bit extract and reduce intrinsics trip -Wuninitialized.
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, v);
  float sum = 0;
  for (const float lane : lanes) sum += lane;
  return sum;
}

#include "ggml/block_kernels.inl"

}  // namespace

PORTA_BLOCK_TARGET float block_dot_avx512(gguf::GgmlType type, const std::byte* row,
                                          const float* x, std::int64_t k) {
  return dot_blocks(type, row, x, k);
}

}  // namespace porta::detail::cpu::ggml
