// llama.cpp's 8-bit activation blocks (gguf::quantize_q8_activations, ActivationQuant::GgmlQ8):
// the quantizers against hand-worked blocks, the cpu's SIMD quantizer bit for bit against them,
// and the integer kernels (backends/cpu/ggml/q8_kernels.hpp) against a double-precision sum of
// the exact weights times the rounded activations, within 1e-6 of Σ|w|·|x̂|.
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include <porta/dtype.hpp>
#include <porta/error.hpp>
#include <porta/ggml_quants.hpp>

#include "../../backends/cpu/ggml/q8_kernels.hpp"

namespace cpu_ggml_q8_tests {

namespace cg = porta::detail::cpu::ggml;
namespace gguf = porta::gguf;
using gguf::GgmlType;

namespace {

std::vector<float> rounded(gguf::Q8Blocks b, const std::vector<float>& x) {
  std::vector<float> out(x.size());
  gguf::round_q8_activations(b, x.data(), static_cast<std::int64_t>(x.size()), out.data());
  return out;
}

}  // namespace

TEST_CASE("q8 activation blocks: the block each weight type meets", "[ggml][q8]") {
  CHECK(gguf::q8_activation_blocks(GgmlType::Q4_K).type == GgmlType::Q8_K);
  CHECK(gguf::q8_activation_blocks(GgmlType::Q6_K).block == 256);
  CHECK(gguf::q8_activation_blocks(GgmlType::IQ4_XS).type == GgmlType::Q8_K);
  CHECK(gguf::q8_activation_blocks(GgmlType::Q8_0).type == GgmlType::Q8_0);
  CHECK(gguf::q8_activation_blocks(GgmlType::Q5_1).block == 32);
  CHECK_THROWS_AS(gguf::q8_activation_blocks(GgmlType::F16), porta::Error);
  CHECK_THROWS_WITH(gguf::q8_activation_blocks(GgmlType::BF16),
                    Catch::Contains("bf16 weights have no 8-bit activation blocks"));
  std::vector<float> x(40, 1.0f);
  std::vector<std::int8_t> q(40);
  std::vector<float> d(2);
  CHECK_THROWS_WITH(
      gguf::quantize_q8_activations({GgmlType::Q8_0, 32}, x.data(), 40, q.data(), d.data()),
      Catch::Contains("40 elements is not a whole number of 32-element blocks"));
}

TEST_CASE("q8 activation blocks: hand-worked Q8_K and Q8_0 blocks", "[ggml][q8]") {
  // Q8_K: the element of largest magnitude is -127, so iscale = -127 / -127 = 1 and d = 1;
  // ties round to even (2.5 → 2, 3.5 → 4, -0.5 → 0).
  std::vector<float> x(256, 0.0f);
  x[0] = 2.5f;
  x[1] = -127.0f;
  x[2] = 3.5f;
  x[3] = -0.5f;
  x[4] = 100.25f;
  x[5] = 127.0f;  // as large, but later: the first one sets the sign
  std::vector<std::int8_t> q(256);
  float d = 0;
  gguf::quantize_q8_activations({GgmlType::Q8_K, 256}, x.data(), 256, q.data(), &d);
  CHECK(d == 1.0f);
  CHECK(q[0] == 2);
  CHECK(q[1] == -127);
  CHECK(q[2] == 4);
  CHECK(q[3] == 0);
  CHECK(q[4] == 100);
  CHECK(q[5] == 127);
  CHECK(q[6] == 0);
  // With +127 first the scale is negative: iscale = -1, codes flip sign, d = -1.
  std::swap(x[1], x[5]);
  gguf::quantize_q8_activations({GgmlType::Q8_K, 256}, x.data(), 256, q.data(), &d);
  CHECK(d == -1.0f);
  CHECK(q[0] == -2);
  CHECK(q[1] == -127);
  CHECK(q[2] == -4);
  CHECK(q[5] == 127);
  // Halved: iscale = 2, d = 0.5, the rounded values are the inputs again where they fit.
  for (auto& v : x) v *= 0.5f;
  std::vector<float> back = rounded({GgmlType::Q8_K, 256}, x);
  CHECK(back[4] == 50.0f);  // 100.25 · 0.5 = 50.125 → code -100 · d -0.5
  CHECK(back[1] == 63.5f);

  // Q8_0: max|x| = 254 → d = f16(2) = 2, codes round(x / 2) half to even.
  std::vector<float> y(32, 0.0f);
  y[0] = 5.0f;
  y[1] = -254.0f;
  y[2] = 7.0f;
  y[3] = 1.0f;
  float d0 = 0;
  gguf::quantize_q8_activations({GgmlType::Q8_0, 32}, y.data(), 32, q.data(), &d0);
  CHECK(d0 == 2.0f);
  CHECK(q[0] == 2);
  CHECK(q[1] == -127);
  CHECK(q[2] == 4);
  CHECK(q[3] == 0);
  CHECK(rounded({GgmlType::Q8_0, 32}, y)[2] == 8.0f);
  // d is read back through f16: max|x| = 1 gives f16(1/127), not 1/127.
  y.assign(32, 0.0f);
  y[9] = 1.0f;
  gguf::quantize_q8_activations({GgmlType::Q8_0, 32}, y.data(), 32, q.data(), &d0);
  CHECK(d0 == porta::f16_bits_to_f32(porta::f32_to_f16_bits(1.0f / 127.0f)));
  CHECK(d0 != 1.0f / 127.0f);
  CHECK(q[9] == 127);

  // All-zero blocks: d = 0; a block with NaN or inf: NaN, which every product then carries.
  std::vector<float> zero(256, 0.0f);
  CHECK(rounded({GgmlType::Q8_K, 256}, zero) == zero);
  zero[7] = std::numeric_limits<float>::quiet_NaN();
  CHECK(std::isnan(rounded({GgmlType::Q8_K, 256}, zero)[0]));
  y[3] = std::numeric_limits<float>::infinity();
  CHECK(std::isnan(rounded({GgmlType::Q8_0, 32}, y)[0]));
}

namespace {

// The integer implementations this CPU runs (all of them, whatever PORTA_GGML_ISA says).
std::vector<cg::Q8Isa> q8_isas_here() {
  const std::vector<cg::Q8Isa> isas = cg::available_q8_isas();
  if (isas.empty()) WARN("this CPU has no AVX2: the integer ggml_q8 kernels are not run");
  return isas;
}

// The block types with integer kernels: every ISA has each (checked below).
constexpr GgmlType kKernelTypes[] = {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1,
                                     GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::IQ4_NL,
                                     GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};

std::vector<GgmlType> kernel_types(cg::Q8Isa isa) {
  std::vector<GgmlType> types;
  for (const GgmlType t : kKernelTypes)
    if (cg::has_q8_kernel(isa, t)) types.push_back(t);
  return types;
}

void round_row(cg::Q8Isa isa, gguf::Q8Blocks b, const float* x, std::int64_t k, float* out) {
  if (isa == cg::Q8Isa::Avx512Vnni) return cg::round_q8_row_avx512(b, x, k, out);
  cg::round_q8_row_avx2(b, x, k, out);
}

}  // namespace

// The tests below take their types from the kernels (kernel_types): a type an ISA dropped would
// leave them silently without it, so its absence fails here. Every ISA, whether the CPU has it.
TEST_CASE("cpu q8 kernels: every ISA's integer kernels cover every type of kKernelTypes",
          "[cpu][q8]") {
  for (const cg::Q8Isa isa : {cg::Q8Isa::Avx2, cg::Q8Isa::Avx512Vnni})
    for (const GgmlType t : kKernelTypes) {
      INFO(cg::q8_isa_name(isa) << " " << gguf::type_name(t));
      CHECK(cg::has_q8_kernel(isa, t));
    }
}

TEST_CASE("cpu q8 kernels: the SIMD quantizer equals the definition bit for bit", "[cpu][q8]") {
  for (const cg::Q8Isa isa : q8_isas_here()) {
    DYNAMIC_SECTION(cg::q8_isa_name(isa)) {
      std::mt19937 rng(11);
      std::normal_distribution<float> normal(0.0f, 1.0f);
      for (const GgmlType t : kernel_types(isa)) {
        INFO(gguf::type_name(t));
        const std::int64_t rows = 5, k = 512;
        std::vector<float> x(static_cast<std::size_t>(rows * k));
        for (auto& v : x) v = normal(rng) * 3.0f;
        for (std::int64_t i = 0; i < k; i += 40) x[static_cast<std::size_t>(i)] = 0.5f;  // ties
        std::fill_n(x.begin() + k, 32, 0.0f);  // an all-zero block in row 1
        cg::Q8Rows xq;
        cg::shape_q8_rows(isa, t, rows, k, xq);
        REQUIRE(xq.isa == isa);
        cg::quantize_q8_rows(x.data(), k, 0, rows, xq);
        const gguf::Q8Blocks b = gguf::q8_activation_blocks(t);
        std::vector<std::int8_t> q(static_cast<std::size_t>(k));
        std::vector<float> d(static_cast<std::size_t>(k / b.block));
        std::vector<float> want(static_cast<std::size_t>(k)), got(static_cast<std::size_t>(k));
        for (std::int64_t r = 0; r < rows; ++r) {
          gguf::quantize_q8_activations(b, x.data() + r * k, k, q.data(), d.data());
          CHECK(std::memcmp(q.data(), xq.codes(r), static_cast<std::size_t>(k)) == 0);
          for (std::size_t s = 0; s < d.size(); ++s)
            CHECK(d[s] == xq.d[static_cast<std::size_t>(r) * d.size() + s]);
          // Each layout's own sums: dx · Σ q per sub-block, and Σ q as int16 where kept.
          const std::int64_t subs = k / xq.sub;
          for (std::int64_t j = 0; j < subs; ++j) {
            int sum = 0;
            for (std::int64_t i = 0; i < xq.sub; ++i)
              sum += q[static_cast<std::size_t>(j * xq.sub + i)];
            const float dx = d[static_cast<std::size_t>(j * xq.sub / b.block)];
            CHECK(xq.sums[static_cast<std::size_t>(r * subs + j)] == dx * static_cast<float>(sum));
            if (!xq.code_sums.empty())
              CHECK(xq.code_sums[static_cast<std::size_t>(r * subs + j)] == sum);
          }
          gguf::round_q8_activations(b, x.data() + r * k, k, want.data());
          round_row(isa, b, x.data() + r * k, k, got.data());
          CHECK(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)) == 0);
        }
      }
      // A block with NaN or inf rounds to NaN, as the definition's.
      std::vector<float> x(256, 1.0f), out(256);
      x[100] = std::numeric_limits<float>::infinity();
      round_row(isa, {GgmlType::Q8_K, 256}, x.data(), 256, out.data());
      CHECK(std::isnan(out[0]));
      round_row(isa, {GgmlType::Q8_0, 32}, x.data(), 256, out.data());
      CHECK(std::isnan(out[96]));
      CHECK_FALSE(std::isnan(out[0]));
    }
  }
}

