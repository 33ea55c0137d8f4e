// The swiglu op's vectorized silu(gate) · up (backends/cpu/silu_mul.hpp) on every instruction set
// this CPU has, against the reference's definition computed in double: within a few ulp over the
// whole range exp meets (its clamps included), NaN kept, every tail length.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "../../backends/cpu/silu_mul.hpp"

namespace cpu_silu_mul_tests {

using porta::detail::cpu::silu_mul;
namespace moe = porta::detail::cpu::moe;

TEST_CASE("silu_mul is the reference's swiglu within a few ulp on every instruction set",
          "[cpu][swiglu]") {
  std::vector<float> gate, up;
  for (int i = -4000; i <= 4000; ++i) {  // -100 .. 100, through both clamps
    gate.push_back(static_cast<float>(i) * 0.025f);
    up.push_back(1.0f + static_cast<float>(i % 7) * 0.3f);
  }
  for (const float g :
       {-88.5f, -87.2f, -87.0f, -1e-30f, 0.0f, 1e-30f, 87.5f, 88.0f, 89.0f, 1e30f}) {
    gate.push_back(g);
    up.push_back(-2.0f);
  }
  const float nan = std::numeric_limits<float>::quiet_NaN();
  gate.push_back(nan);
  up.push_back(1.0f);
  for (const moe::DotIsa isa : moe::available_dot_isas()) {
    INFO("isa " << moe::dot_isa_name(isa));
    for (const std::size_t n : {gate.size(), std::size_t{0}, std::size_t{1}, std::size_t{7},
                                std::size_t{15}, std::size_t{17}, std::size_t{33}}) {
      INFO("n " << n);
      // The last n values: every tail length meets the extremes and the NaN.
      const std::size_t first = gate.size() - n;
      std::vector<float> out(n, 123.0f);
      silu_mul(isa, gate.data() + first, up.data() + first, out.data(),
               static_cast<std::int64_t>(n));
      for (std::size_t i = 0; i < n; ++i) {
        const double g = gate[first + i];
        INFO("gate " << g);
        const double want = g / (1.0 + std::exp(-g)) * up[first + i];
        if (std::isnan(want)) {
          CHECK(std::isnan(out[i]));
          continue;
        }
        // 4 ulp of the result, or of silu's smallest normal output near the lower clamp.
        const double tolerance =
            std::max(4 * std::numeric_limits<float>::epsilon() * std::fabs(want), 1e-36);
        CHECK(std::fabs(out[i] - want) <= tolerance);
      }
    }
  }
}

}  // namespace cpu_silu_mul_tests
