// Vectorised router scores that equal the reference's bit for bit (router_math.hpp explains the
// rounding argument). The AVX2 code runs 4 doubles at a time; without AVX2 every function is the
// reference's scalar formula.
#include "moe/router_math.hpp"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "moe/moe_cpu.hpp"

namespace porta::detail::cpu::moe {
namespace {

// Arguments beyond this go to std::exp (so that 2^n below stays a normal double), as do NaN and
// infinities.
constexpr double kExpLimit = 708.0;
// Unit roundoff of double.
constexpr double kUnit = 0x1p-53;
// Sigmoid: d = fl(1 / fl(1 + e)) with e within a few ulps of std::exp differs from the
// reference's value by at most (ε + 4) units of 2^-53 for an exp error of ε ulps; δ = 2^-44
// (512 units) leaves room for ε up to about 500 ulps.
constexpr double kSigmoidDelta = 0x1p-44;

double softmax_delta(std::int64_t n) {
  // e_i / S with both summations of n terms in the same order: the two sums differ by at most
  // 2(n − 1) units plus the exp error, the quotients by a few units more; (4n + 32) units allows
  // an exp error of about n ulps.
  return static_cast<double>(4 * n + 32) * kUnit;
}

__attribute__((target("avx2,fma"))) inline __m256d exp4(__m256d x) {
  // x = n ln2 + r with n = round(x / ln2), |r| <= ln2 / 2 (Cody-Waite: ln2 in two parts, the
  // first product exact inside the FMA), e^r by its Taylor series to degree 13 (truncation below
  // 5e-18 at |r| = ln2 / 2), then the exponent field adds n.
  const __m256d shifter = _mm256_set1_pd(0x1.8p52);  // adding it rounds to an integer
  const __m256d t = _mm256_fmadd_pd(x, _mm256_set1_pd(1.4426950408889634074), shifter);
  const __m256d n = _mm256_sub_pd(t, shifter);
  __m256d r = _mm256_fnmadd_pd(n, _mm256_set1_pd(0x1.62e42fefa39efp-1), x);
  r = _mm256_fnmadd_pd(n, _mm256_set1_pd(0x1.abc9e3b39803fp-56), r);
  // Estrin's scheme (pairs, then r^2, r^4, r^8): a shorter dependency chain than Horner's.
  const __m256d r2 = _mm256_mul_pd(r, r);
  const __m256d r4 = _mm256_mul_pd(r2, r2);
  const __m256d r8 = _mm256_mul_pd(r4, r4);
  const __m256d q0 = _mm256_add_pd(_mm256_set1_pd(1.0), r);
  const __m256d q1 = _mm256_fmadd_pd(_mm256_set1_pd(1.0 / 6), r, _mm256_set1_pd(1.0 / 2));
  const __m256d q2 = _mm256_fmadd_pd(_mm256_set1_pd(1.0 / 120), r, _mm256_set1_pd(1.0 / 24));
  const __m256d q3 = _mm256_fmadd_pd(_mm256_set1_pd(1.0 / 5040), r, _mm256_set1_pd(1.0 / 720));
  const __m256d q4 = _mm256_fmadd_pd(_mm256_set1_pd(1.0 / 362880), r, _mm256_set1_pd(1.0 / 40320));
  const __m256d q5 =
      _mm256_fmadd_pd(_mm256_set1_pd(1.0 / 39916800), r, _mm256_set1_pd(1.0 / 3628800));
  const __m256d q6 =
      _mm256_fmadd_pd(_mm256_set1_pd(1.0 / 6227020800), r, _mm256_set1_pd(1.0 / 479001600));
  const __m256d s0 = _mm256_fmadd_pd(q1, r2, q0);
  const __m256d s1 = _mm256_fmadd_pd(q3, r2, q2);
  const __m256d s2 = _mm256_fmadd_pd(q5, r2, q4);
  const __m256d t0 = _mm256_fmadd_pd(s1, r4, s0);
  const __m256d t1 = _mm256_fmadd_pd(q6, r4, s2);
  const __m256d p = _mm256_fmadd_pd(t1, r8, t0);
  // t's low mantissa bits hold n (offset by 2^51, which the shift drops): 2^n = (n + 1023) << 52.
  const __m256i bits =
      _mm256_slli_epi64(_mm256_add_epi64(_mm256_castpd_si256(t), _mm256_set1_epi64x(1023)), 52);
  return _mm256_mul_pd(p, _mm256_castsi256_pd(bits));
}

// A 4-bit mask of the lanes whose argument the polynomial handles.
__attribute__((target("avx2,fma"))) inline int in_range(__m256d x) {
  const __m256d magnitude = _mm256_andnot_pd(_mm256_set1_pd(-0.0), x);
  return _mm256_movemask_pd(_mm256_cmp_pd(magnitude, _mm256_set1_pd(kExpLimit), _CMP_LE_OQ));
}

// The f32 that every value in [d (1 − delta), d (1 + delta)] rounds to, and a 4-bit mask of the
// lanes where there is one (d > 0 here; a NaN d fails).
__attribute__((target("avx2,fma"))) inline __m128 round_if_safe(__m256d d, double delta, int& ok) {
  const __m128 lo = _mm256_cvtpd_ps(_mm256_mul_pd(d, _mm256_set1_pd(1.0 - delta)));
  const __m128 hi = _mm256_cvtpd_ps(_mm256_mul_pd(d, _mm256_set1_pd(1.0 + delta)));
  ok = _mm_movemask_ps(_mm_cmpeq_ps(lo, hi));
  return lo;
}

__attribute__((target("avx2,fma"))) void exp_avx2(const double* x, std::int64_t n, double* y) {
  std::int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const __m256d v = _mm256_loadu_pd(x + i);
    const int ok = in_range(v);
    if (ok != 0xF) {  // x may be y: keep the arguments
      alignas(32) double arg[4];
      _mm256_store_pd(arg, v);
      _mm256_storeu_pd(y + i, exp4(v));
      for (int l = 0; l < 4; ++l)
        if (((ok >> l) & 1) == 0) y[i + l] = std::exp(arg[l]);
      continue;
    }
    _mm256_storeu_pd(y + i, exp4(v));
  }
  for (; i < n; ++i) y[i] = std::exp(x[i]);
}

__attribute__((target("avx2,fma"))) void sigmoid_avx2(const float* x, std::int64_t n, float* s) {
  const __m256d one = _mm256_set1_pd(1.0);
  std::int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const __m256d minus_x =
        _mm256_sub_pd(_mm256_setzero_pd(), _mm256_cvtps_pd(_mm_loadu_ps(x + i)));
    const int in = in_range(minus_x);
    const __m256d d = _mm256_div_pd(one, _mm256_add_pd(one, exp4(minus_x)));
    int safe = 0;
    _mm_storeu_ps(s + i, round_if_safe(d, kSigmoidDelta, safe));
    if ((in & safe) != 0xF)
      for (int l = 0; l < 4; ++l)
        if ((((in & safe) >> l) & 1) == 0)
          s[i + l] = static_cast<float>(sigmoid_reference(x[i + l]));
  }
  for (; i < n; ++i) s[i] = static_cast<float>(sigmoid_reference(x[i]));
}

