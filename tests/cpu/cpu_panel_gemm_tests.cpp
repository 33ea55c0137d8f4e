// The expert-block GEMM kernel (backends/cpu/moe/panel_gemm.hpp) on each vector ISA this CPU has,
// forced one at a time (AVX-512 and AVX2 builds), against a double-precision scalar sum: bf16 and
// f32 weights, every row count 1..50 (each register-tile height and its padding), more rows than
// one chunk, K across the kernel's K-blocks and past the size where chunks shrink, and column
// ranges that are not multiples of any tile width.
#include <cmath>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <porta/error.hpp>

#include "../../backends/cpu/moe/panel_gemm.hpp"

namespace cpu_panel_gemm_tests {

namespace cm = porta::detail::cpu::moe;

namespace {

std::vector<cm::DotIsa> vector_isas() {
  std::vector<cm::DotIsa> isas;
  for (const cm::DotIsa isa : cm::available_dot_isas())
    if (isa != cm::DotIsa::Plain) isas.push_back(isa);
  return isas;
}

// y [rows, ldy] cell by cell: columns [n_begin, n) the double sum of x's row by wf's (within
// 1e-6 of the sum of |terms|), every other column still holding the sentinel -7 exactly.
void check_cells(const std::string& what, const std::vector<float>& x, std::int64_t ldx,
                 std::int64_t rows, const std::vector<float>& wf, std::int64_t k,
                 std::int64_t n_begin, std::int64_t n, const std::vector<float>& y,
                 std::int64_t ldy) {
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t j = 0; j < ldy; ++j) {
      const float got = y[static_cast<std::size_t>(r * ldy + j)];
      double exact = -7.0, magnitude = 0;
      if (j >= n_begin && j < n) {
        exact = 0;
        for (std::int64_t i = 0; i < k; ++i) {
          const double term = static_cast<double>(x[static_cast<std::size_t>(r * ldx + i)]) *
                              wf[static_cast<std::size_t>(j * k + i)];
          exact += term;
          magnitude += std::fabs(term);
        }
      }
      // The message is built only for a failing cell: INFO would format one per cell.
      if (std::fabs(got - exact) > 1e-6 * magnitude) {
        INFO(what << " rows=" << rows << " k=" << k << " n=" << n << " r=" << r << " col=" << j);
        REQUIRE(got == Approx(exact).margin(1e-6 * magnitude));
      }
    }
}

// One call with columns [3, n) of y: columns 0..2 and the padding of each row keep their
// sentinel.
void check_case(cm::DotIsa isa, porta::DType wdtype, std::int64_t rows, std::int64_t k,
                std::int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  const std::int64_t ldx = k + 5, ldy = n + 2, n_begin = 3;
  std::vector<float> x(static_cast<std::size_t>(rows * ldx));
  for (auto& v : x) v = dist(rng);
  std::vector<float> wf(static_cast<std::size_t>(n * k));
  for (auto& v : wf) v = dist(rng);
  std::vector<std::uint16_t> wb(wf.size());
  for (std::size_t i = 0; i < wf.size(); ++i) {
    porta::store_from_f32(wb.data(), porta::DType::BF16, i, wf[i]);
    if (wdtype == porta::DType::BF16) wf[i] = porta::bf16_bits_to_f32(wb[i]);
  }
  const void* w = wdtype == porta::DType::BF16 ? static_cast<const void*>(wb.data())
                                               : static_cast<const void*>(wf.data());
  std::vector<float> y(static_cast<std::size_t>(rows * ldy), -7.0f);
  std::vector<float> scratch(cm::panel_scratch_floats(isa, k));
  cm::panel_gemm_isa(isa, x.data(), ldx, rows, w, wdtype, k, n_begin, n, y.data(), ldy,
                     scratch.data());
  check_cells(fmt::format("{} {}", cm::dot_isa_name(isa), porta::dtype_name(wdtype)), x, ldx, rows,
              wf, k, n_begin, n, y, ldy);
}

}  // namespace

TEST_CASE("The panel GEMM matches a double sum for every row count 1..50", "[cpu][panel]") {
  std::mt19937 rng(21);
  const auto isas = vector_isas();
  if (isas.empty()) SUCCEED("no AVX2 on this CPU: the expert GEMM runs oneDNN's sgemm");
  for (const cm::DotIsa isa : isas)
    for (const porta::DType wdtype : {porta::DType::F32, porta::DType::BF16})
      for (std::int64_t rows = 1; rows <= 50; ++rows)
        for (const std::int64_t k : {1, 17, 100}) check_case(isa, wdtype, rows, k, 40, rng);
}