TEST_CASE("cpu q8 kernels: PORTA_GGML_ISA's values", "[cpu][q8]") {
  CHECK(cg::parse_ggml_isa_cap(nullptr) == cg::GgmlIsaCap::None);
  CHECK(cg::parse_ggml_isa_cap("") == cg::GgmlIsaCap::None);
  CHECK(cg::parse_ggml_isa_cap("avx2") == cg::GgmlIsaCap::Avx2);
  CHECK(cg::parse_ggml_isa_cap("plain") == cg::GgmlIsaCap::Plain);
  CHECK_THROWS_AS(cg::parse_ggml_isa_cap("avx512"), porta::Error);
  CHECK_THROWS_WITH(cg::parse_ggml_isa_cap("AVX2"),
                    Catch::Contains("PORTA_GGML_ISA=AVX2") && Catch::Contains("avx2, plain"));
}

namespace {

// The f16 scale fields of a block of `t` (d, and m or dmin where it has one).
std::vector<std::size_t> f16_fields(GgmlType t) {
  if (t == GgmlType::Q4_K || t == GgmlType::Q5_K || t == GgmlType::Q4_1 || t == GgmlType::Q5_1)
    return {0, 2};
  if (t == GgmlType::Q6_K) return {208};
  return {0};
}

// `isa`'s integer products of weights w [n, k] of `t` by rows [first, first + count) of x
// [rows, k], each within 1e-6 of Σ|w|·|x̂| of the definition (the exact weights times the rounded
// activations, in double), written with a stride whose gap stays untouched.
void check_products(cg::Q8Isa isa, GgmlType t, const std::vector<std::byte>& w, std::int64_t n,
                    std::int64_t k, const std::vector<float>& x, std::int64_t rows,
                    std::initializer_list<std::int64_t> counts) {
  const std::size_t row_bytes = gguf::row_bytes(t, static_cast<std::uint64_t>(k));
  cg::Q8Rows xq;
  cg::shape_q8_rows(isa, t, rows, k, xq);
  cg::quantize_q8_rows(x.data(), k, 0, rows, xq);
  const gguf::Q8Blocks b = gguf::q8_activation_blocks(t);
  for (const std::int64_t count : counts) {
    INFO(count << " rows");
    const std::int64_t first = 2, ldy = n + 3;
    REQUIRE(first + count <= rows);
    std::vector<float> y(static_cast<std::size_t>(count * ldy), -7.0f);
    cg::q8_matmul_serial(w.data(), n, xq, first, count, y.data(), ldy);
    std::vector<float> wrow(static_cast<std::size_t>(k));
    for (std::int64_t r = 0; r < count; ++r) {
      const std::vector<float> xr(x.begin() + (first + r) * k, x.begin() + (first + r + 1) * k);
      const std::vector<float> xh = rounded(b, xr);
      for (std::int64_t c = 0; c < n; ++c) {
        gguf::dequantize(t, {w.data() + static_cast<std::size_t>(c) * row_bytes, row_bytes}, wrow);
        double want = 0, size = 0;
        for (std::int64_t i = 0; i < k; ++i) {
          const double p = static_cast<double>(wrow[static_cast<std::size_t>(i)]) *
                           xh[static_cast<std::size_t>(i)];
          want += p;
          size += std::fabs(p);
        }
        const float got = y[static_cast<std::size_t>(r * ldy + c)];
        if (!(std::fabs(got - want) <= 1e-6 * size + 1e-30)) {
          FAIL_CHECK("row " << r << " col " << c << ": " << got << " vs " << want);
          break;
        }
      }
      for (std::int64_t c = n; c < ldy; ++c)  // the stride's gap untouched
        CHECK(y[static_cast<std::size_t>(r * ldy + c)] == -7.0f);
    }
  }
}

}  // namespace

