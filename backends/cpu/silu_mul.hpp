// silu(gate) · up over a run of floats, the swiglu op's arithmetic: gate / (1 + exp(−gate)) · up,
// with exp vectorized (AVX-512, or AVX2 + FMA; plain C++ without them). Within a few ulp of the
// reference's (which computes in double); NaN stays NaN.
#pragma once

#include <cstdint>

#include "moe/dot_rows.hpp"

namespace porta::detail::cpu {

// On the best instruction set this CPU has (moe::best_dot_isa()), or on `isa`, one of
// moe::available_dot_isas() (the tests run each).
void silu_mul(const float* gate, const float* up, float* out, std::int64_t n);
void silu_mul(moe::DotIsa isa, const float* gate, const float* up, float* out, std::int64_t n);

}  // namespace porta::detail::cpu
