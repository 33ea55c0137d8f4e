// The decode dot-product loop (dot_rows.hpp) per instruction set. Decode is bound by the bytes
// of weights streamed, so each weight row is loaded once for up to 8 activation rows, bf16
// weights are widened in registers (a 16-bit shift; f16 ones by vcvtph2ps), and two accumulators
// per row hide the FMA latency when registers allow.
#include "moe/dot_rows.hpp"

#include <immintrin.h>

#include <algorithm>

#include "moe/moe_cpu.hpp"

namespace porta::detail::cpu::moe {
namespace {

// An f16 weight's bits, a type of its own so that the loops below take f16 rows by overload
// (std::uint16_t is bf16).
struct Half {
  std::uint16_t bits;
};

inline float widen(float v) { return v; }
inline float widen(std::uint16_t bits) { return bf16_bits_to_f32(bits); }
inline float widen(Half h) { return f16_bits_to_f32(h.bits); }

// Software prefetch 2 KB ahead in the weight stream (the slice's rows are contiguous, so past a
// row's end is the next row). The hardware prefetcher stops at each 4 KB page, which is one bf16
// row of 2048: without this the loop ran at 0.73-0.77 of a plain streaming sum on the Xeon
// (M = 1, bf16, 1.15 GB of rows), with it at 0.93-1.1. Prefetches never fault, so reading ahead
// past the weight's end is harmless.
constexpr std::ptrdiff_t kPrefetchBytes = 2048;
template <int Bytes, class W>
inline void prefetch_ahead(const W* p) {
  for (int b = 0; b < Bytes; b += 64)
    _mm_prefetch(reinterpret_cast<const char*>(p) + kPrefetchBytes + b, _MM_HINT_T0);
}

// ---- AVX2 + FMA: 8 lanes ----

__attribute__((target("avx2,fma"))) inline __m256 load8(const float* p) {
  return _mm256_loadu_ps(p);
}
__attribute__((target("avx2,fma"))) inline __m256 load8(const std::uint16_t* p) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
}
__attribute__((target("avx2,fma,f16c"))) inline __m256 load8(const Half* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
__attribute__((target("avx2,fma"))) inline float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 d = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(d, _mm_shuffle_ps(d, d, 1)));
}

template <int M, class W>
__attribute__((target("avx2,fma,f16c"))) void rows_avx2(const float* x, std::int64_t ldx,
                                                        const W* w, std::int64_t h,
                                                        std::int64_t n_begin, std::int64_t n_end,
                                                        float* y, std::int64_t ldy) {
  constexpr int kUnroll = M <= 4 ? 2 : 1;
  const std::int64_t body = h - h % (8 * kUnroll);
  for (std::int64_t n = n_begin; n < n_end; ++n) {
    const W* row = w + n * h;
    __m256 acc[M][kUnroll];
    for (int m = 0; m < M; ++m)
      for (int u = 0; u < kUnroll; ++u) acc[m][u] = _mm256_setzero_ps();
    for (std::int64_t j = 0; j < body; j += 8 * kUnroll) {
      prefetch_ahead<8 * kUnroll * sizeof(W)>(row + j);
      for (int u = 0; u < kUnroll; ++u) {
        const __m256 wv = load8(row + j + 8 * u);
        for (int m = 0; m < M; ++m)
          acc[m][u] = _mm256_fmadd_ps(_mm256_loadu_ps(x + m * ldx + j + 8 * u), wv, acc[m][u]);
      }
    }
    for (int m = 0; m < M; ++m) {
      __m256 total = acc[m][0];
      for (int u = 1; u < kUnroll; ++u) total = _mm256_add_ps(total, acc[m][u]);
      float sum = hsum(total);
      for (std::int64_t j = body; j < h; ++j) sum += x[m * ldx + j] * widen(row[j]);
      y[m * ldy + n] = sum;
    }
  }
}