TEST_CASE(
    "cpu q8 kernels: integer products equal the exact weights times the rounded "
    "activations",
    "[cpu][q8]") {
  for (const cg::Q8Isa isa : q8_isas_here()) {
    DYNAMIC_SECTION(cg::q8_isa_name(isa)) {
      std::mt19937 rng(5);
      std::normal_distribution<float> normal(0.0f, 1.0f);
      std::uniform_int_distribution<int> byte(0, 255);
      std::uniform_real_distribution<float> scale(-0.05f, 0.05f);
      for (const GgmlType t : kernel_types(isa)) {
        const std::int64_t block = gguf::traits_of(t).block_elements;
        // K 4096: rows of x beyond the row kernels' L1 budget, so they go in passes.
        for (const std::int64_t k : {block, 3 * block, std::int64_t{1024}, std::int64_t{4096}})
          for (const bool raw : {false, true}) {
            INFO(gguf::type_name(t) << " k=" << k << (raw ? " random bytes" : " quantized"));
            const std::int64_t n = 37, rows = 35;
            const std::size_t row_bytes = gguf::row_bytes(t, static_cast<std::uint64_t>(k));
            std::vector<std::byte> w(row_bytes * static_cast<std::size_t>(n));
            if (raw) {
              // Random bytes: every code and scale bit pattern; the f16 fields sane values.
              for (auto& b : w) b = static_cast<std::byte>(byte(rng));
              const auto traits = gguf::traits_of(t);
              for (std::size_t at = 0; at < w.size(); at += traits.block_bytes)
                for (std::size_t f : f16_fields(t)) {
                  const std::uint16_t bits = porta::f32_to_f16_bits(scale(rng));
                  std::memcpy(&w[at + f], &bits, 2);
                }
            } else {
              std::vector<float> values(static_cast<std::size_t>(n * k));
              for (auto& v : values) v = normal(rng);
              gguf::quantize(t, values, w);
            }
            std::vector<float> x(static_cast<std::size_t>(rows * k));
            for (auto& v : x) v = normal(rng);
            // 1 to 9 rows through the row kernels (AVX2 four at a time, q4_K eight, AVX-512
            // eight: 14 is 8 + 6), 11 and 14 through the panels (AVX2's K-quants and AVX-512's
            // q4_K through the row kernel), 33 through the panels for all but AVX2's q4_K below
            // K 4096, which keeps to the row kernel (partial tiles and, at 37 weight rows, a
            // partial panel).
            check_products(isa, t, w, n, k, x, rows, {1, 3, 5, 7, 9, 11, 14, 33});
          }
      }
    }
  }
}

