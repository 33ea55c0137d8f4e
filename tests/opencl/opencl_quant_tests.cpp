// The opencl quantized ops against independent values: W8A8 equal to the reference bit for bit
// (exact integer sums, the same f32 scaling), weight-only GEMMs against a double-precision sum
// over porta::dequantize's element values, NaN rows, rows outside every expert, bad offsets.
// With no OpenCL device every test says so and returns.
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include <porta/porta.hpp>
#include "quant/quant_test_support.hpp"

namespace opencl_quant_tests {

using namespace porta;

namespace {

using quant_test::make_scheme;
using quant_test::random_tensor;
using quant_test::run_on;

std::string opencl_device() {
  for (const auto& d : list_devices())
    if (d.name.rfind("opencl", 0) == 0 && d.available) return d.name;
  WARN("skipped: no OpenCL device is available");
  return {};
}

}  // namespace

TEST_CASE("opencl W8A8 equals the reference bit for bit", "[opencl][quant]") {
  const std::string device = opencl_device();
  if (device.empty()) return;
  const std::int64_t k = 96, n = 38;  // n not a multiple of the kernel's 4 columns per item
  for (DType t : {DType::F32, DType::F16, DType::BF16})
    for (const auto& s : {make_scheme(QuantFormat::Int8), make_scheme(QuantFormat::Int8, 0, true),
                          make_scheme(QuantFormat::Int8, 32, false, DType::BF16)})
      for (auto act : {ActivationQuant::DynamicInt8, ActivationQuant::StaticInt8}) {
        INFO(dtype_name(t) << ", " << describe(s) << ", " << to_string(act));
        Graph g;
        auto w = g.weight("w", quantize(random_tensor({n, k}, 7), s));
        g.output("y", g.matmul(g.input("x", {5, k}, t), w, act, {1.0f / 100.0f, -2.0f}));
        const std::map<std::string, Tensor> in{{"x", random_tensor({5, k}, 11, t)}};
        CHECK(run_on(g, in, device) == run_on(g, in, "reference"));
      }
  Graph g;
  auto w = g.weight("w", quantize(random_tensor({3, n, 64}, 5), make_scheme(QuantFormat::Int8, 32)));
  g.output("y", g.grouped_matmul(g.input("rows", {8, 64}, DType::F32), w,
                                 g.input("offsets", {4}, DType::I32),
                                 ActivationQuant::DynamicInt8));
  std::map<std::string, Tensor> in{
      {"rows", random_tensor({8, 64}, 3)},
      {"offsets", Tensor::from_vector<std::int32_t>({4}, {1, 3, 3, 7})}};
  const auto y = run_on(g, in, device);
  CHECK(y == run_on(g, in, "reference"));
  for (std::int64_t c = 0; c < n; ++c) {  // rows 0 and 7 belong to no expert
    CHECK(y[static_cast<std::size_t>(c)] == 0.0f);
    CHECK(y[static_cast<std::size_t>(7 * n + c)] == 0.0f);
  }
  // a NaN in a row makes its outputs NaN (scale NaN, codes 0); the other rows are untouched
  auto rows = random_tensor({8, 64}, 3).to_f32();
  rows[2 * 64 + 5] = std::nanf("");
  in["rows"] = Tensor::from_vector<float>({8, 64}, rows);
  const auto with_nan = run_on(g, in, device);
  CHECK(std::isnan(with_nan[static_cast<std::size_t>(2 * n)]));
  CHECK(with_nan[static_cast<std::size_t>(3 * n)] == y[static_cast<std::size_t>(3 * n)]);
}

TEST_CASE("opencl weight-only GEMMs dequantize int8, int4 and f8 in the kernel",
          "[opencl][quant]") {
  const std::string device = opencl_device();
  if (device.empty()) return;
  const std::int64_t k = 160, n = 37, rows = 3;
  for (const auto& s :
       {make_scheme(QuantFormat::Int8, 32, true), make_scheme(QuantFormat::Int4, 32, true, DType::BF16),
        make_scheme(QuantFormat::Int4, 160, false, DType::F16),
        make_scheme(QuantFormat::F8E4M3, 128, false, DType::F32, 16),
        make_scheme(QuantFormat::F8E4M3)}) {
    INFO(describe(s));
    const QuantizedTensor q = quantize(random_tensor({n, k}, 21), s);
    const auto w = dequantize(q).to_f32();  // the element values docs/quantization.md defines
    const auto x = random_tensor({rows, k}, 4).to_f32();
    Graph g;
    g.output("y", g.matmul(g.input("x", {rows, k}, DType::F32), g.weight("w", q)));
    const auto y = run_on(g, {{"x", Tensor::from_vector<float>({rows, k}, x)}}, device);
    double largest = 0;
    std::vector<double> expected;
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < n; ++c) {
        double sum = 0;
        for (std::int64_t i = 0; i < k; ++i)
          sum += static_cast<double>(x[static_cast<std::size_t>(r * k + i)]) *
                 static_cast<double>(w[static_cast<std::size_t>(c * k + i)]);
        expected.push_back(sum);
        largest = std::max(largest, std::fabs(sum));
      }
    for (std::size_t i = 0; i < expected.size(); ++i)
      CHECK(std::fabs(y[i] - expected[i]) <= 1e-6 * largest);
  }
}

