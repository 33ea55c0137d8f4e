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

namespace porta::detail::npu_sim::kernels {

namespace {

// R rows of a times C rows of w (an nn.Linear weight, rows along K), dot products along K with
// 8-lane f32 accumulators; w is widened on the fly (fp16 through F16C).
template <int R, int C, bool Half>
void nt_block(const float* a, std::int64_t lda, const void* w, std::int64_t k, float* c,
              std::int64_t ldc) {
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < C; ++j) acc[r][j] = _mm256_setzero_ps();
  const std::int64_t k8 = k / 8 * 8;
  for (std::int64_t p = 0; p < k8; p += 8) {
    __m256 wv[C];
    for (int j = 0; j < C; ++j) {
      if constexpr (Half)
        wv[j] = _mm256_cvtph_ps(_mm_loadu_si128(
            reinterpret_cast<const __m128i*>(static_cast<const std::uint16_t*>(w) + j * k + p)));
      else
        wv[j] = _mm256_loadu_ps(static_cast<const float*>(w) + j * k + p);
    }
    for (int r = 0; r < R; ++r) {
      const __m256 av = _mm256_loadu_ps(a + r * lda + p);
      for (int j = 0; j < C; ++j) acc[r][j] = _mm256_fmadd_ps(av, wv[j], acc[r][j]);
    }
  }
  alignas(32) float lanes[8];
  for (int j = 0; j < C; ++j) {
    float tail_w[8] = {};
    const std::int64_t tail = k - k8;
    if (tail > 0) {
      alignas(16) std::uint16_t h[8] = {};
      if constexpr (Half) {
        for (std::int64_t q = 0; q < tail; ++q)
          h[q] = static_cast<const std::uint16_t*>(w)[j * k + k8 + q];
        _mm256_store_ps(tail_w,
                        _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(h))));
      } else {
        for (std::int64_t q = 0; q < tail; ++q)
          tail_w[q] = static_cast<const float*>(w)[j * k + k8 + q];
      }
    }
    for (int r = 0; r < R; ++r) {
      _mm256_store_ps(lanes, acc[r][j]);
      float sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
                  ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
      for (std::int64_t q = 0; q < tail; ++q) sum += a[r * lda + k8 + q] * tail_w[q];
      c[r * ldc + j] = sum;
    }
  }
}

template <int R, bool Half>
void nt_row_block(const float* a, std::int64_t lda, const void* w, std::int64_t j_count,
                  std::int64_t k, float* c, std::int64_t ldc) {
  const std::size_t es = Half ? 2 : 4;
  const auto* wb = static_cast<const char*>(w);
  std::int64_t j = 0;
  for (; j + 3 <= j_count; j += 3)
    nt_block<R, 3, Half>(a, lda, wb + static_cast<std::size_t>(j * k) * es, k, c + j, ldc);
  if (j_count - j == 2)
    nt_block<R, 2, Half>(a, lda, wb + static_cast<std::size_t>(j * k) * es, k, c + j, ldc);
  else if (j_count - j == 1)
    nt_block<R, 1, Half>(a, lda, wb + static_cast<std::size_t>(j * k) * es, k, c + j, ldc);
}

template <bool Half>
void nt_all(const float* a, std::int64_t lda, const void* w, std::int64_t n, std::int64_t k,
            std::int64_t m, float* c, std::int64_t ldc) {
  const std::size_t es = Half ? 2 : 4;
  const auto* wb = static_cast<const char*>(w);
  // Panels of 48 weight rows stay in cache while every row block of a passes over them.
  for (std::int64_t j0 = 0; j0 < n; j0 += 48) {
    const std::int64_t jn = std::min<std::int64_t>(48, n - j0);
    const void* wp = wb + static_cast<std::size_t>(j0 * k) * es;
    std::int64_t i = 0;
    for (; i + 4 <= m; i += 4)
      nt_row_block<4, Half>(a + i * lda, lda, wp, jn, k, c + i * ldc + j0, ldc);
    switch (m - i) {
      case 3: nt_row_block<3, Half>(a + i * lda, lda, wp, jn, k, c + i * ldc + j0, ldc); break;
      case 2: nt_row_block<2, Half>(a + i * lda, lda, wp, jn, k, c + i * ldc + j0, ldc); break;
      case 1: nt_row_block<1, Half>(a + i * lda, lda, wp, jn, k, c + i * ldc + j0, ldc); break;
      default: break;
    }
  }
}

}  // namespace

void gemm_nt_avx2(const float* a, std::int64_t lda, const void* w, bool w_is_f16, std::int64_t n,
                  std::int64_t k, std::int64_t m, float* c, std::int64_t ldc) {
  if (w_is_f16)
    nt_all<true>(a, lda, w, n, k, m, c, ldc);
  else
    nt_all<false>(a, lda, w, n, k, m, c, ldc);
}

}  // namespace porta::detail::npu_sim::kernels