// The vector part of softmax_scores: false when some score lies too close to a rounding
// boundary (the caller then recomputes the row).
__attribute__((target("avx2,fma"))) bool softmax_avx2(const float* x, std::int64_t n, float row_max,
                                                      float* s, double* work) {
  const __m256d shift = _mm256_set1_pd(static_cast<double>(row_max));
  std::int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    _mm256_storeu_pd(work + i, _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + i)), shift));
  for (; i < n; ++i) work[i] = static_cast<double>(x[i]) - static_cast<double>(row_max);
  exp_avx2(work, n, work);
  double sum = 0.0;
  for (i = 0; i < n; ++i) sum += work[i];  // index order, as the reference sums
  const __m256d total = _mm256_set1_pd(sum);
  const double delta = softmax_delta(n);
  int all = 0xF;
  for (i = 0; i + 4 <= n; i += 4) {
    int safe = 0;
    _mm_storeu_ps(s + i,
                  round_if_safe(_mm256_div_pd(_mm256_loadu_pd(work + i), total), delta, safe));
    all &= safe;
  }
  for (; i < n; ++i) {
    const double d = work[i] / sum;
    const float lo = static_cast<float>(d * (1.0 - delta));
    if (!(lo == static_cast<float>(d * (1.0 + delta)))) return false;
    s[i] = lo;
  }
  return all == 0xF;
}