TEST_CASE("cpu q8 kernels: extreme codes against extreme activations stay exact", "[cpu][q8]") {
  // Every code byte 0xFF (4-, 5- and 6-bit codes and K-quant scales at their largest), 0x80 or
  // 0x7F (q8_0 at −128 and 127), against activations whose codes are all ±127 or alternate:
  // the integer sums at the bounds the kernels' int16 stages are sized for.
  for (const cg::Q8Isa isa : q8_isas_here()) {
    DYNAMIC_SECTION(cg::q8_isa_name(isa)) {
      for (const GgmlType t : kernel_types(isa))
        // 0x88: the codes at q4_0's offset (weights 0); -1: quantized sparse rows, one weight
        // of 32 not zero (codes at the offset beside one extreme).
        for (const int pattern : {0xFF, 0x80, 0x7F, 0x00, 0x88, -1})
          for (const int sign : {1, -1, 0}) {
            INFO(gguf::type_name(t) << " bytes " << pattern << " activations "
                                    << (sign == 0  ? "alternating"
                                        : sign > 0 ? "+"
                                                   : "-"));
            const std::int64_t k = 1024, n = 19, rows = 36;
            const std::size_t row_bytes = gguf::row_bytes(t, static_cast<std::uint64_t>(k));
            std::vector<std::byte> w(row_bytes * static_cast<std::size_t>(n),
                                     static_cast<std::byte>(pattern));
            const auto traits = gguf::traits_of(t);
            if (pattern < 0) {
              std::vector<float> values(static_cast<std::size_t>(n * k), 0.0f);
              for (std::size_t i = 0; i < values.size(); i += 32)
                values[i + i / 32 % 32] = i % 64 == 0 ? 1.0f : -1.0f;
              gguf::quantize(t, values, w);
            } else {
              for (std::size_t at = 0; at < w.size(); at += traits.block_bytes)
                for (std::size_t f : f16_fields(t)) {
                  const std::uint16_t bits = porta::f32_to_f16_bits(f == 0 ? 0.01f : -0.02f);
                  std::memcpy(&w[at + f], &bits, 2);
                }
            }
            std::vector<float> x(static_cast<std::size_t>(rows * k));
            for (std::size_t i = 0; i < x.size(); ++i)
              x[i] = sign != 0 ? static_cast<float>(sign) : (i % 2 == 0 ? 1.0f : -1.0f);
            check_products(isa, t, w, n, k, x, rows, {1, 4, 9, 12, 33});
          }
    }
  }
}

