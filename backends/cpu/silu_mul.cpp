// silu_mul per instruction set. exp(x) = 2^n · e^r with n = round(x · log2 e) and r = x − n · ln 2
// (ln 2 in two parts, so r is exact to a few ulp), e^r by Cephes' degree-6 polynomial (about 1
// ulp on |r| ≤ ln2 / 2). x is clamped to [−87, 88] first, which keeps 2^n a normal float; there
// silu is already −0 or x to within float's precision (1 + e^−87 == 1). The clamps keep NaN
// (min and max return their second operand when either is NaN).
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_*() as the unused merge source, which
// -Wuninitialized reports once inlined in unoptimized builds; nothing is read uninitialised.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include "silu_mul.hpp"

#include <immintrin.h>

#include <cmath>

namespace porta::detail::cpu {

namespace {

constexpr float kHigh = 88.0f, kLow = -87.0f;
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2High = 0.693359375f, kLn2Low = -2.12194440e-4f;
constexpr float kP0 = 1.9875691500e-4f, kP1 = 1.3981999507e-3f, kP2 = 8.3334519073e-3f,
                kP3 = 4.1665795894e-2f, kP4 = 1.6666665459e-1f, kP5 = 5.0000001201e-1f;

__attribute__((target("avx512f"))) __m512 exp16(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(kLow), _mm512_min_ps(_mm512_set1_ps(kHigh), x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2High), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Low), r);
  __m512 p = _mm512_set1_ps(kP0);
  for (const float c : {kP1, kP2, kP3, kP4, kP5}) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
  const __m512 e = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(e, n);
}

__attribute__((target("avx512f"))) void silu_mul_avx512(const float* gate, const float* up,
                                                        float* out, std::int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
    const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
    _mm512_mask_storeu_ps(
        out + i, m,
        _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), _mm512_maskz_loadu_ps(m, up + i)));
  }
}

__attribute__((target("avx2,fma"))) __m256 exp8(__m256 x) {
  x = _mm256_max_ps(_mm256_set1_ps(kLow), _mm256_min_ps(_mm256_set1_ps(kHigh), x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2High), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Low), r);
  __m256 p = _mm256_set1_ps(kP0);
  for (const float c : {kP1, kP2, kP3, kP4, kP5}) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
  const __m256 e = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  // 2^n from its exponent bits; n is in [−126, 127] after the clamp. (A NaN's n converts to
  // INT_MIN: garbage bits, but times the NaN polynomial still NaN.)
  const __m256i bits =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(e, _mm256_castsi256_ps(bits));
}

__attribute__((target("avx2,fma"))) void silu_mul_avx2(const float* gate, const float* up,
                                                       float* out, std::int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
    _mm256_storeu_ps(
        out + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
  }
  if (i == n) return;
  float g[8] = {}, u[8] = {}, o[8];
  for (std::int64_t j = i; j < n; ++j) {
    g[j - i] = gate[j];
    u[j - i] = up[j];
  }
  silu_mul_avx2(g, u, o, 8);
  for (std::int64_t j = i; j < n; ++j) out[j] = o[j - i];
}

}  // namespace

void silu_mul(moe::DotIsa isa, const float* gate, const float* up, float* out, std::int64_t n) {
  switch (isa) {
    case moe::DotIsa::Avx512: return silu_mul_avx512(gate, up, out, n);
    case moe::DotIsa::Avx2: return silu_mul_avx2(gate, up, out, n);
    case moe::DotIsa::Plain: break;
  }
  for (std::int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void silu_mul(const float* gate, const float* up, float* out, std::int64_t n) {
  silu_mul(moe::best_dot_isa(), gate, up, out, n);
}

}  // namespace porta::detail::cpu
