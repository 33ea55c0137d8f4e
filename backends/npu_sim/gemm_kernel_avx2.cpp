// The GEMM inner kernel for AVX2 + FMA (this file alone is compiled with -mavx2 -mfma -mf16c;
// gemm.cpp calls it only when the CPU has those features).
#include <immintrin.h>

#include "gemm.hpp"

namespace porta::detail::npu_sim::kernels {

namespace {

// Up to 6 rows of a times one 16-column panel, accumulated into c (the first `cols` columns).
template <int Rows>
void block(const float* a, std::int64_t lda, const float* panel, std::int64_t k_begin,
           std::int64_t k_end, float* c, std::int64_t ldc, std::int64_t cols) {
  __m256 acc[Rows][2];
  alignas(32) float edge[Rows][16];
  for (int i = 0; i < Rows; ++i) {
    if (cols == 16) {
      acc[i][0] = _mm256_loadu_ps(c + i * ldc);
      acc[i][1] = _mm256_loadu_ps(c + i * ldc + 8);
    } else {
      for (int j = 0; j < 16; ++j) edge[i][j] = j < cols ? c[i * ldc + j] : 0.0f;
      acc[i][0] = _mm256_load_ps(edge[i]);
      acc[i][1] = _mm256_load_ps(edge[i] + 8);
    }
  }
  for (std::int64_t p = k_begin; p < k_end; ++p) {
    const __m256 b0 = _mm256_loadu_ps(panel + p * 16);
    const __m256 b1 = _mm256_loadu_ps(panel + p * 16 + 8);
    for (int i = 0; i < Rows; ++i) {
      const __m256 av = _mm256_broadcast_ss(a + i * lda + p);
      acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
    }
  }
  for (int i = 0; i < Rows; ++i) {
    if (cols == 16) {
      _mm256_storeu_ps(c + i * ldc, acc[i][0]);
      _mm256_storeu_ps(c + i * ldc + 8, acc[i][1]);
    } else {
      _mm256_store_ps(edge[i], acc[i][0]);
      _mm256_store_ps(edge[i] + 8, acc[i][1]);
      for (std::int64_t j = 0; j < cols; ++j) c[i * ldc + j] = edge[i][j];
    }
  }
}

}  // namespace

void panel_avx2(const float* a, std::int64_t lda, const float* panel, std::int64_t rows,
                std::int64_t k_begin, std::int64_t k_end, float* c, std::int64_t ldc,
                std::int64_t cols) {
  std::int64_t i = 0;
  for (; i + 6 <= rows; i += 6)
    block<6>(a + i * lda, lda, panel, k_begin, k_end, c + i * ldc, ldc, cols);
  switch (rows - i) {
    case 5: block<5>(a + i * lda, lda, panel, k_begin, k_end, c + i * ldc, ldc, cols); break;
    case 4: block<4>(a + i * lda, lda, panel, k_begin, k_end, c + i * ldc, ldc, cols); break;
    case 3: block<3>(a + i * lda, lda, panel, k_begin, k_end, c + i * ldc, ldc, cols); break;
    case 2: block<2>(a + i * lda, lda, panel, k_begin, k_end, c + i * ldc, ldc, cols); break;
    case 1: block<1>(a + i * lda, lda, panel, k_begin, k_end, c + i * ldc, ldc, cols); break;
    default: break;
  }
}

void widen_f16_avx2(const std::uint16_t* src, std::int64_t count, float* dst) {
  std::int64_t i = 0;
  for (; i + 8 <= count; i += 8)
    _mm256_storeu_ps(dst + i,
                     _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  if (i == count) return;
  // The tail through a padded block, so that this file calls no inline function shared with
  // other translation units (they would be compiled for AVX2 here).
  alignas(16) std::uint16_t in[8] = {};
  alignas(32) float out[8];
  for (std::int64_t j = 0; i + j < count; ++j) in[j] = src[i + j];
  _mm256_store_ps(out, _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(in))));
  for (std::int64_t j = 0; i + j < count; ++j) dst[i + j] = out[j];
}

}  // namespace porta::detail::npu_sim::kernels