TEST_CASE("cpu q8 kernels: a block of activations holding NaN or inf gives NaN products",
          "[cpu][q8]") {
  for (const cg::Q8Isa isa : q8_isas_here()) {
    DYNAMIC_SECTION(cg::q8_isa_name(isa)) {
      for (const GgmlType t : kernel_types(isa)) {
        INFO(gguf::type_name(t));
        const std::int64_t k = 512, n = 9, rows = 34;
        const std::size_t row_bytes = gguf::row_bytes(t, static_cast<std::uint64_t>(k));
        std::vector<float> values(static_cast<std::size_t>(n * k), 0.25f);
        std::vector<std::byte> w(row_bytes * static_cast<std::size_t>(n));
        gguf::quantize(t, values, w);
        std::vector<float> x(static_cast<std::size_t>(rows * k), 0.5f);
        x[static_cast<std::size_t>(1 * k + 300)] = std::numeric_limits<float>::quiet_NaN();
        x[static_cast<std::size_t>(3 * k + 7)] = -std::numeric_limits<float>::infinity();
        cg::Q8Rows xq;
        cg::shape_q8_rows(isa, t, rows, k, xq);
        cg::quantize_q8_rows(x.data(), k, 0, rows, xq);
        for (const std::int64_t count : {std::int64_t{4}, std::int64_t{12}, rows}) {
          INFO(count << " rows");
          std::vector<float> y(static_cast<std::size_t>(count * n));
          cg::q8_matmul_serial(w.data(), n, xq, 0, count, y.data(), n);
          for (std::int64_t r = 0; r < count; ++r)
            for (std::int64_t c = 0; c < n; ++c) {
              const float v = y[static_cast<std::size_t>(r * n + c)];
              if (r == 1 || r == 3)
                CHECK(std::isnan(v));
              else
                CHECK(std::fabs(v - 0.125f * static_cast<float>(k)) < 1e-2f * k);
            }
        }
      }
    }
  }
}

}  // namespace cpu_ggml_q8_tests
