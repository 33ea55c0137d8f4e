// The packed-block products (backends/cpu/ggml/block_dot.hpp) for every type with a kernel, on
// every instruction set this CPU has, forced one by one, against a double-precision sum over the
// exact dequantization (gguf::dequantize, itself checked bit for bit against the format): within
// 1e-6 of Σ|x|·max|w|; and, with unit vectors for x, every weight the kernels compute equal to
// the dequantizer's bit for bit. Blocks come from the quantizer and from random bytes (every
// code and scale bit pattern), with sane f16 scales.
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include <porta/dtype.hpp>
#include <porta/error.hpp>
#include <porta/ggml_quants.hpp>

#include "../../backends/cpu/ggml/block_dot.hpp"
#include "../../backends/cpu/ggml/q8_kernels.hpp"

namespace cpu_ggml_block_tests {

namespace cg = porta::detail::cpu::ggml;
using porta::gguf::GgmlType;

namespace {

// Offsets of a block's f16 scales, which random bytes must not turn into NaN or huge values.
std::vector<std::size_t> f16_fields(GgmlType t) {
  using G = GgmlType;  // an if chain: a switch would have to list every ggml type
  if (t == G::Q8_0 || t == G::Q4_0 || t == G::Q5_0 || t == G::IQ4_NL || t == G::IQ4_XS) return {0};
  if (t == G::Q4_1 || t == G::Q5_1 || t == G::Q4_K || t == G::Q5_K) return {0, 2};
  if (t == G::Q6_K) return {208};
  if (t == G::Q2_K) return {80, 82};
  if (t == G::Q3_K) return {108};
  return {};
}

const std::vector<GgmlType> kKernelTypes = {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1,
                                            GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::IQ4_NL,
                                            GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K,
                                            GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::IQ4_XS};

std::vector<std::byte> random_rows(GgmlType t, std::int64_t n, std::int64_t k, std::mt19937& rng,
                                   bool raw_bytes) {
  const auto traits = porta::gguf::traits_of(t);
  const std::size_t row = porta::gguf::row_bytes(t, static_cast<std::uint64_t>(k));
  std::vector<std::byte> out(row * static_cast<std::size_t>(n));
  if (raw_bytes) {
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_real_distribution<float> scale(-0.05f, 0.05f);
    for (auto& b : out) b = static_cast<std::byte>(byte(rng));
    for (std::size_t at = 0; at < out.size(); at += traits.block_bytes)
      for (std::size_t f : f16_fields(t)) {
        const std::uint16_t bits = porta::f32_to_f16_bits(scale(rng));
        std::memcpy(&out[at + f], &bits, 2);
      }
    return out;
  }
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values(static_cast<std::size_t>(n * k));
  for (auto& v : values) v = normal(rng);
  porta::gguf::quantize(t, values, out);
  return out;
}

}  // namespace

TEST_CASE("packed-block dot products match the exact dequantization on every ISA", "[cpu][ggml]") {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  const auto isas = cg::available_block_isas();
  CHECK(isas.front() == cg::BlockIsa::Plain);
  // The best the CPU has, unless PORTA_GGML_ISA caps it.
  if (__builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      cg::ggml_isa_cap() == cg::GgmlIsaCap::None)
    CHECK(cg::best_block_isa() == cg::BlockIsa::Avx512);
  if (cg::ggml_isa_cap() == cg::GgmlIsaCap::Avx2)
    CHECK(cg::best_block_isa() <= cg::BlockIsa::Avx2);
  if (cg::ggml_isa_cap() == cg::GgmlIsaCap::Plain)
    CHECK(cg::best_block_isa() == cg::BlockIsa::Plain);
  for (const GgmlType t : kKernelTypes) {
    REQUIRE(cg::has_block_kernel(t));
    const std::int64_t block = porta::gguf::traits_of(t).block_elements;
    for (const std::int64_t k : {block, 3 * block, std::int64_t{1024} + (block == 32 ? 96 : 0)}) {
      for (const bool raw : {false, true}) {
        const std::int64_t n = 9;
        const auto w = random_rows(t, n, k, rng, raw);
        const std::size_t row_bytes = porta::gguf::row_bytes(t, static_cast<std::uint64_t>(k));
        std::vector<float> x(static_cast<std::size_t>(k)), wf(static_cast<std::size_t>(k));
        for (auto& v : x) v = dist(rng);
        for (std::int64_t r = 0; r < n; ++r) {
          porta::gguf::dequantize(t, {w.data() + r * row_bytes, row_bytes}, wf);
          double exact = 0, xabs = 0, wmax = 0;
          for (std::int64_t i = 0; i < k; ++i) {
            exact += static_cast<double>(wf[i]) * x[i];
            xabs += std::fabs(x[i]);
            wmax = std::max(wmax, static_cast<double>(std::fabs(wf[i])));
          }
          REQUIRE(wmax > 0);
          for (const cg::BlockIsa isa : isas) {
            INFO(porta::gguf::type_name(t) << " k " << k << " raw " << raw << " row " << r
                                           << " isa " << cg::block_isa_name(isa));
            const float got = cg::block_dot(isa, t, w.data() + r * row_bytes, x.data(), k);
            CHECK(std::fabs(got - exact) <= 1e-6 * xabs * wmax);
          }
        }
      }
    }
  }
}

TEST_CASE("packed-block kernels compute and store every weight exactly as the dequantizer",
          "[cpu][ggml]") {
  // x = unit vectors: y[r][n] = W[n][r] · 1 plus zeros, which is the weight itself.
  std::mt19937 rng(11);
  for (const GgmlType t : kKernelTypes)
    for (const bool raw : {false, true}) {
      const std::int64_t block = porta::gguf::traits_of(t).block_elements;
      const std::int64_t n = 5, k = 2 * block;
      const auto w = random_rows(t, n, k, rng, raw);
      const std::size_t row_bytes = porta::gguf::row_bytes(t, static_cast<std::uint64_t>(k));
      std::vector<float> x(static_cast<std::size_t>(k * k), 0.0f);
      for (std::int64_t i = 0; i < k; ++i) x[static_cast<std::size_t>(i * k + i)] = 1.0f;
      std::vector<float> wf(static_cast<std::size_t>(n * k));
      porta::gguf::dequantize(t, w, wf);
      for (const cg::BlockIsa isa : cg::available_block_isas()) {
        std::vector<float> y(static_cast<std::size_t>(k * n));
        cg::block_matmul(isa, t, w.data(), n, k, x.data(), k, k, y.data(), n);
        int mismatches = 0;
        for (std::int64_t j = 0; j < n; ++j)
          for (std::int64_t i = 0; i < k; ++i)
            mismatches +=
                y[static_cast<std::size_t>(i * n + j)] != wf[static_cast<std::size_t>(j * k + i)];
        INFO(porta::gguf::type_name(t)
             << " raw " << raw << " isa " << cg::block_isa_name(isa) << " row bytes " << row_bytes);
        CHECK(mismatches == 0);
        // The same weights stored: dequantize_block_rows (the GEMM panels' dequantizer), with a
        // row stride past k.
        std::vector<float> rows_out(static_cast<std::size_t>(n * (k + 3)), -5.0f);
        cg::dequantize_block_rows(isa, t, w.data(), n, k, rows_out.data(), k + 3);
        int stored_mismatches = 0;
        for (std::int64_t j = 0; j < n; ++j) {
          for (std::int64_t i = 0; i < k; ++i)
            stored_mismatches += rows_out[static_cast<std::size_t>(j * (k + 3) + i)] !=
                                 wf[static_cast<std::size_t>(j * k + i)];
          for (std::int64_t i = k; i < k + 3; ++i)
            stored_mismatches += rows_out[static_cast<std::size_t>(j * (k + 3) + i)] != -5.0f;
        }
        CHECK(stored_mismatches == 0);
      }
    }
}

TEST_CASE("packed-block matmul: one to many rows of x agree with the rows", "[cpu][ggml]") {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  // K 2048 from 8 rows on takes K in stretches of whole blocks (x beyond L1), each added on.
  for (const GgmlType t : kKernelTypes)
    for (const std::int64_t k : {512, 2048}) {
      const std::int64_t n = 37, ldx = k + 5, ldy = n + 3;
      const auto w = random_rows(t, n, k, rng, false);
      const std::size_t row_bytes = porta::gguf::row_bytes(t, k);
      for (const cg::BlockIsa isa : cg::available_block_isas())
        for (const std::int64_t rows : {1, 2, 3, 4, 5, 6, 8, 9, 12, 15}) {
          std::vector<float> x(static_cast<std::size_t>(rows * ldx));
          for (auto& v : x) v = dist(rng);
          std::vector<float> y(static_cast<std::size_t>(rows * ldy), -7.0f);
          cg::block_matmul(isa, t, w.data(), n, k, x.data(), ldx, rows, y.data(), ldy);
          std::vector<float> wf(static_cast<std::size_t>(k));
          for (std::int64_t j = 0; j < n; ++j) {
            porta::gguf::dequantize(t, {w.data() + j * row_bytes, row_bytes}, wf);
            for (std::int64_t r = 0; r < rows; ++r) {
              double exact = 0, scale = 0;
              for (std::int64_t i = 0; i < k; ++i) {
                exact += static_cast<double>(wf[i]) * x[r * ldx + i];
                scale += std::fabs(wf[i] * x[r * ldx + i]);
              }
              INFO(porta::gguf::type_name(t) << " " << cg::block_isa_name(isa) << " k " << k
                                             << " rows " << rows << " n " << j << " r " << r);
              CHECK(std::fabs(y[r * ldy + j] - exact) <= 1e-5 * scale);
            }
          }
          for (std::int64_t r = 0; r < rows; ++r)  // the padding between rows is untouched
            for (std::int64_t j = n; j < ldy; ++j) CHECK(y[r * ldy + j] == -7.0f);
        }
    }
}

TEST_CASE("packed-block products refuse types without kernels and partial blocks", "[cpu][ggml]") {
  const std::vector<std::byte> row(1024);
  const std::vector<float> x(512);
  // Every type gguf::dequantize reads has a kernel; the listed-only ones do not.
  for (const GgmlType t : porta::gguf::kDequantizableTypes)
    CHECK(cg::has_block_kernel(t) == (porta::gguf::traits_of(t).block_elements > 1));
  CHECK_FALSE(cg::has_block_kernel(GgmlType::Q8_K));
  CHECK_THROWS_WITH(cg::block_dot(cg::BlockIsa::Plain, GgmlType::Q8_K, row.data(), x.data(), 256),
                    Catch::Contains("q8_K"));
  CHECK_THROWS_WITH(cg::block_matmul(cg::best_block_isa(), GgmlType::IQ2_XXS, row.data(), 1, 256,
                                     x.data(), 256, 1, nullptr, 1),
                    Catch::Contains("iq2_xxs"));
  CHECK_THROWS_WITH(cg::block_dot(cg::best_block_isa(), GgmlType::Q8_0, row.data(), x.data(), 48),
                    Catch::Contains("48 elements"));
}

}  // namespace cpu_ggml_block_tests
