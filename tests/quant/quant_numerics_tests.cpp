// The quantized-weight numerics of include/porta/quant.hpp against closed-form values: element
// values of each format, the int4 nibble order, the scale indexing of groups and 2-D blocks,
// round-half-to-even quantization, and the per-token activation quantizer. Every expected value
// is worked out by hand from docs/quantization.md, never by the code under test.
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include <porta/quant.hpp>

#include "core/error_check.hpp"
#include "quant/quant_test_support.hpp"

namespace quant_numerics_tests {

using namespace porta;

namespace {

using quant_test::make_scheme;

QuantizedTensor make(const QuantScheme& s, Shape shape, Tensor data, Tensor scale,
                     Tensor zero = {}) {
  QuantizedTensor q;
  q.scheme = s;
  q.shape = std::move(shape);
  q.data = std::move(data);
  q.scale = std::move(scale);
  q.zero = std::move(zero);
  return q;
}

std::vector<float> values(const Tensor& t) { return t.to_f32(); }

}  // namespace

TEST_CASE("describe names format, grouping, symmetry and scale dtype", "[quant]") {
  CHECK(describe(make_scheme(QuantFormat::Int4, 128, true, DType::BF16)) ==
        "int4 g128 asym (bf16 scales)");
  CHECK(describe(make_scheme(QuantFormat::Int8)) == "int8 per-channel sym (f32 scales)");
  CHECK(describe(make_scheme(QuantFormat::F8E4M3, 128, false, DType::F32, 128)) ==
        "f8_e4m3 block 128x128 (f32 scales)");
  CHECK(parse_quant_format("int4") == QuantFormat::Int4);
  CHECK(parse_activation_quant("dynamic_int8") == ActivationQuant::DynamicInt8);
  REQUIRE_PORTA_ERROR(parse_quant_format("int3"), ErrorCode::InvalidArgument, "int3", "int8");
}

TEST_CASE("int8 per-channel: (q - z) * s per row", "[quant]") {
  auto data = Tensor::from_vector<std::int8_t>({2, 2}, {1, -2, 127, -128});
  auto scale = Tensor::from_vector<float>({2, 1}, {0.5f, 0.25f});
  const auto w = make(make_scheme(QuantFormat::Int8), {2, 2}, data, scale);
  CHECK(values(dequantize(w)) == std::vector<float>{0.5f, -1.0f, 31.75f, -32.0f});
  CHECK(w.nbytes() == 4 + 8);
  // Asymmetric: zero points in the signed domain, one per row.
  auto zero = Tensor::from_vector<std::int8_t>({2, 1}, {-2, 100});
  const auto a = make(make_scheme(QuantFormat::Int8, 0, true), {2, 2}, data, scale, zero);
  CHECK(values(dequantize(a)) == std::vector<float>{1.5f, 0.0f, 6.75f, -57.0f});
}

TEST_CASE("int4: element 2j in the low nibble, 2j+1 in the high nibble", "[quant]") {
  // Byte 0x3A: k = 0 reads 0xA = 10, k = 1 reads 0x3 = 3; byte 0xF0: k = 2 reads 0, k = 3 reads 15.
  auto data = Tensor::from_vector<std::int8_t>(
      {1, 2}, {static_cast<std::int8_t>(0x3A), static_cast<std::int8_t>(0xF0)});
  auto scale = Tensor::from_vector<float>({1, 1}, {0.5f});
  const auto sym = make(make_scheme(QuantFormat::Int4), {1, 4}, data, scale);
  // Symmetric: z = 8.
  CHECK(values(dequantize(sym)) == std::vector<float>{1.0f, -2.5f, -4.0f, 3.5f});
  auto zero = Tensor::from_vector<std::int8_t>({1, 1}, {3});
  const auto asym = make(make_scheme(QuantFormat::Int4, 0, true), {1, 4}, data, scale, zero);
  CHECK(values(dequantize(asym)) == std::vector<float>{3.5f, 0.0f, -1.5f, 6.0f});
}

TEST_CASE("int4 groups: column k reads scale[n, k / group_k]", "[quant]") {
  // K = 64, g32: two groups per row; every nibble 9 (q - 8 = 1), so each value is its scale.
  std::vector<std::int8_t> bytes(2 * 32, static_cast<std::int8_t>(0x99));
  auto data = Tensor::from_vector<std::int8_t>({2, 32}, bytes);
  auto scale = Tensor::from_f32({2, 2}, DType::BF16, std::vector<float>{1.0f, 2.0f, 3.0f, 4.0f});
  const auto w = make(make_scheme(QuantFormat::Int4, 32, false, DType::BF16), {2, 64}, data, scale);
  const auto v = values(dequantize(w));
  CHECK(v[0] == 1.0f);
  CHECK(v[31] == 1.0f);
  CHECK(v[32] == 2.0f);
  CHECK(v[63] == 2.0f);
  CHECK(v[64] == 3.0f);
  CHECK(v[64 + 32] == 4.0f);
}

TEST_CASE("f8_e4m3 with 128x128 blocks: partial edge blocks take ceil", "[quant]") {
  // N = K = 130: scale [2, 2]. 0x38 is 1.0 (exponent 7 = bias, mantissa 0); 0xC4 is -1.5 · 2 = -3.
  std::vector<std::int8_t> bytes(130 * 130, static_cast<std::int8_t>(0x38));
  bytes[129 * 130 + 129] = static_cast<std::int8_t>(0xC4);
  auto data = Tensor::from_vector<std::int8_t>({130, 130}, bytes);
  data = Tensor::copy_of({130, 130}, DType::F8E4M3, data.data(), data.nbytes());
  auto scale = Tensor::from_vector<float>({2, 2}, {1.0f, 2.0f, 4.0f, 8.0f});
  const auto w =
      make(make_scheme(QuantFormat::F8E4M3, 128, false, DType::F32, 128), {130, 130}, data, scale);
  const auto v = values(dequantize(w));
  CHECK(v[0] == 1.0f);                  // block (0, 0)
  CHECK(v[128] == 2.0f);                // row 0, column 128: block (0, 1)
  CHECK(v[128 * 130] == 4.0f);          // row 128, column 0: block (1, 0)
  CHECK(v[129 * 130 + 129] == -24.0f);  // -3 · 8
}

TEST_CASE("quantize rounds half to even against the stored scale", "[quant]") {
  // amax 127 gives s = 1 exactly, so x / s = x and the ties are real ties.
  auto w = Tensor::from_vector<float>({1, 6}, {127.0f, 2.5f, -3.5f, 0.5f, -0.5f, 1.5f});
  const auto q = quantize(w, make_scheme(QuantFormat::Int8));
  CHECK(values(q.scale) == std::vector<float>{1.0f});
  const auto* codes = static_cast<const std::int8_t*>(q.data.data());
  CHECK(std::vector<int>(codes, codes + 6) == std::vector<int>{127, 2, -4, 0, 0, 2});

  // int4 symmetric: s = amax / 7 = 1; u = q + 8 packed low nibble first.
  auto w4 = Tensor::from_vector<float>({1, 6}, {7.0f, -7.0f, 2.5f, 3.5f, 0.0f, -1.0f});
  const auto q4 = quantize(w4, make_scheme(QuantFormat::Int4));
  const auto* b4 = static_cast<const std::uint8_t*>(q4.data.data());
  CHECK(q4.data.shape() == Shape{1, 3});
  CHECK(std::vector<int>(b4, b4 + 3) == std::vector<int>{0x1F, 0xCA, 0x78});

  // int4 asymmetric: [-3, 12] → s = 15 / 15 = 1, z = 3, u = [0, 15].
  auto wa = Tensor::from_vector<float>({1, 2}, {-3.0f, 12.0f});
  const auto qa = quantize(wa, make_scheme(QuantFormat::Int4, 0, true));
  CHECK(static_cast<const std::int8_t*>(qa.zero.data())[0] == 3);
  CHECK(static_cast<const std::uint8_t*>(qa.data.data())[0] == 0xF0);
  CHECK(values(dequantize(qa)) == std::vector<float>{-3.0f, 12.0f});

  // FP8: s = amax / 448; 448 itself is exactly representable.
  auto w8 = Tensor::from_vector<float>({1, 2}, {896.0f, -2.0f});
  const auto q8 = quantize(w8, make_scheme(QuantFormat::F8E4M3));
  CHECK(values(q8.scale) == std::vector<float>{2.0f});
  CHECK(values(dequantize(q8)) == std::vector<float>{896.0f, -2.0f});
}

TEST_CASE("quantize then dequantize is within half a step of every weight", "[quant]") {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  std::vector<float> v(3 * 20 * 128);
  for (auto& x : v) x = dist(rng);
  const auto w = Tensor::from_vector<float>({3, 20, 128}, v);
  const QuantScheme schemes[] = {
      make_scheme(QuantFormat::Int8), make_scheme(QuantFormat::Int8, 32, true),
      make_scheme(QuantFormat::Int4, 32), make_scheme(QuantFormat::Int4, 64, true),
      make_scheme(QuantFormat::Int4, 128, false, DType::BF16)};
  for (const auto& s : schemes) {
    INFO(describe(s));
    const auto q = quantize(w, s);
    validate(q, "w");
    const auto back = values(dequantize(q));
    const auto scales = values(q.scale);
    const std::int64_t groups = q.scale.shape()[-1], group = 128 / groups;
    for (std::size_t i = 0; i < v.size(); ++i) {
      const std::size_t row = i / 128, col = i % 128;
      const float step =
          scales[row * static_cast<std::size_t>(groups) + col / static_cast<std::size_t>(group)];
      // An asymmetric code may clamp when both ends round outward: one step at most.
      REQUIRE(std::fabs(back[i] - v[i]) <= (s.zero_point ? 1.0f : 0.5f) * step * (1 + 1e-5f));
    }
  }
  // FP8 blocks: relative error of e4m3 (3 mantissa bits: at most 2^-4 relative, plus subnormals).
  const auto q = quantize(w, make_scheme(QuantFormat::F8E4M3, 128, false, DType::F32, 128));
  CHECK(q.scale.shape() == Shape{3, 1, 1});
  const auto back = values(dequantize(q));
  for (std::size_t i = 0; i < v.size(); ++i)
    REQUIRE(std::fabs(back[i] - v[i]) <= std::fabs(v[i]) / 16 + 2.0f / 448 / 512);
}

TEST_CASE("per-token activation quantization: s = max|x| / 127, ties to even", "[quant]") {
  const std::vector<float> x{127.0f, -63.5f, 0.5f, 1.5f,  // s = 1
                             0.0f,   0.0f,   0.0f, 0.0f,  // all zero: s = 1
                             2.54f,  -1.27f, 0.0f, 0.01f};
  std::vector<std::int8_t> q(12);
  std::vector<float> s(3);
  quantize_activations_per_token(x.data(), 3, 4, q.data(), s.data());
  CHECK(s[0] == 1.0f);
  CHECK(s[1] == 1.0f);
  CHECK(s[2] == 2.54f / 127.0f);
  CHECK(std::vector<int>(q.begin(), q.begin() + 8) == std::vector<int>{127, -64, 0, 2, 0, 0, 0, 0});
  CHECK(q[8] == 127);
  CHECK(q[9] == static_cast<int>(std::nearbyint(-1.27f / (2.54f / 127.0f))));
  const std::vector<float> bad{1.0f, std::numeric_limits<float>::quiet_NaN()};
  quantize_activations_per_token(bad.data(), 1, 2, q.data(), s.data());
  CHECK(std::isnan(s[0]));
}

}  // namespace quant_numerics_tests
