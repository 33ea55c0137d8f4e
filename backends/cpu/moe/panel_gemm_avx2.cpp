// panel_gemm.hpp's kernel with AVX2 + FMA: 8-lane vectors, tiles of 24 rows of x (3 vectors) by
// 4 weight rows, 16 by 6 or 8 by 12 (12 accumulators of the 16 registers). 24 × 4 rather than
// 16 × 6 for full chunks: 7 loads (3 of x, 4 broadcasts) per 12 FMAs instead of 8 (2 + 6); with
// oneDNN capped at AVX2 (DNNL_MAX_CPU_ISA=AVX2) on the Xeon, at 48 rows × K 2048 × N 1408 from
// memory, 16 × 6 ran at 0.85 of the widen-and-sgemm path and 24 × 4 at 1.0-1.03 (1.2 at 24 rows).
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "moe/panel_gemm.hpp"

namespace porta::detail::cpu::moe {
namespace {

#define PORTA_PANEL_TARGET __attribute__((target("avx2,fma")))
using Vec = __m256;
constexpr std::int64_t kLanes = 8;
constexpr int kMaxVecs = 3;
constexpr int kNrFor[5] = {0, 12, 6, 4, 0};

PORTA_PANEL_TARGET inline Vec vzero() { return _mm256_setzero_ps(); }
PORTA_PANEL_TARGET inline Vec vload(const float* p) { return _mm256_loadu_ps(p); }
PORTA_PANEL_TARGET inline void vstore(float* p, Vec v) { _mm256_storeu_ps(p, v); }
PORTA_PANEL_TARGET inline Vec vbroadcast(const float* p) { return _mm256_broadcast_ss(p); }
PORTA_PANEL_TARGET inline Vec vfma(Vec a, Vec b, Vec acc) { return _mm256_fmadd_ps(a, b, acc); }
PORTA_PANEL_TARGET inline Vec vwiden(const std::uint16_t* src) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
}

#include "moe/panel_gemm.inl"

}  // namespace

std::size_t panel_scratch_avx2(std::int64_t k) { return scratch_floats(k); }
std::int64_t panel_chunk_rows_avx2(std::int64_t k) { return max_rows(k); }
void panel_gemm_avx2(const PanelArgs& a) { panel_gemm_impl(a); }
std::size_t packed_x_floats_avx2(std::int64_t rows, std::int64_t k) {
  return packed_floats(rows, k);
}
void pack_x_chunk_avx2(const float* x, std::int64_t ldx, std::int64_t rows, std::int64_t k,
                       std::int64_t chunk, float* packed) {
  pack_chunk(x, ldx, rows, k, chunk, packed);
}
void packed_gemm_avx2(const PanelArgs& a) { packed_gemm_impl(a); }

}  // namespace porta::detail::cpu::moe
