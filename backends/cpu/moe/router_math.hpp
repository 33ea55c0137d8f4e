// The router's scores, vectorised and still bit-identical to the reference backend's
// (lib/reference/moe_router.cpp), which computes them in double with std::exp and rounds once to
// f32. Standalone (no oneDNN) so that the tests can call it directly.
//
// How the results stay exact: a vectorised double exp (range reduction and a degree-13
// polynomial, within a few double ulps of std::exp) gives a score d whose relative distance from
// the reference's double r is below 2^-48. Rounding to nearest is monotone, so when d · (1 − δ)
// and d · (1 + δ) (δ = 2^-44, a margin of 16x over that bound) round to the same f32, r rounds
// to it too, and that f32 is the result. Otherwise, which happens for about 1 score in 2^19,
// d lies within δ of an f32 rounding boundary and the score (for softmax, its whole row) is
// recomputed with the reference's own scalar formula. So the f32 scores equal the reference's
// always, not merely with high probability; tests/cpu/cpu_router_math_tests.cpp checks both the
// exp's error bound and the equality.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

namespace porta::detail::cpu::moe {

// y[i] = e^x[i] (y may be x) to within a few ulps (the AVX2 polynomial; std::exp where the CPU has
// no AVX2 and for |x| > 708, NaN and infinities).
void exp_f64(const double* x, std::int64_t n, double* y);

// s[i] = f32(1 / (1 + e^-x[i])) computed in double: the reference's sigmoid score, bit for bit.
void sigmoid_scores(const float* x, std::int64_t n, float* s);

// s[i] = f32(e_i / Σ e_j) with e_i = e^(x[i] − max x) in double, summed in index order: the
// reference's softmax score for a row without NaN, bit for bit. `work` holds n doubles.
void softmax_scores(const float* x, std::int64_t n, float* s, double* work);

// Per-expert sums of f32 scores in double (for mean_score), with what decides whether they are
// exact: every score is a multiple of the smallest nonzero |score|'s ulp q, so is every partial
// sum, and a multiple of q below 2^53 q is a double. With rows · max|s| <= 2^53 q no partial
// sum rounds, in whatever order the scores are added, and the sums equal the reference's
// row-order ones bit for bit. A NaN or infinite score makes them inexact.
struct ScoreSums {
  explicit ScoreSums(std::int64_t experts) : sum(static_cast<std::size_t>(experts), 0.0) {}

  void add(const float* scores);  // one row of `experts` scores
  void merge(const ScoreSums& other);
  bool exact(std::int64_t rows) const;

  std::vector<double> sum;
  float smallest = std::numeric_limits<float>::infinity();  // smallest nonzero |score|
  float largest = 0.0f;                                     // largest |score|
  bool nonfinite = false;
};

// The reference's scalar formulas, the fallback above and what the tests compare against.
double sigmoid_reference(double x);

}  // namespace porta::detail::cpu::moe