TEST_CASE("The panel GEMM accumulates across K blocks and row chunks", "[cpu][panel]") {
  std::mt19937 rng(22);
  for (const cm::DotIsa isa : vector_isas())
    for (const porta::DType wdtype : {porta::DType::F32, porta::DType::BF16}) {
      // K = 1400 spans two K blocks of every tile shape (512 to 1360 columns); 70 and 130 rows
      // take more than one chunk of 64 (AVX-512) or 24 (AVX2) rows.
      for (const std::int64_t rows : {1, 16, 17, 48, 64, 70, 130})
        check_case(isa, wdtype, rows, 1400, 29, rng);
      // A K this long shrinks the chunks (the transposed rows must stay within the L2).
      check_case(isa, wdtype, 40, 13000, 7, rng);
    }
}

TEST_CASE("The packed-x GEMM matches a double sum across chunks and tile groups", "[cpu][panel]") {
  std::mt19937 rng(23);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (const cm::DotIsa isa : vector_isas())
    // 150 rows: chunks of 64 (AVX-512; 24 with AVX2) and a partial one; 203 weight rows: two
    // groups of 96 tiles and a partial group ending in a partial tile; K = 300 spans several
    // L1 stretches of every tile shape.
    for (const auto& [rows, k, n] : {std::tuple{150L, 300L, 203L}, {7L, 33L, 5L}, {64L, 1L, 96L}}) {
      const std::int64_t ldx = k + 3, ldy = n + 1;
      std::vector<float> x(static_cast<std::size_t>(rows * ldx)),
          w(static_cast<std::size_t>(n * k));
      for (auto& v : x) v = dist(rng);
      for (auto& v : w) v = dist(rng);
      std::vector<float> packed(cm::packed_x_floats(isa, rows, k), -3.0f);
      const std::int64_t chunk_rows = cm::panel_chunk_rows(isa, k);
      // Chunks packed out of order, as threads may.
      for (std::int64_t c = (rows - 1) / chunk_rows; c >= 0; --c)
        cm::pack_x_chunk(isa, x.data(), ldx, rows, k, c, packed.data());
      std::vector<float> scratch(cm::panel_scratch_floats(isa, k));
      std::vector<float> y(static_cast<std::size_t>(rows * ldy), -7.0f);
      cm::packed_panel_gemm(isa, packed.data(), rows, w.data(), k, n, y.data(), ldy,
                            scratch.data());
      check_cells(std::string("packed ") + cm::dot_isa_name(isa), x, ldx, rows, w, k, 0, n, y, ldy);
    }
}

TEST_CASE("The panel GEMM leaves y alone for empty ranges and zeroes it for K = 0",
          "[cpu][panel]") {
  for (const cm::DotIsa isa : vector_isas()) {
    std::vector<float> scratch(cm::panel_scratch_floats(isa, 0));
    const float x[2] = {1.0f, 2.0f};
    const float w[4] = {1.0f, 1.0f, 1.0f, 1.0f};
    std::vector<float> y(8, 5.0f);
    cm::panel_gemm_isa(isa, x, 0, 2, w, porta::DType::F32, 0, 1, 3, y.data(), 4, scratch.data());
    CHECK(y == std::vector<float>{5, 0, 0, 5, 5, 0, 0, 5});
    cm::panel_gemm_isa(isa, x, 1, 2, w, porta::DType::F32, 1, 2, 2, y.data(), 4, scratch.data());
    CHECK(y == std::vector<float>{5, 0, 0, 5, 5, 0, 0, 5});
  }
}

TEST_CASE("The panel GEMM names what it cannot run", "[cpu][panel]") {
  float scratch[64] = {};
  const float x[1] = {1.0f};
  float y[1] = {0.0f};
  CHECK_THROWS_AS(
      cm::panel_gemm_isa(cm::DotIsa::Plain, x, 1, 1, x, porta::DType::F32, 1, 0, 1, y, 1, scratch),
      porta::Error);
  CHECK_THROWS_WITH(
      cm::panel_gemm_isa(cm::DotIsa::Plain, x, 1, 1, x, porta::DType::F32, 1, 0, 1, y, 1, scratch),
      Catch::Matchers::Contains("no plain kernel"));
  CHECK_THROWS_WITH(
      cm::panel_gemm_isa(cm::best_dot_isa(), x, 1, 1, x, porta::DType::I8, 1, 0, 1, y, 1, scratch),
      Catch::Matchers::Contains("weights of dtype i8"));
  CHECK_THROWS_WITH(cm::packed_panel_gemm(cm::DotIsa::Plain, x, 1, x, 1, 1, y, 1, scratch),
                    Catch::Matchers::Contains("no plain kernel"));
  CHECK_THROWS_WITH(cm::packed_x_floats(cm::DotIsa::Plain, 1, 1),
                    Catch::Matchers::Contains("no plain kernel"));
  CHECK(y[0] == 0.0f);
}

}  // namespace cpu_panel_gemm_tests
