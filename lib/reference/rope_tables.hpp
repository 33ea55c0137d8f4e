// Rope's per-pair frequencies and YaRN's magnitude, as the op defines them: every backend takes
// its tables from here (in double, once per node at compile time), so they agree with the
// reference exactly and differ only in how they rotate.
#pragma once

#include <cstdint>
#include <vector>

#include <porta/ops.hpp>

namespace porta::detail {

// Frequency i (of rotary_dim / 2) of the rotation with YaRN's blend applied. Linear scaling
// divides the positions instead (rope_position_divisor).
std::vector<double> rope_inverse_frequencies(const RopeAttrs& attrs, std::int64_t rotary_dim);
// What positions are divided by: the factor for linear scaling, 1 otherwise.
double rope_position_divisor(const RopeScaling& scaling);
// What cos and sin are multiplied by: yarn_mscale(factor, mscale) / yarn_mscale(factor,
// mscale_all_dim) for YaRN (DeepSeek's convention), 1 otherwise.
double rope_magnitude(const RopeScaling& scaling);

}  // namespace porta::detail
