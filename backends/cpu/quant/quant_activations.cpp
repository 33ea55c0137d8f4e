// W8A8's activation quantization on the cpu backend (quant_cpu.hpp's quantize_rows): the
// library's per-token and static quantizers (lib/quant/codec.cpp), and on AVX-512 the same
// steps 16 lanes at a time, which give the same codes and scales bit for bit: a true f32
// division (vdivps is correctly rounded), round half to even (vrndscaleps in the default
// environment, as std::nearbyint), the same clamp, NaN handled as the library does. The scalar
// quantizer calls libm's nearbyintf per element and was half of a prefill's W8A8 time.
// GCC 12 flags the _mm512_undefined operands of unmasked AVX-512 intrinsics as maybe
// uninitialised once inlined (the lanes they stand for are all written).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "moe/moe_cpu.hpp"
#include "quant/quant_cpu.hpp"

namespace porta::detail::cpu::quant {
namespace {

constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

__attribute__((target("avx512f"))) inline __mmask16 tail_mask(std::int64_t left) {
  return left >= 16 ? __mmask16{0xFFFF} : static_cast<__mmask16>((1u << left) - 1);
}

// Codes of x[0, k) as clamp(rne(x / s) + offset, lo, hi), NaN quotients as `offset`.
__attribute__((target("avx512f"))) void codes_avx512(const float* x, std::int64_t k, float s,
                                                     float offset, float lo, float hi,
                                                     std::int8_t* q) {
  const __m512 vs = _mm512_set1_ps(s), vo = _mm512_set1_ps(offset);
  const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  for (std::int64_t c = 0; c < k; c += 16) {
    const __mmask16 m = tail_mask(k - c);
    __m512 v = _mm512_roundscale_ps(_mm512_div_ps(_mm512_maskz_loadu_ps(m, x + c), vs), kRound);
    v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_setzero_ps());
    v = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(v, vo), vlo), vhi);
    _mm512_mask_cvtepi32_storeu_epi8(q + c, m, _mm512_cvtps_epi32(v));
  }
}

// The per-token quantizer's scale of one row: amax / 127 (1 for a zero row), NaN when the row
// holds NaN or an infinity.
__attribute__((target("avx512f"))) float row_scale_avx512(const float* x, std::int64_t k) {
  const __m512 inf = _mm512_set1_ps(std::numeric_limits<float>::infinity());
  __m512 amax = _mm512_setzero_ps();
  __mmask16 finite = 0xFFFF;
  for (std::int64_t c = 0; c < k; c += 16) {
    const __mmask16 m = tail_mask(k - c);
    const __m512 a = _mm512_abs_ps(_mm512_maskz_loadu_ps(m, x + c));
    finite &= _mm512_cmp_ps_mask(a, inf, _CMP_LT_OQ);
    amax = _mm512_max_ps(amax, a);
  }
  if (finite != 0xFFFF) return std::numeric_limits<float>::quiet_NaN();
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, amax);
  float best = 0.0f;
  for (float v : lanes) best = std::max(best, v);
  return best == 0.0f ? 1.0f : best / 127.0f;
}

void quantize_row(const float* x, std::int64_t k, ActivationQuant mode,
                  QuantActivationParams params, bool vector, std::int8_t* q, float* scale) {
  if (!vector) {
    if (mode == ActivationQuant::DynamicInt8)
      quantize_activations_per_token(x, 1, k, q, scale);
    else
      quantize_activations_static(x, k, params, q);
    return;
  }
  if (mode == ActivationQuant::StaticInt8)
    return codes_avx512(x, k, params.scale, params.offset, -128.0f, 127.0f, q);
  *scale = row_scale_avx512(x, k);
  if (std::isnan(*scale))
    std::fill(q, q + k, std::int8_t{0});
  else
    codes_avx512(x, k, *scale, 0.0f, -127.0f, 127.0f, q);
}

}  // namespace

QuantizedRows quantize_rows(const float* x, std::int64_t ldx, std::int64_t rows, std::int64_t k,
                            ActivationQuant mode, QuantActivationParams params, std::int64_t group,
                            bool vector) {
  QuantizedRows a;
  a.rows = rows;
  a.k = k;
  a.ld = (k + 63) / 64 * 64;
  a.group = group <= 0 ? k : group;
  a.groups = k == 0 ? 1 : (k + a.group - 1) / a.group;
  a.offset = mode == ActivationQuant::StaticInt8 ? static_cast<std::int32_t>(params.offset) : 0;
  a.codes.assign(static_cast<std::size_t>(rows * a.ld), 0);
  a.sums.assign(static_cast<std::size_t>(rows * a.groups), 0);
  a.scales.assign(static_cast<std::size_t>(rows), params.scale);
  std::vector<char> min_code(static_cast<std::size_t>(rows), 0);
  const std::int64_t grain = std::max<std::int64_t>(1, 65536 / (k + 1));
  moe::parallel_for(rows, grain, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t m = begin; m < end; ++m) {
      auto* q = a.codes.data() + m * a.ld;
      quantize_row(x + m * ldx, k, mode, params, vector, q, &a.scales[static_cast<std::size_t>(m)]);
      for (std::int64_t g = 0; g < a.groups; ++g) {
        std::int32_t sum = 0;
        for (std::int64_t c = g * a.group; c < std::min(k, (g + 1) * a.group); ++c) sum += q[c];
        a.sums[static_cast<std::size_t>(m * a.groups + g)] = sum;
      }
      min_code[static_cast<std::size_t>(m)] =
          static_cast<char>(std::find(q, q + k, std::int8_t{-128}) != q + k);
    }
  });
  a.has_min_code = std::find(min_code.begin(), min_code.end(), 1) != min_code.end();
  return a;
}

bool vector_quantizer(QuantIsa isa) {
  return isa == QuantIsa::Avx512 || isa == QuantIsa::Avx512Vnni;
}

void widen_codes(QuantizedRows& a) {
  a.wide.resize(static_cast<std::size_t>(a.rows * a.k));
  for (std::int64_t m = 0; m < a.rows; ++m)
    for (std::int64_t c = 0; c < a.k; ++c)
      a.wide[static_cast<std::size_t>(m * a.k + c)] =
          static_cast<std::int16_t>(a.row(m)[c] - a.offset);
}

}  // namespace porta::detail::cpu::quant
