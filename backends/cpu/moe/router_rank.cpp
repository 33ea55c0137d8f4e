// The router's ranking steps (router_rank.hpp): an insertion list for the K best, which with
// AVX2 first compares eight values at a time with the current K-th best (or the floor) so that
// most values cost no branch, and the groups' best two members, with AVX2 eight at a time.
#include "moe/router_rank.hpp"

#include <immintrin.h>

#include <cmath>
#include <limits>

#include "moe/moe_cpu.hpp"

namespace porta::detail::cpu::moe {
namespace {

constexpr float kMinusInf = -std::numeric_limits<float>::infinity();

// One value into the list: the shared step of both versions.
inline std::int64_t insert(float v, std::int64_t e, std::int64_t count, std::int64_t* ids,
                           float* kept, std::int64_t size) {
  if (size == count && !(v > kept[count - 1])) return size;
  std::int64_t p = size < count ? size : count - 1;
  while (p > 0 && kept[p - 1] < v) {
    kept[p] = kept[p - 1];
    ids[p] = ids[p - 1];
    --p;
  }
  kept[p] = v;
  ids[p] = e;
  return size < count ? size + 1 : size;
}

__attribute__((target("avx2"))) std::int64_t select_best_avx2(const float* values,
                                                              std::int64_t first, std::int64_t last,
                                                              std::int64_t count, std::int64_t* ids,
                                                              float* kept, std::int64_t size,
                                                              float floor) {
  std::int64_t e = first;
  const __m256 at_least = _mm256_set1_ps(floor);
  for (; e + 8 <= last; e += 8) {
    const __m256 v = _mm256_loadu_ps(values + e);
    // Until the list is full every value from the floor up enters; then only values above the
    // K-th best.
    const __m256 pass = size < count
                            ? _mm256_cmp_ps(v, at_least, _CMP_GE_OQ)
                            : _mm256_cmp_ps(v, _mm256_set1_ps(kept[count - 1]), _CMP_GT_OQ);
    auto mask = static_cast<unsigned>(_mm256_movemask_ps(pass));
    // Lanes in index order; insert() compares again with the K-th best, which may have risen.
    while (mask != 0) {
      const int lane = __builtin_ctz(mask);
      mask &= mask - 1;
      size = insert(values[e + lane], e + lane, count, ids, kept, size);
    }
  }
  for (; e < last; ++e)
    if (values[e] >= floor) size = insert(values[e], e, count, ids, kept, size);
  return size;
}

// The best two of the union of two (best, second) pairs, lane by lane.
__attribute__((target("avx2"))) inline void merge_top2(__m256& best, __m256& second, __m256 b1,
                                                       __m256 b2) {
  second = _mm256_max_ps(_mm256_min_ps(best, b1), _mm256_max_ps(second, b2));
  best = _mm256_max_ps(best, b1);
}

__attribute__((target("avx2"))) void group_top2_avx2(const float* c, std::int64_t groups,
                                                     std::int64_t per, float* best_out,
                                                     float* second_out) {
  for (std::int64_t g = 0; g < groups; ++g) {
    const float* m = c + g * per;
    __m256 best = _mm256_set1_ps(kMinusInf), second = best;
    for (std::int64_t j = 0; j < per; j += 8) {
      const __m256 v = _mm256_loadu_ps(m + j);
      second = _mm256_max_ps(second, _mm256_min_ps(best, v));
      best = _mm256_max_ps(best, v);
    }
    // Eight lanes' pairs down to one: swap the halves, then pairs of lanes, then lanes.
    merge_top2(best, second, _mm256_permute2f128_ps(best, best, 1),
               _mm256_permute2f128_ps(second, second, 1));
    merge_top2(best, second, _mm256_permute_ps(best, 0x4E), _mm256_permute_ps(second, 0x4E));
    merge_top2(best, second, _mm256_permute_ps(best, 0xB1), _mm256_permute_ps(second, 0xB1));
    best_out[g] = _mm256_cvtss_f32(best);
    second_out[g] = _mm256_cvtss_f32(second);
  }
}

__attribute__((target("avx2"))) bool selection_values_avx2(const float* v, const float* bias,
                                                           std::int64_t n, float* c) {
  const __m256 minus_inf = _mm256_set1_ps(kMinusInf);
  __m256 any_nan = _mm256_setzero_ps();
  std::int64_t e = 0;
  for (; e + 8 <= n; e += 8) {
    __m256 x = _mm256_loadu_ps(v + e);
    if (bias != nullptr) x = _mm256_add_ps(x, _mm256_loadu_ps(bias + e));
    const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    any_nan = _mm256_or_ps(any_nan, nan);
    _mm256_storeu_ps(c + e, _mm256_blendv_ps(x, minus_inf, nan));
  }
  bool found = _mm256_movemask_ps(any_nan) != 0;
  for (; e < n; ++e) {
    const float x = bias != nullptr ? v[e] + bias[e] : v[e];
    found = found || std::isnan(x);
    c[e] = std::isnan(x) ? kMinusInf : x;
  }
  return found;
}

}  // namespace

bool selection_values(const float* v, const float* bias, std::int64_t n, float* c) {
  if (has_avx2()) return selection_values_avx2(v, bias, n, c);
  bool found = false;
  for (std::int64_t e = 0; e < n; ++e) {
    const float x = bias != nullptr ? v[e] + bias[e] : v[e];
    found = found || std::isnan(x);
    c[e] = std::isnan(x) ? kMinusInf : x;
  }
  return found;
}

std::int64_t select_best(const float* values, std::int64_t first, std::int64_t last,
                         std::int64_t count, std::int64_t* ids, float* kept, std::int64_t size,
                         float floor) {
  if (has_avx2()) return select_best_avx2(values, first, last, count, ids, kept, size, floor);
  for (std::int64_t e = first; e < last; ++e)
    if (values[e] >= floor) size = insert(values[e], e, count, ids, kept, size);
  return size;
}

void group_top2(const float* c, std::int64_t groups, std::int64_t per, float* best_out,
                float* second_out) {
  if (has_avx2() && per % 8 == 0) return group_top2_avx2(c, groups, per, best_out, second_out);
  for (std::int64_t g = 0; g < groups; ++g) {
    float best = kMinusInf, second = kMinusInf;
    for (std::int64_t e = g * per; e < (g + 1) * per; ++e) {
      if (c[e] > best) {
        second = best;
        best = c[e];
      } else if (c[e] > second) {
        second = c[e];
      }
    }
    best_out[g] = best;
    second_out[g] = second;
  }
}

}  // namespace porta::detail::cpu::moe
