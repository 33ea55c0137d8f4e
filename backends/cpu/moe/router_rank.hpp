// The router's ranking steps for one row, AVX2 where the CPU has it: the K best of a list of
// values by (value descending, index ascending), and each group's value (its best member, or
// the sum of its best two). Both give exactly the reference's rankings: the K-list keeps the
// same total order, and a group's best two members are the same values whatever order they are
// found in (only the sign of a zero sum can differ, which no comparison sees).
#pragma once

#include <cstdint>
#include <limits>

namespace porta::detail::cpu::moe {

// Merges values[first..last) into the `size` best already in ids/kept (all from indices below
// `first`), keeping the `count` best by (value descending, index ascending); values are never
// NaN. Only a strictly larger value displaces a kept one, so ties keep the lower index. Values
// below `floor` are skipped: the caller passes a floor that at least `count` values of the
// whole scan reach, which leaves the result unchanged. Returns the new size (at most count).
std::int64_t select_best(const float* values, std::int64_t first, std::int64_t last,
                         std::int64_t count, std::int64_t* ids, float* kept, std::int64_t size = 0,
                         float floor = -std::numeric_limits<float>::infinity());

// c[e] = v[e] + bias[e] (bias may be null), NaN replaced by −inf (it ranks last); returns
// whether there was a NaN.
bool selection_values(const float* v, const float* bias, std::int64_t n, float* c);

// best[g] and second[g]: the largest and second largest of c[g·per .. (g+1)·per) for g in
// [0, groups) (a duplicate of the largest counts as the second; −inf for a group of one);
// c holds no NaN.
void group_top2(const float* c, std::int64_t groups, std::int64_t per, float* best, float* second);

}  // namespace porta::detail::cpu::moe
