// Weight-only int4 rows on AVX-512 by table lookup. A group's sixteen possible weight values
// (u − z) · s are one 16-float vector, computed exactly as dequantize does; vpermps picks each
// weight from it by the nibble itself (it reads only an index's low four bits, so the low
// nibbles need no mask and the high ones one shift). Sixteen packed bytes hold 32 weights in
// the order even columns in the low nibbles, odd in the high ones, so the activations are
// reordered to match once per call (deinterleave_int4_rows) instead of the weights per use.
// Per 32 weights: one widening load, one shift, two lookups, and two FMAs per activation row.
// GCC 12 flags the _mm512_undefined operands of the unmasked AVX-512 intrinsics as maybe
// uninitialised once inlined (the lanes they stand for are all written).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <vector>

#include "quant/quant_cpu.hpp"

namespace porta::detail::cpu::quant {
namespace {

constexpr std::int64_t kChunk = 32;  // weights per 16 packed bytes

__attribute__((target("avx512f"))) inline float lane_total(__m512 v) {
  // Zero-masked extracts: GCC 12 at -Og flags the unmasked ones' undefined pass-through operand
  // (-Wuninitialized); the values are the same.
  const __m512d d = _mm512_castps_pd(v);
  const __m256 h = _mm256_add_ps(_mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xF, d, 0)),
                                 _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xF, d, 1)));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

// Row n's scales widened to f32 (16 at a time; bf16 and f16 by shifts and vcvtph2ps).
__attribute__((target("avx512f"))) void row_scales(const QuantMatrix& w, std::int64_t n,
                                                   float* out) {
  const std::int64_t bn = w.scheme.block_n < 1 ? 1 : w.scheme.block_n;
  const std::int64_t groups = w.groups(), first = (n / bn) * groups;
  const DType t = w.scheme.scale_dtype;
  if (t != DType::BF16 && t != DType::F16) return widen_scales(w, n, out);
  const auto* bits = static_cast<const std::uint16_t*>(w.scale) + first;
  std::int64_t g = 0;
  for (; g + 16 <= groups; g += 16) {
    const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bits + g));
    _mm512_storeu_ps(out + g, t == DType::BF16 ? _mm512_castsi512_ps(_mm512_slli_epi32(
                                                     _mm512_cvtepu16_epi32(raw), 16))
                                               : _mm512_cvtph_ps(raw));
  }
  for (; g < groups; ++g)
    out[g] = t == DType::BF16 ? bf16_bits_to_f32(bits[g]) : f16_bits_to_f32(bits[g]);
}

// U chunks in flight per activation row (independent FMA chains; with groups of 32 one chain
// would wait on the FMA latency at every chunk). Each chunk's table is formed in registers from
// its scale (and zero point, Asym): (u − z) is an exact small integer in f32, so one rounding by
// s, as dequantize. The 512-bit ports bound this loop: per 32 weights one widening, one shift,
// two lookups, one multiply (the table) and two FMAs per activation row.
template <int M, int U, bool Asym>
__attribute__((target("avx512f"))) void rows_m(const float* xd, std::int64_t k,
                                               const QuantMatrix& w, std::int64_t n_begin,
                                               std::int64_t n_end, float* y, std::int64_t ldy) {
  const std::int64_t group = w.group(), groups = w.groups();
  const std::int64_t body = k - k % kChunk;  // columns in whole chunks (every group, or K's head)
  const std::int64_t chunks = body / kChunk;
  const bool per_chunk = group == kChunk;  // scales are the chunks' scales as they are
  const auto* bytes = static_cast<const std::uint8_t*>(w.data);
  std::vector<float> scales(static_cast<std::size_t>(groups));
  std::vector<float> chunk_scale(static_cast<std::size_t>(chunks));
  std::vector<float> chunk_zero(static_cast<std::size_t>(chunks));
  const __m512 iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512 centred8 = _mm512_sub_ps(iota, _mm512_set1_ps(8.0f));
  for (std::int64_t n = n_begin; n < n_end; ++n) {
    const std::uint8_t* row = bytes + n * (k / 2);
    if (n + 2 < n_end)
      for (std::int64_t b = 0; b < k / 2; b += 64)
        _mm_prefetch(reinterpret_cast<const char*>(row + k + b), _MM_HINT_T0);
    row_scales(w, n, scales.data());
    const std::int8_t* zeros = zero_row(w, n);
    if (!per_chunk || Asym)
      for (std::int64_t g = 0, j = 0; g < groups; ++g)
        for (const std::int64_t end = std::min(chunks, (g + 1) * group / kChunk); j < end; ++j) {
          chunk_scale[static_cast<std::size_t>(j)] = scales[static_cast<std::size_t>(g)];
          if (Asym) chunk_zero[static_cast<std::size_t>(j)] = zeros[g];
        }
    const float* cs = per_chunk ? scales.data() : chunk_scale.data();
    __m512 lo[M][U], hi[M][U];
    for (int m = 0; m < M; ++m)
      for (int u = 0; u < U; ++u) lo[m][u] = hi[m][u] = _mm512_setzero_ps();
    std::int64_t j = 0;
#define PORTA_INT4_CHUNK(J, U_)                                                               \
  {                                                                                           \
    const std::int64_t c = (J)*kChunk;                                                        \
    const __m512 centred =                                                                    \
        Asym ? _mm512_sub_ps(iota, _mm512_set1_ps(chunk_zero[static_cast<std::size_t>(J)]))   \
             : centred8;                                                                      \
    const __m512 table = _mm512_mul_ps(centred, _mm512_set1_ps(cs[J]));                       \
    const __m512i idx =                                                                       \
        _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + c / 2))); \
    const __m512 wlo = _mm512_permutexvar_ps(idx, table);                                     \
    const __m512 whi = _mm512_permutexvar_ps(_mm512_srli_epi32(idx, 4), table);               \
    for (int m = 0; m < M; ++m) {                                                             \
      lo[m][U_] = _mm512_fmadd_ps(_mm512_loadu_ps(xd + m * k + c), wlo, lo[m][U_]);           \
      hi[m][U_] = _mm512_fmadd_ps(_mm512_loadu_ps(xd + m * k + c + 16), whi, hi[m][U_]);      \
    }                                                                                         \
  }
    for (; j + U <= chunks; j += U) {
#pragma GCC unroll 4
      for (int u = 0; u < U; ++u) PORTA_INT4_CHUNK(j + u, u)
    }
    for (; j < chunks; ++j) PORTA_INT4_CHUNK(j, 0)