TEST_CASE("opencl quant_grouped_matmul rejects bad offsets", "[opencl][quant]") {
  const std::string device = opencl_device();
  if (device.empty()) return;
  Graph g;
  auto w = g.weight("w", quantize(random_tensor({2, 8, 32}, 5), make_scheme(QuantFormat::Int4, 32)));
  g.output("y", g.grouped_matmul(g.input("rows", {4, 32}, DType::F32), w,
                                 g.input("offsets", {3}, DType::I32)));
  auto exe = compile(g, {.backend = device, .fallback = ""});
  CHECK_THROWS_WITH(exe.run({{"rows", random_tensor({4, 32}, 1)},
                             {"offsets", Tensor::from_vector<std::int32_t>({3}, {0, 3, 2})}}),
                    Catch::Contains("offsets"));
}

TEST_CASE("opencl W8A8 quant_moe_experts equals the reference bit for bit with fp64",
          "[opencl][quant]") {
  const std::string device = opencl_device();
  if (device.empty()) return;
  bool fp64 = false;
  for (const auto& [key, value] : device_info(device).properties)
    if (key.rfind("fp64", 0) == 0) fp64 = value == "yes";
  if (!fp64) {
    WARN("skipped: " << device << " has no fp64 (its SwiGLU rounds in f32)");
    return;
  }
  const std::int64_t experts = 3, h = 64, inner = 32;
  Graph m;
  auto x = m.input("x", {4, h}, DType::F32);
  MoeRoute route;
  route.weights = m.input("weights", {4, 2}, DType::F32);
  route.offsets = m.input("offsets", {experts + 1}, DType::I32);
  route.perm = m.input("perm", {8}, DType::I32);
  route.inv = m.input("inv", {8}, DType::I32);
  const auto s8 = make_scheme(QuantFormat::Int8, 32, true);
  QuantMoeExpertWeights ew{m.weight("gate", quantize(random_tensor({experts, inner, h}, 1), s8)),
                           m.weight("up", quantize(random_tensor({experts, inner, h}, 2), s8)),
                           m.weight("down", quantize(random_tensor({experts, h, inner}, 4), s8))};
  m.output("y", m.moe_experts(x, route, ew, ActivationQuant::DynamicInt8));
  // assignment a = token * 2 + slot; expert 0 gets a = 0, 5, 6; expert 1: 1, 2, 7; expert 2: 3, 4
  const std::map<std::string, Tensor> in{
      {"x", random_tensor({4, h}, 9)},
      {"weights", Tensor::from_vector<float>({4, 2}, {0.6f, 0.4f, 0.5f, 0.5f, 0.7f, 0.3f, 0.9f,
                                                      0.1f})},
      {"offsets", Tensor::from_vector<std::int32_t>({4}, {0, 3, 6, 8})},
      {"perm", Tensor::from_vector<std::int32_t>({8}, {0, 5, 6, 1, 2, 7, 3, 4})},
      {"inv", Tensor::from_vector<std::int32_t>({8}, {0, 3, 4, 6, 7, 1, 2, 5})}};
  CHECK(run_on(m, in, device) == run_on(m, in, "reference"));
}

}  // namespace opencl_quant_tests
