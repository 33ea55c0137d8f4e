// Bad quantized weights and bad quantized-op operands: each is a porta::Error naming the tensor
// (or the op's input role) and the field that is wrong (issue #15, item 8, the op side).
#include <cstdint>
#include <vector>

#include <catch2/catch.hpp>

#include <porta/porta.hpp>

#include "core/error_check.hpp"
#include "quant/quant_test_support.hpp"

namespace quant_errors_tests {

using namespace porta;

namespace {

using quant_test::make_scheme;

QuantizedTensor int8_weight(std::int64_t n, std::int64_t k, std::int64_t groups = 1) {
  QuantizedTensor w;
  w.scheme = make_scheme(QuantFormat::Int8, groups == 1 ? 0 : k / groups);
  w.shape = {n, k};
  w.data = Tensor::zeros({n, k}, DType::I8);
  w.scale = Tensor::zeros({n, groups}, DType::F32);
  return w;
}

}  // namespace

TEST_CASE("validate: wrong scale shape names the tensor and the scale", "[quant]") {
  auto w = int8_weight(4, 64);
  w.scale = Tensor::zeros({4, 2}, DType::F32);
  REQUIRE_PORTA_ERROR(validate(w, "layers.0.q_proj"), ErrorCode::InvalidArgument, "layers.0.q_proj",
                      "scale: shape [4, 2] should be [4, 1]");
  Graph g;
  REQUIRE_PORTA_ERROR(g.weight("layers.0.q_proj", w), ErrorCode::InvalidArgument, "layers.0.q_proj",
                      "scale");
}

TEST_CASE("validate: a group that does not divide K", "[quant]") {
  auto w = int8_weight(4, 96);
  w.scheme.group_k = 64;
  w.scale = Tensor::zeros({4, 2}, DType::F32);
  REQUIRE_PORTA_ERROR(validate(w, "w_up"), ErrorCode::InvalidArgument, "w_up",
                      "group: group_k = 64 does not divide K = 96");
}

TEST_CASE("validate: int4 of an odd width", "[quant]") {
  QuantizedTensor w;
  w.scheme = make_scheme(QuantFormat::Int4);
  w.shape = {2, 7};
  w.data = Tensor::zeros({2, 4}, DType::I8);
  w.scale = Tensor::zeros({2, 1}, DType::F32);
  REQUIRE_PORTA_ERROR(validate(w, "w_down"), ErrorCode::InvalidArgument, "w_down",
                      "data: int4 packs two values per byte, so K must be even, not 7");
  REQUIRE_PORTA_ERROR(quantize(Tensor::zeros({2, 7}, DType::F32), w.scheme),
                      ErrorCode::InvalidArgument, "K must be even");
}

TEST_CASE("validate: wrong dtypes of data, scale and zero", "[quant]") {
  auto w = int8_weight(4, 64);
  w.data = Tensor::zeros({4, 64}, DType::F32);
  REQUIRE_PORTA_ERROR(validate(w, "w"), ErrorCode::InvalidArgument, "'w'",
                      "data: dtype f32 should be i8");
  w = int8_weight(4, 64);
  w.scale = Tensor::zeros({4, 1}, DType::BF16);
  REQUIRE_PORTA_ERROR(validate(w, "w"), ErrorCode::InvalidArgument,
                      "scale: dtype bf16 differs from the scheme's scale dtype f32");
  w = int8_weight(4, 64);
  w.scheme.zero_point = true;
  w.zero = Tensor::zeros({4, 1}, DType::I32);
  REQUIRE_PORTA_ERROR(validate(w, "w"), ErrorCode::InvalidArgument, "zero: dtype i32 should be i8");
  w.zero = {};
  REQUIRE_PORTA_ERROR(validate(w, "w"), ErrorCode::InvalidArgument, "zero:", "asymmetric");
  w = int8_weight(4, 64);
  w.scheme.scale_dtype = DType::I32;
  REQUIRE_PORTA_ERROR(validate(w, "w"), ErrorCode::InvalidArgument,
                      "scale: scale dtype i32 is not f32, bf16 or f16");
  w = int8_weight(4, 64);
  w.scheme.format = QuantFormat::F8E4M3;
  w.scheme.zero_point = true;
  w.data = Tensor::zeros({4, 64}, DType::F8E4M3);
  w.zero = Tensor::zeros({4, 1}, DType::I8);
  REQUIRE_PORTA_ERROR(validate(w, "w"), ErrorCode::InvalidArgument, "zero: f8_e4m3");
}

TEST_CASE("quant_matmul rule names the input role and the field", "[quant]") {
  Graph g;
  auto x = g.input("x", {3, 64}, DType::F32);
  auto w = g.weight("w", int8_weight(8, 64));
  // K of x disagrees with the weight's scale groups: the data shape is named.
  auto x_wrong = g.input("x2", {3, 32}, DType::F32);
  REQUIRE_PORTA_ERROR(g.matmul(x_wrong, w), ErrorCode::ShapeMismatch, "quant_matmul",
                      "data (input 1)", "data: shape [8, 64] should be [8, 32]");
  // A scale value of the wrong shape, through add_op (Graph::weight would have refused it).
  auto bad_scale = g.weight("bad_scale", Tensor::zeros({8, 2}, DType::F32));
  REQUIRE_PORTA_ERROR(g.add_op(OpKind::QuantMatmul, {x, w.data, bad_scale}, QuantAttrs{w.scheme}),
                      ErrorCode::ShapeMismatch, "scale (input 2)",
                      "scale: shape [8, 2] should be [8, 1]");
  // Int8 activations with int4 weights.
  const auto w4 = g.weight(
      "w4", quantize(Tensor::zeros({8, 64}, DType::F32), make_scheme(QuantFormat::Int4, 32)));
  REQUIRE_PORTA_ERROR(g.matmul(x, w4, ActivationQuant::DynamicInt8), ErrorCode::InvalidArgument,
                      "activation: dynamic_int8 activations need int8 weights");
  // llama.cpp's 8-bit activation blocks with weights that are not ggml blocks.
  REQUIRE_PORTA_ERROR(g.matmul(x, w4, ActivationQuant::GgmlQ8), ErrorCode::InvalidArgument,
                      "activation: ggml_q8 activations need ggml block weights, not int4");
  // Static parameters.
  REQUIRE_PORTA_ERROR(g.matmul(x, w, ActivationQuant::StaticInt8, {0.1f, 2.5f}),
                      ErrorCode::InvalidArgument, "act_offset = 2.5");
  REQUIRE_PORTA_ERROR(g.matmul(x, w, ActivationQuant::StaticInt8, {0.0f, 0.0f}),
                      ErrorCode::InvalidArgument, "act_scale = 0");
  // Integer activations.
  auto xi = g.input("xi", {3, 64}, DType::I32);
  REQUIRE_PORTA_ERROR(g.matmul(xi, w), ErrorCode::DTypeMismatch, "x (input 0)");
}

TEST_CASE("quant_grouped_matmul and quant_moe_experts rules", "[quant]") {
  Graph g;
  auto rows = g.input("rows", {10, 64}, DType::F32);
  auto offsets = g.input("offsets", {4}, DType::I32);
  const auto s = make_scheme(QuantFormat::Int4, 32, true);
  auto w = g.weight("experts", quantize(Tensor::zeros({3, 16, 64}, DType::F32), s));
  CHECK(g.grouped_matmul(rows, w, offsets).shape() == Shape{10, 16});
  auto bad_offsets = g.input("bad_offsets", {3}, DType::I32);
  REQUIRE_PORTA_ERROR(g.grouped_matmul(rows, w, bad_offsets), ErrorCode::ShapeMismatch,
                      "offsets (input 1)");
  // A zero-point tensor of the wrong dtype.
  auto bad_zero = g.weight("bad_zero", Tensor::zeros({3, 16, 2}, DType::F32));
  REQUIRE_PORTA_ERROR(g.add_op(OpKind::QuantGroupedMatmul,
                               {rows, offsets, w.data, w.scale, bad_zero}, QuantAttrs{s}),
                      ErrorCode::InvalidArgument, "zero (input 4)", "zero: dtype f32 should be i8");

  MoeRoute route;
  route.weights = g.input("rw", {5, 2}, DType::F32);
  route.offsets = offsets;
  route.perm = g.input("perm", {10}, DType::I32);
  route.inv = g.input("inv", {10}, DType::I32);
  auto x = g.input("x", {5, 64}, DType::F32);
  auto gate = g.weight("gate", quantize(Tensor::zeros({3, 32, 64}, DType::F32), s));
  auto up = g.weight("up", quantize(Tensor::zeros({3, 32, 64}, DType::F32), s));
  auto down = g.weight("down", quantize(Tensor::zeros({3, 64, 32}, DType::F32), s));
  CHECK(g.moe_experts(x, route, {gate, up, down}).shape() == Shape{5, 64});
  // down with K = I = 32 but laid out [E, I, H]: the down data is named.
  REQUIRE_PORTA_ERROR(g.moe_experts(x, route, {gate, up, up}), ErrorCode::ShapeMismatch,
                      "down data (input 7)");
  REQUIRE_PORTA_ERROR(g.moe_experts(x, route, {gate, up, down}, ActivationQuant::StaticInt8),
                      ErrorCode::InvalidArgument, "activation: static_int8");
  auto down8 = g.weight(
      "down8", quantize(Tensor::zeros({3, 64, 32}, DType::F32), make_scheme(QuantFormat::Int8)));
  REQUIRE_PORTA_ERROR(g.moe_experts(x, route, {gate, up, down8}), ErrorCode::InvalidArgument,
                      "share one quantization scheme");
}

}  // namespace quant_errors_tests
