// panel_gemm.hpp's kernel with AVX-512F: 16-lane vectors, tiles of up to 64 rows of x (4 vectors)
// by 6 weight rows, 48 by 8, 32 by 12 or 16 by 16 (24 or 16 accumulators of the 32 registers).
// GCC 12's AVX-512 conversion intrinsics pass _mm512_undefined_*() as the unused merge source,
// which -Wmaybe-uninitialized reports once inlined here; nothing is read uninitialised.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "moe/panel_gemm.hpp"

namespace porta::detail::cpu::moe {
namespace {

#define PORTA_PANEL_TARGET __attribute__((target("avx512f,avx2,fma")))
using Vec = __m512;
constexpr std::int64_t kLanes = 16;
constexpr int kMaxVecs = 4;
constexpr int kNrFor[5] = {0, 16, 12, 8, 6};

PORTA_PANEL_TARGET inline Vec vzero() { return _mm512_setzero_ps(); }
PORTA_PANEL_TARGET inline Vec vload(const float* p) { return _mm512_loadu_ps(p); }
PORTA_PANEL_TARGET inline void vstore(float* p, Vec v) { _mm512_storeu_ps(p, v); }
PORTA_PANEL_TARGET inline Vec vbroadcast(const float* p) { return _mm512_set1_ps(*p); }
PORTA_PANEL_TARGET inline Vec vfma(Vec a, Vec b, Vec acc) { return _mm512_fmadd_ps(a, b, acc); }
PORTA_PANEL_TARGET inline Vec vwiden(const std::uint16_t* src) {
  const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
}

#include "moe/panel_gemm.inl"

}  // namespace

std::size_t panel_scratch_avx512(std::int64_t k) { return scratch_floats(k); }
std::int64_t panel_chunk_rows_avx512(std::int64_t k) { return max_rows(k); }
void panel_gemm_avx512(const PanelArgs& a) { panel_gemm_impl(a); }
std::size_t packed_x_floats_avx512(std::int64_t rows, std::int64_t k) {
  return packed_floats(rows, k);
}
void pack_x_chunk_avx512(const float* x, std::int64_t ldx, std::int64_t rows, std::int64_t k,
                         std::int64_t chunk, float* packed) {
  pack_chunk(x, ldx, rows, k, chunk, packed);
}
void packed_gemm_avx512(const PanelArgs& a) { packed_gemm_impl(a); }

}  // namespace porta::detail::cpu::moe