// ---- AVX-512F: 16 lanes ----

__attribute__((target("avx512f"))) inline __m512 load16(const float* p) {
  return _mm512_loadu_ps(p);
}
// The zero-masked forms: GCC 12 flags the unmasked ones' _mm512_undefined_epi32 operand as
// maybe-uninitialised once inlined.
__attribute__((target("avx512f"))) inline __m512 load16(const std::uint16_t* p) {
  const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m512i wide = _mm512_maskz_cvtepu16_epi32(0xFFFF, raw);
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xFFFF, wide, 16));
}
__attribute__((target("avx512f"))) inline __m512 load16(const Half* p) {
  return _mm512_maskz_cvtph_ps(0xFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
__attribute__((target("avx512f"))) inline float hsum16(__m512 v) {
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, v);
  float sum = 0;
  for (float lane : lanes) sum += lane;
  return sum;
}

template <int M, class W>
__attribute__((target("avx512f"))) void rows_avx512(const float* x, std::int64_t ldx, const W* w,
                                                    std::int64_t h, std::int64_t n_begin,
                                                    std::int64_t n_end, float* y,
                                                    std::int64_t ldy) {
  constexpr int kUnroll = M <= 4 ? 2 : 1;
  const std::int64_t body = h - h % (16 * kUnroll);
  for (std::int64_t n = n_begin; n < n_end; ++n) {
    const W* row = w + n * h;
    __m512 acc[M][kUnroll];
    for (int m = 0; m < M; ++m)
      for (int u = 0; u < kUnroll; ++u) acc[m][u] = _mm512_setzero_ps();
    for (std::int64_t j = 0; j < body; j += 16 * kUnroll) {
      prefetch_ahead<16 * kUnroll * sizeof(W)>(row + j);
      for (int u = 0; u < kUnroll; ++u) {
        const __m512 wv = load16(row + j + 16 * u);
        for (int m = 0; m < M; ++m)
          acc[m][u] = _mm512_fmadd_ps(_mm512_loadu_ps(x + m * ldx + j + 16 * u), wv, acc[m][u]);
      }
    }
    for (int m = 0; m < M; ++m) {
      __m512 total = acc[m][0];
      for (int u = 1; u < kUnroll; ++u) total = _mm512_add_ps(total, acc[m][u]);
      float sum = hsum16(total);
      for (std::int64_t j = body; j < h; ++j) sum += x[m * ldx + j] * widen(row[j]);
      y[m * ldy + n] = sum;
    }
  }
}

template <class W>
void rows_plain(const float* x, std::int64_t ldx, std::int64_t rows, const W* w, std::int64_t h,
                std::int64_t n_begin, std::int64_t n_end, float* y, std::int64_t ldy) {
  for (std::int64_t n = n_begin; n < n_end; ++n)
    for (std::int64_t m = 0; m < rows; ++m) {
      float sum = 0.0f;
      for (std::int64_t j = 0; j < h; ++j) sum += x[m * ldx + j] * widen(w[n * h + j]);
      y[m * ldy + n] = sum;
    }
}

// Blocks of up to 8 rows, each with the loop specialised for its row count.
template <template <int, class> class Loop, class W>
void rows_blocked(const float* x, std::int64_t ldx, std::int64_t rows, const W* w, std::int64_t h,
                  std::int64_t n_begin, std::int64_t n_end, float* y, std::int64_t ldy) {
  for (std::int64_t m0 = 0; m0 < rows; m0 += 8) {
    const float* xm = x + m0 * ldx;
    float* ym = y + m0 * ldy;
    switch (std::min<std::int64_t>(rows - m0, 8)) {
      case 1: Loop<1, W>::run(xm, ldx, w, h, n_begin, n_end, ym, ldy); break;
      case 2: Loop<2, W>::run(xm, ldx, w, h, n_begin, n_end, ym, ldy); break;
      case 3: Loop<3, W>::run(xm, ldx, w, h, n_begin, n_end, ym, ldy); break;
      case 4: Loop<4, W>::run(xm, ldx, w, h, n_begin, n_end, ym, ldy); break;
      case 5: Loop<5, W>::run(xm, ldx, w, h, n_begin, n_end, ym, ldy); break;
      case 6: Loop<6, W>::run(xm, ldx, w, h, n_begin, n_end, ym, ldy); break;
      case 7: Loop<7, W>::run(xm, ldx, w, h, n_begin, n_end, ym, ldy); break;
      default: Loop<8, W>::run(xm, ldx, w, h, n_begin, n_end, ym, ldy); break;
    }
  }
}

template <int M, class W>
struct Avx2Loop {
  static void run(const float* x, std::int64_t ldx, const W* w, std::int64_t h, std::int64_t b,
                  std::int64_t e, float* y, std::int64_t ldy) {
    rows_avx2<M>(x, ldx, w, h, b, e, y, ldy);
  }
};
template <int M, class W>
struct Avx512Loop {
  static void run(const float* x, std::int64_t ldx, const W* w, std::int64_t h, std::int64_t b,
                  std::int64_t e, float* y, std::int64_t ldy) {
    rows_avx512<M>(x, ldx, w, h, b, e, y, ldy);
  }
};

template <class W>
void dispatch(DotIsa isa, const float* x, std::int64_t ldx, std::int64_t rows, const W* w,
              std::int64_t h, std::int64_t n_begin, std::int64_t n_end, float* y,
              std::int64_t ldy) {
  switch (isa) {
    case DotIsa::Avx512:
      return rows_blocked<Avx512Loop>(x, ldx, rows, w, h, n_begin, n_end, y, ldy);
    case DotIsa::Avx2: return rows_blocked<Avx2Loop>(x, ldx, rows, w, h, n_begin, n_end, y, ldy);
    case DotIsa::Plain: break;
  }
  rows_plain(x, ldx, rows, w, h, n_begin, n_end, y, ldy);
}

}  // namespace

