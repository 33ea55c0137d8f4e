// The decode dot-product loop (backends/cpu/moe/dot_rows.hpp) on every instruction set this CPU
// has (plain C++, AVX2, AVX-512), against a double-precision scalar sum, for f32, bf16 and f16
// weights, 1 to 8 rows (the specialised kernels), and widths around the vector lengths.
#include <cmath>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include "../../backends/cpu/moe/dot_rows.hpp"

namespace cpu_dot_rows_tests {

namespace cm = porta::detail::cpu::moe;

TEST_CASE("The decode dot products match a double sum on every available ISA", "[cpu][dot]") {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  const auto isas = cm::available_dot_isas();
  INFO("best: " << cm::dot_isa_name(cm::best_dot_isa()));
  CHECK(isas.front() == cm::DotIsa::Plain);
  if (__builtin_cpu_supports("avx512f")) CHECK(cm::best_dot_isa() == cm::DotIsa::Avx512);
  for (const cm::DotIsa isa : isas) {
    for (const porta::DType wdtype : {porta::DType::F32, porta::DType::BF16, porta::DType::F16}) {
      for (const std::int64_t h : {1, 15, 16, 17, 31, 32, 33, 64, 200, 2051}) {
        for (std::int64_t rows = 1; rows <= 11; ++rows) {
          const std::int64_t n = 37, ldx = h + 3, ldy = n + 2;
          std::vector<float> x(static_cast<std::size_t>(rows * ldx));
          for (auto& v : x) v = dist(rng);
          std::vector<float> wf(static_cast<std::size_t>(n * h));
          for (auto& v : wf) v = dist(rng);
          std::vector<std::uint16_t> wb(wf.size());
          if (wdtype != porta::DType::F32)
            for (std::size_t i = 0; i < wf.size(); ++i) {
              porta::store_from_f32(wb.data(), wdtype, i, wf[i]);
              // The exact values the 16-bit kernels read.
              wf[i] = porta::load_as_f32(wb.data(), wdtype, i);
            }
          const void* w = wdtype == porta::DType::F32 ? static_cast<const void*>(wf.data())
                                                      : static_cast<const void*>(wb.data());
          std::vector<float> y(static_cast<std::size_t>(rows * ldy), -7.0f);
          // Columns [3, n): the rows before n_begin stay untouched.
          cm::small_gemm_isa(isa, x.data(), ldx, rows, w, wdtype, h, 3, n, y.data(), ldy);
          for (std::int64_t r = 0; r < rows; ++r)
            for (std::int64_t j = 0; j < n; ++j) {
              const float got = y[static_cast<std::size_t>(r * ldy + j)];
              if (j < 3) {
                REQUIRE(got == -7.0f);
                continue;
              }
              double exact = 0, magnitude = 0;
              for (std::int64_t k = 0; k < h; ++k) {
                const double term = static_cast<double>(x[static_cast<std::size_t>(r * ldx + k)]) *
                                    wf[static_cast<std::size_t>(j * h + k)];
                exact += term;
                magnitude += std::fabs(term);
              }
              INFO(cm::dot_isa_name(isa) << " " << porta::dtype_name(wdtype) << " h=" << h
                                         << " rows=" << rows << " r=" << r << " col=" << j);
              REQUIRE(std::fabs(got - exact) <= 1e-6 * magnitude + 1e-30);
            }
        }
      }
    }
  }
}

}  // namespace cpu_dot_rows_tests