// ScoreSums::add: the running sums, and the smallest nonzero and the largest magnitude.
__attribute__((target("avx2"))) void add_scores_avx2(const float* s, std::int64_t n, double* sum,
                                                     float& smallest, float& largest,
                                                     bool& nonfinite) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const __m256 zero = _mm256_setzero_ps(),
               inf = _mm256_set1_ps(std::numeric_limits<float>::infinity());
  __m256 low = _mm256_set1_ps(smallest), high = _mm256_set1_ps(largest), bad = zero;
  std::int64_t e = 0;
  for (; e + 8 <= n; e += 8) {
    const __m256 v = _mm256_loadu_ps(s + e);
    const __m256 a = _mm256_and_ps(v, abs_mask);
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, inf, _CMP_NLT_UQ));  // NaN or infinity
    high = _mm256_max_ps(high, a);
    low = _mm256_min_ps(low, _mm256_blendv_ps(a, inf, _mm256_cmp_ps(a, zero, _CMP_EQ_OQ)));
    _mm256_storeu_pd(sum + e, _mm256_add_pd(_mm256_loadu_pd(sum + e),
                                            _mm256_cvtps_pd(_mm256_castps256_ps128(v))));
    _mm256_storeu_pd(sum + e + 4, _mm256_add_pd(_mm256_loadu_pd(sum + e + 4),
                                                _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1))));
  }
  alignas(32) float lows[8], highs[8];
  _mm256_store_ps(lows, low);
  _mm256_store_ps(highs, high);
  nonfinite = nonfinite || _mm256_movemask_ps(bad) != 0;
  for (int l = 0; l < 8; ++l) {
    smallest = lows[l] < smallest ? lows[l] : smallest;
    largest = highs[l] > largest ? highs[l] : largest;
  }
  for (; e < n; ++e) {
    const float a = std::fabs(s[e]);
    nonfinite = nonfinite || !(a < std::numeric_limits<float>::infinity());
    largest = a > largest ? a : largest;
    smallest = a > 0.0f && a < smallest ? a : smallest;
    sum[e] += s[e];
  }
}

void softmax_reference(const float* x, std::int64_t n, float row_max, float* s, double* work) {
  double sum = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    work[i] = std::exp(static_cast<double>(x[i]) - static_cast<double>(row_max));
    sum += work[i];
  }
  for (std::int64_t i = 0; i < n; ++i) s[i] = static_cast<float>(work[i] / sum);
}

}  // namespace

double sigmoid_reference(double x) { return 1.0 / (1.0 + std::exp(-x)); }

void ScoreSums::add(const float* scores) {
  const auto n = static_cast<std::int64_t>(sum.size());
  if (has_avx2()) return add_scores_avx2(scores, n, sum.data(), smallest, largest, nonfinite);
  for (std::int64_t e = 0; e < n; ++e) {
    const float a = std::fabs(scores[e]);
    nonfinite = nonfinite || !(a < std::numeric_limits<float>::infinity());
    largest = a > largest ? a : largest;
    smallest = a > 0.0f && a < smallest ? a : smallest;
    sum[static_cast<std::size_t>(e)] += scores[e];
  }
}

void ScoreSums::merge(const ScoreSums& other) {
  for (std::size_t e = 0; e < sum.size(); ++e) sum[e] += other.sum[e];
  smallest = std::min(smallest, other.smallest);
  largest = std::max(largest, other.largest);
  nonfinite = nonfinite || other.nonfinite;
}

bool ScoreSums::exact(std::int64_t rows) const {
  if (nonfinite) return false;
  if (largest == 0.0f) return true;  // every score is zero
  int exponent = 0;
  std::frexp(smallest, &exponent);  // smallest = m · 2^exponent with m in [0.5, 1)
  const double ulp = std::ldexp(1.0, std::max(exponent - 24, -149));
  return static_cast<double>(rows) * static_cast<double>(largest) <= std::ldexp(ulp, 53);
}

void exp_f64(const double* x, std::int64_t n, double* y) {
  if (has_avx2()) return exp_avx2(x, n, y);
  for (std::int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i]);
}

void sigmoid_scores(const float* x, std::int64_t n, float* s) {
  if (has_avx2()) return sigmoid_avx2(x, n, s);
  for (std::int64_t i = 0; i < n; ++i) s[i] = static_cast<float>(sigmoid_reference(x[i]));
}

void softmax_scores(const float* x, std::int64_t n, float* s, double* work) {
  float row_max = -std::numeric_limits<float>::infinity();
  for (std::int64_t i = 0; i < n; ++i) row_max = x[i] > row_max ? x[i] : row_max;
  if (has_avx2() && softmax_avx2(x, n, row_max, s, work)) return;
  softmax_reference(x, n, row_max, s, work);
}

}  // namespace porta::detail::cpu::moe