#undef PORTA_INT4_CHUNK
    float tail[M] = {};
    // A per-channel row's last k % 32 columns (x kept in its own order there).
    if (body < k) {
      const float s = scales[0];
      const std::int32_t z = zeros == nullptr ? 8 : zeros[0];
      for (std::int64_t c = body; c < k; ++c) {
        const std::uint8_t b = row[c / 2];
        const float wv = static_cast<float>(((c % 2 == 0) ? (b & 15) : (b >> 4)) - z) * s;
        for (int m = 0; m < M; ++m) tail[m] += xd[m * k + c] * wv;
      }
    }
    for (int m = 0; m < M; ++m) {
      __m512 total = _mm512_add_ps(lo[m][0], hi[m][0]);
      for (int u = 1; u < U; ++u) total = _mm512_add_ps(total, _mm512_add_ps(lo[m][u], hi[m][u]));
      y[m * ldy + n] = lane_total(total) + tail[m];
    }
  }
}

template <int M>
void rows_m(const float* xd, std::int64_t k, const QuantMatrix& w, std::int64_t n_begin,
            std::int64_t n_end, float* y, std::int64_t ldy) {
  constexpr int U = M <= 2 ? 4 : M <= 4 ? 2 : 1;
  if (w.zero != nullptr)
    rows_m<M, U, true>(xd, k, w, n_begin, n_end, y, ldy);
  else
    rows_m<M, U, false>(xd, k, w, n_begin, n_end, y, ldy);
}

}  // namespace

bool int4_lut_fits(const QuantMatrix& w) {
  return w.scheme.format == QuantFormat::Int4 && (w.groups() == 1 || w.group() % kChunk == 0);
}

std::vector<float> deinterleave_int4_rows(const float* x, std::int64_t ldx, std::int64_t rows,
                                          std::int64_t k) {
  std::vector<float> out(static_cast<std::size_t>(rows * k));
  const std::int64_t body = k - k % kChunk;
  for (std::int64_t m = 0; m < rows; ++m) {
    const float* src = x + m * ldx;
    float* dst = out.data() + m * k;
    for (std::int64_t c = 0; c < body; c += kChunk)
      for (std::int64_t i = 0; i < kChunk / 2; ++i) {
        dst[c + i] = src[c + 2 * i];
        dst[c + kChunk / 2 + i] = src[c + 2 * i + 1];
      }
    for (std::int64_t c = body; c < k; ++c) dst[c] = src[c];
  }
  return out;
}

void int4_rows_avx512(const float* xd, std::int64_t rows, const QuantMatrix& w,
                      std::int64_t n_begin, std::int64_t n_end, float* y, std::int64_t ldy) {
  for (std::int64_t m0 = 0; m0 < rows; m0 += 8) {
    const float* xm = xd + m0 * w.k;
    float* ym = y + m0 * ldy;
    switch (std::min<std::int64_t>(rows - m0, 8)) {
      case 1: rows_m<1>(xm, w.k, w, n_begin, n_end, ym, ldy); break;
      case 2: rows_m<2>(xm, w.k, w, n_begin, n_end, ym, ldy); break;
      case 3: rows_m<3>(xm, w.k, w, n_begin, n_end, ym, ldy); break;
      case 4: rows_m<4>(xm, w.k, w, n_begin, n_end, ym, ldy); break;
      case 5: rows_m<5>(xm, w.k, w, n_begin, n_end, ym, ldy); break;
      case 6: rows_m<6>(xm, w.k, w, n_begin, n_end, ym, ldy); break;
      case 7: rows_m<7>(xm, w.k, w, n_begin, n_end, ym, ldy); break;
      default: rows_m<8>(xm, w.k, w, n_begin, n_end, ym, ldy); break;
    }
  }
}

}  // namespace porta::detail::cpu::quant
