// Reduced-precision inputs: widened to f32, computed, and rounded once into the output dtype.

#include <cmath>

#include "reference/ops_test_support.hpp"

namespace reference_dtype_ops_tests {

using namespace ops_test;

namespace {
porta::Tensor as(porta::DType t, porta::Shape shape, const std::vector<float>& values) {
  return porta::Tensor::from_f32(std::move(shape), t, values);
}
}  // namespace

TEST_CASE("bf16 add rounds the f32 sum once, ties to even", "[ops][dtype]") {
  porta::Graph g;
  auto a = g.input("a", {2}, porta::DType::BF16);
  auto b = g.input("b", {2}, porta::DType::BF16);
  // 1 + 2^-8: halfway between 1 and 1 + 2^-7 -> 1. 1 + 3·2^-8: halfway between 1 + 2^-7 and
  // 1 + 2^-6 -> 1 + 2^-6 (the even mantissa). Both addends are exact in bf16.
  const auto out = run_single(g, g.add(a, b),
                              {{"a", as(porta::DType::BF16, {2}, {1, 1})},
                               {"b", as(porta::DType::BF16, {2}, {0.00390625f, 0.01171875f})}});
  CHECK(out.dtype() == porta::DType::BF16);
  check_close(out.to_f32(), {1.0, 1.015625}, 0.0);
}

TEST_CASE("f16 add rounds the f32 sum once, ties to even", "[ops][dtype]") {
  porta::Graph g;
  auto a = g.input("a", {2}, porta::DType::F16);
  auto b = g.input("b", {2}, porta::DType::F16);
  // f16 spacing at 1 is 2^-10: 1 + 2^-11 -> 1, 1 + 3·2^-11 -> 1 + 2^-9.
  const auto out =
      run_single(g, g.add(a, b),
                 {{"a", as(porta::DType::F16, {2}, {1, 1})},
                  {"b", as(porta::DType::F16, {2}, {0.00048828125f, 0.00146484375f})}});
  CHECK(out.dtype() == porta::DType::F16);
  check_close(out.to_f32(), {1.0, 1.001953125}, 0.0);
}

TEST_CASE("silu of bf16 and f16 inputs is the rounded f32 result", "[ops][dtype]") {
  // silu(1) = 0.7310585786 = 1.4621171572 · 2^-1. Its mantissa rounded to 7 bits is 59/128
  // (0.4621·128 = 59.15): bf16 0.73046875; to 10 bits 473/1024 (473.21): f16 0.73095703125.
  for (auto [dtype, want] :
       {std::pair{porta::DType::BF16, 0.73046875}, std::pair{porta::DType::F16, 0.73095703125}}) {
    porta::Graph g;
    auto x = g.input("x", {1}, dtype);
    const auto out = run_single(g, g.silu(x), {{"x", as(dtype, {1}, {1.0f})}});
    CHECK(out.dtype() == dtype);
    check_close(out.to_f32(), {want}, 0.0);
  }
}

TEST_CASE("bf16 matmul accumulates beyond bf16 precision before rounding", "[ops][dtype]") {
  // 256 terms of 1·(1 + 2^-7) = 256 + 2: a bf16 accumulator would stall at 256 (spacing 2 there)
  // after adding the first few terms; the exact sum 258 is a bf16 value.
  porta::Graph g;
  auto a = g.input("a", {1, 256}, porta::DType::BF16);
  auto b = g.input("b", {256, 1}, porta::DType::BF16);
  const auto out =
      run_single(g, g.matmul(a, b),
                 {{"a", as(porta::DType::BF16, {1, 256}, std::vector<float>(256, 1.0f))},
                  {"b", as(porta::DType::BF16, {256, 1}, std::vector<float>(256, 1.0078125f))}});
  CHECK(out.dtype() == porta::DType::BF16);
  check_close(out.to_f32(), {258.0}, 0.0);
}

TEST_CASE("a matmul of f32 by bf16 produces f32 without intermediate rounding", "[ops][dtype]") {
  porta::Graph g;
  auto a = g.input("a", {1, 2}, porta::DType::F32);
  auto w = g.weight("w", as(porta::DType::BF16, {2, 1}, {1.0f, 0.00390625f}));
  const auto out = run_single(g, g.matmul(a, w), {{"a", f32({1, 2}, {1, 1})}});
  CHECK(out.dtype() == porta::DType::F32);
  check_close(out.to_f32(), {1.00390625}, 0.0);
}

TEST_CASE("fp8 e4m3 weights are widened exactly", "[ops][dtype]") {
  porta::Graph g;
  auto a = g.input("a", {1, 3}, porta::DType::F32);
  // 448 (the largest e4m3 value), 0.001953125 (the smallest subnormal, 2^-9) and -1.5.
  auto w = g.weight("w", as(porta::DType::F8E4M3, {3, 1}, {448.0f, 0.001953125f, -1.5f}));
  const auto out = run_single(g, g.matmul(a, w), {{"a", f32({1, 3}, {1, 512, 2})}});
  check_close(out.to_f32(), {448.0 + 1.0 - 3.0}, 0.0);
}

TEST_CASE("bf16 rms_norm and softmax round once into bf16", "[ops][dtype]") {
  porta::Graph g;
  auto x = g.input("x", {1, 2}, porta::DType::BF16);
  auto w = g.weight("w", as(porta::DType::BF16, {2}, {1, 1}));
  g.output("norm", g.rms_norm(x, w, 0.0f));
  g.output("soft", g.softmax(x));
  auto exe = porta::compile(g);
  auto out = exe.run({{"x", as(porta::DType::BF16, {1, 2}, {3, 4})}});
  // 3 / sqrt(12.5) = 0.848528 -> bf16 0.84765625 (1.6970·2^-1, mantissa 89.2/128 -> 89);
  // 4 / sqrt(12.5) = 1.131371 -> bf16 1.1328125 (mantissa 16.82/128 -> 17).
  check_close(out.at("norm").to_f32(), {0.84765625, 1.1328125}, 0.0);
  // softmax([3, 4]) = [0.268941, 0.731059] -> bf16 [0.26953125, 0.73046875].
  check_close(out.at("soft").to_f32(), {0.26953125, 0.73046875}, 0.0);
}

}  // namespace reference_dtype_ops_tests
