// npu-sim's quantized ops: W8A8 equal to the reference bit for bit (int32 sums on the int8 cube,
// the reference's f32 scaling), the weight-only antiquant's rounding into fp16 in closed form,
// FP8 declined, and the timing model's int8 rate and quantized weight bytes.
#include <cstdint>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include <porta/npu_sim.hpp>
#include <porta/porta.hpp>
#include "quant/quant_test_support.hpp"

namespace npu_sim_quant_tests {

using namespace porta;
namespace sim = porta::npu_sim;

namespace {

using quant_test::make_scheme;
using quant_test::random_tensor;
using quant_test::run_on;

}  // namespace

TEST_CASE("npu-sim W8A8 equals the reference bit for bit", "[npu-sim][quant]") {
  const std::int64_t k = 96, n = 40;
  for (DType t : {DType::F32, DType::F16, DType::BF16})
    for (const auto& s : {make_scheme(QuantFormat::Int8), make_scheme(QuantFormat::Int8, 0, true),
                          make_scheme(QuantFormat::Int8, 32, false, DType::BF16)})
      for (auto act : {ActivationQuant::DynamicInt8, ActivationQuant::StaticInt8}) {
        INFO(dtype_name(t) << ", " << describe(s) << ", " << to_string(act));
        Graph g;
        auto x = g.input("x", {5, k}, t);
        auto w = g.weight("w", quantize(random_tensor({n, k}, 7), s));
        g.output("y", g.matmul(x, w, act, {1.0f / 100.0f, -2.0f}));
        const std::map<std::string, Tensor> in{{"x", random_tensor({5, k}, 11, t)}};
        const auto expected = run_on(g, in, "reference");
        CHECK(run_on(g, in, "npu-sim") == expected);
      }
  // The grouped op and the whole MoE FFN (f32 activations: no roundings between the kernels)
  Graph g;
  const std::int64_t experts = 3, h = 64, inner = 32;
  auto rows = g.input("rows", {7, h}, DType::F32);
  auto offsets = g.input("offsets", {experts + 1}, DType::I32);
  auto w = g.weight("w", quantize(random_tensor({experts, n, h}, 5), make_scheme(QuantFormat::Int8)));
  g.output("y", g.grouped_matmul(rows, w, offsets, ActivationQuant::DynamicInt8));
  const std::map<std::string, Tensor> in{
      {"rows", random_tensor({7, h}, 3)},
      {"offsets", Tensor::from_vector<std::int32_t>({experts + 1}, {0, 2, 2, 6})}};
  const auto grouped = run_on(g, in, "npu-sim");
  CHECK(grouped == run_on(g, in, "reference"));
  CHECK(grouped[6 * n] == 0.0f);  // row 6 is in no expert's block

  Graph m;
  auto x = m.input("x", {4, h}, DType::F32);
  MoeRoute route;
  route.weights = m.input("weights", {4, 2}, DType::F32);
  route.offsets = m.input("offsets", {experts + 1}, DType::I32);
  route.perm = m.input("perm", {8}, DType::I32);
  route.inv = m.input("inv", {8}, DType::I32);
  const auto s8 = make_scheme(QuantFormat::Int8, 32);
  QuantMoeExpertWeights ew{m.weight("gate", quantize(random_tensor({experts, inner, h}, 1), s8)),
                           m.weight("up", quantize(random_tensor({experts, inner, h}, 2), s8)),
                           m.weight("down", quantize(random_tensor({experts, h, inner}, 4), s8))};
  m.output("y", m.moe_experts(x, route, ew, ActivationQuant::DynamicInt8));
  // token t goes to experts (t % 3) and ((t + 1) % 3); rows sorted by expert
  const std::map<std::string, Tensor> moe_in{
      {"x", random_tensor({4, h}, 9)},
      {"weights", Tensor::from_vector<float>({4, 2}, {0.6f, 0.4f, 0.5f, 0.5f, 0.7f, 0.3f, 0.9f,
                                                      0.1f})},
      {"offsets", Tensor::from_vector<std::int32_t>({4}, {0, 3, 6, 8})},
      // assignment a = t * 2 + slot: expert 0 gets a = 0, 5, 6; expert 1: 1, 2, 7; expert 2: 3, 4
      {"perm", Tensor::from_vector<std::int32_t>({8}, {0, 5, 6, 1, 2, 7, 3, 4})},
      {"inv", Tensor::from_vector<std::int32_t>({8}, {0, 3, 4, 6, 7, 1, 2, 5})}};
  CHECK(run_on(m, moe_in, "npu-sim") == run_on(m, moe_in, "reference"));
}

TEST_CASE("npu-sim weight-only antiquantizes into fp16 before the cube", "[npu-sim][quant]") {
  // W = 3 · 0.1 (int8 per channel), x = 1 in fp16. The vector cores hold the scale in fp16
  // (0.1 → 0.0999755859375) and round 3 · 0.0999755859375 = 0.2999267578125, a tie between
  // fp16 neighbours, to even: 0.2998046875. The reference rounds f32(3 · 0.1f) once: 0.300048828125.
  QuantizedTensor q;
  q.scheme = make_scheme(QuantFormat::Int8);
  q.shape = {1, 1};
  q.data = Tensor::from_vector<std::int8_t>({1, 1}, {3});
  q.scale = Tensor::from_vector<float>({1, 1}, {0.1f});
  Graph g;
  g.output("y", g.matmul(g.input("x", {1, 1}, DType::F16), g.weight("w", q)));
  const std::map<std::string, Tensor> in{{"x", Tensor::from_f32({1, 1}, DType::F16, std::vector<float>{1.0f})}};
  CHECK(run_on(g, in, "npu-sim") == std::vector<float>{0.2998046875f});
  CHECK(run_on(g, in, "reference") == std::vector<float>{0.300048828125f});
}

TEST_CASE("npu-sim declines FP8 weights with the reason", "[npu-sim][quant]") {
  Graph g;
  auto w = g.weight("w", quantize(random_tensor({16, 32}, 1), make_scheme(QuantFormat::F8E4M3)));
  g.output("y", g.matmul(g.input("x", {2, 32}, DType::F16), w));
  CHECK_THROWS_WITH(compile(g, {.backend = "npu-sim", .fallback = ""}),
                    Catch::Contains("no fp8"));
  // with the default fallback the node runs elsewhere
  CHECK_NOTHROW(compile(g, {.backend = "npu-sim"}));
}

TEST_CASE("npu-sim times W8A8 at the int8 rate and weights at their quantized bytes",
          "[npu-sim][quant]") {
  const auto p = sim::load_profile("910b2");
  REQUIRE(p.int8_rate == 2.0);
  const std::int64_t d = 2048;
  const auto weight = random_tensor({d, d}, 3);
  const auto time = [&](std::int64_t m, const QuantScheme* s, ActivationQuant act) {
    Graph g;
    auto x = g.input("x", {m, d}, DType::F16);
    if (s == nullptr)
      g.output("y", g.matmul(x, g.weight("w", weight.to(DType::F16)), {false, true}));
    else
      g.output("y", g.matmul(x, g.weight("w", quantize(weight, *s)), act));
    return sim::simulate(g, p).report.ops.at(0);
  };
  const auto w8 = make_scheme(QuantFormat::Int8);
  const auto w4 = make_scheme(QuantFormat::Int4, 128, false, DType::F16);
  // Prefill (compute-bound): the int8 cube at twice the fp16 rate, less the vector kernels.
  const auto f16_prefill = time(4096, nullptr, ActivationQuant::None);
  const auto w8a8_prefill = time(4096, &w8, ActivationQuant::DynamicInt8);
  WARN("910b2 [4096, 2048] x [2048, 2048]: f16 " << f16_prefill.time_us << " us, W8A8 "
                                                 << w8a8_prefill.time_us << " us");
  // The cube part alone runs at the int8 rate; the op adds the per-token quantization kernel
  // (a launch and two passes over x on the vector cores), so it gains less than 2x.
  const auto i8_gemm = sim::simulate_matmul(p, 4096, d, d, DType::I8);
  const auto f16_gemm = sim::simulate_matmul(p, 4096, d, d, DType::F16);
  CHECK(i8_gemm.kernel_us < 0.6 * f16_gemm.kernel_us);
  CHECK(w8a8_prefill.time_us < 0.95 * f16_prefill.time_us);
  CHECK(w8a8_prefill.time_us > i8_gemm.kernel_us + 2 * p.launch_overhead_us);
  // Decode (bandwidth-bound): the weight streams at its quantized size, scales counted.
  const double f16_bytes = 2.0 * d * d;
  const auto f16_decode = time(1, nullptr, ActivationQuant::None);
  const auto w8_decode = time(1, &w8, ActivationQuant::DynamicInt8);
  const auto w4_decode = time(1, &w4, ActivationQuant::None);
  CHECK(f16_decode.hbm_bytes > f16_bytes);
  CHECK(w8_decode.hbm_bytes / f16_decode.hbm_bytes == Approx((1.0 + 4.0 / d) / 2).epsilon(0.02));
  CHECK(w4_decode.hbm_bytes / f16_decode.hbm_bytes ==
        Approx((0.5 + 2.0 / 128) / 2).epsilon(0.03));
  CHECK(w4_decode.time_us < f16_decode.time_us);
}

}  // namespace npu_sim_quant_tests