std::vector<DotIsa> available_dot_isas() {
  std::vector<DotIsa> isas{DotIsa::Plain};
  if (has_avx2()) isas.push_back(DotIsa::Avx2);
  if (has_avx2() && __builtin_cpu_supports("avx512f")) isas.push_back(DotIsa::Avx512);
  return isas;
}

DotIsa best_dot_isa() {
  static const DotIsa best = available_dot_isas().back();
  return best;
}

const char* dot_isa_name(DotIsa isa) {
  switch (isa) {
    case DotIsa::Avx512: return "avx512";
    case DotIsa::Avx2: return "avx2";
    case DotIsa::Plain: break;
  }
  return "plain";
}

void small_gemm_isa(DotIsa isa, const float* x, std::int64_t ldx, std::int64_t rows,
                    const void* w, DType wdtype, std::int64_t h, std::int64_t n_begin,
                    std::int64_t n_end, float* y, std::int64_t ldy) {
  if (wdtype == DType::BF16)
    dispatch(isa, x, ldx, rows, static_cast<const std::uint16_t*>(w), h, n_begin, n_end, y, ldy);
  else if (wdtype == DType::F16)
    dispatch(isa, x, ldx, rows, static_cast<const Half*>(w), h, n_begin, n_end, y, ldy);
  else
    dispatch(isa, x, ldx, rows, static_cast<const float*>(w), h, n_begin, n_end, y, ldy);
}

void small_gemm(const float* x, std::int64_t ldx, std::int64_t rows, const void* w, DType wdtype,
                std::int64_t h, std::int64_t n_begin, std::int64_t n_end, float* y,
                std::int64_t ldy) {
  small_gemm_isa(best_dot_isa(), x, ldx, rows, w, wdtype, h, n_begin, n_end, y, ldy);
}

}  // namespace porta::detail::cpu::moe
