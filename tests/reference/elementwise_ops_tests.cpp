// Reference kernels: add/sub/mul/div with broadcasting, the activations and swiglu.

#include <cmath>
#include <cstdint>
#include <limits>

#include <porta/device.hpp>

#include "reference/ops_test_support.hpp"

namespace reference_elementwise_ops_tests {

using namespace ops_test;

TEST_CASE("add broadcasts a row and a column like NumPy", "[ops][elementwise]") {
  porta::Graph g;
  auto a = g.input("a", {2, 3}, porta::DType::F32);
  auto row = g.input("row", {3}, porta::DType::F32);
  auto col = g.input("col", {2, 1}, porta::DType::F32);
  auto y = g.add(g.add(a, row), col);
  const auto out = run_single(g, y,
                              {{"a", f32({2, 3}, {1, 2, 3, 4, 5, 6})},
                               {"row", f32({3}, {10, 20, 30})},
                               {"col", f32({2, 1}, {100, 200})}});
  CHECK(out.shape() == porta::Shape{2, 3});
  check_close(out.to_f32(), {111, 122, 133, 214, 225, 236});
}

TEST_CASE("an outer sum broadcasts both operands", "[ops][elementwise]") {
  porta::Graph g;
  auto a = g.input("a", {2, 1}, porta::DType::F32);
  auto b = g.input("b", {1, 3}, porta::DType::F32);
  const auto out =
      run_single(g, g.sub(a, b), {{"a", f32({2, 1}, {10, 20})}, {"b", f32({1, 3}, {1, 2, 3})}});
  CHECK(out.shape() == porta::Shape{2, 3});
  check_close(out.to_f32(), {9, 8, 7, 19, 18, 17});
}

TEST_CASE("mul and div broadcast a scalar and a leading axis", "[ops][elementwise]") {
  porta::Graph g;
  auto a = g.input("a", {2, 2, 2}, porta::DType::F32);
  auto b = g.input("b", {2, 2}, porta::DType::F32);
  auto half = g.scalar(0.5f);
  auto y = g.div(g.mul(a, half), b);
  const auto out = run_single(
      g, y,
      {{"a", f32({2, 2, 2}, {2, 4, 6, 8, 10, 12, 14, 16})}, {"b", f32({2, 2}, {1, 2, 4, 8})}});
  CHECK(out.shape() == porta::Shape{2, 2, 2});
  check_close(out.to_f32(), {1, 1, 0.75, 0.5, 5, 3, 1.75, 1});
}

TEST_CASE("division by zero follows IEEE", "[ops][elementwise]") {
  porta::Graph g;
  auto a = g.input("a", {3}, porta::DType::F32);
  auto b = g.input("b", {3}, porta::DType::F32);
  const auto out =
      run_single(g, g.div(a, b), {{"a", f32({3}, {1, -1, 0})}, {"b", f32({3}, {0, 0, 0})}});
  const auto v = out.to_f32();
  CHECK(v[0] == std::numeric_limits<float>::infinity());
  CHECK(v[1] == -std::numeric_limits<float>::infinity());
  CHECK(std::isnan(v[2]));
}

TEST_CASE("integer add and mul are exact in int64", "[ops][elementwise]") {
  porta::Graph g;
  auto a = g.input("a", {2}, porta::DType::I64);
  auto b = g.input("b", {1}, porta::DType::I64);
  g.output("sum", g.add(a, b));
  g.output("product", g.mul(a, b));
  auto exe = porta::compile(g);
  // 3000000001 · 3 = 9000000003 is not representable in f32: only exact integer math gets it.
  auto out = exe.run({{"a", i64({2}, {3000000001LL, -7})}, {"b", i64({1}, {3})}});
  const auto* sum = out.at("sum").data_as<std::int64_t>();
  const auto* product = out.at("product").data_as<std::int64_t>();
  CHECK(sum[0] == 3000000004LL);
  CHECK(sum[1] == -4);
  CHECK(product[0] == 9000000003LL);
  CHECK(product[1] == -21);
}

TEST_CASE("i32 sub broadcasts and saturates on overflow", "[ops][elementwise]") {
  porta::Graph g;
  auto a = g.input("a", {3}, porta::DType::I32);
  auto b = g.input("b", {1}, porta::DType::I32);
  const auto out =
      run_single(g, g.sub(a, b), {{"a", i32({3}, {5, -2147483647, 0})}, {"b", i32({1}, {7})}});
  REQUIRE(out.dtype() == porta::DType::I32);
  const auto* v = out.data_as<std::int32_t>();
  CHECK(v[0] == -2);
  CHECK(v[1] == std::numeric_limits<std::int32_t>::min());  // -2147483654 saturates
  CHECK(v[2] == -7);
}

TEST_CASE("silu, sigmoid and exp at known points", "[ops][elementwise]") {
  porta::Graph g;
  auto x = g.input("x", {4}, porta::DType::F32);
  g.output("silu", g.silu(x));
  g.output("sigmoid", g.sigmoid(x));
  g.output("exp", g.exp(x));
  auto exe = porta::compile(g);
  auto out = exe.run({{"x", f32({4}, {0, 1, -1, 2})}});
  const double e = std::exp(1.0);
  check_close(out.at("silu").to_f32(),
              {0.0, 1.0 / (1.0 + 1.0 / e), -1.0 / (1.0 + e), 1.7615941559557649});
  check_close(out.at("sigmoid").to_f32(),
              {0.5, 0.7310585786300049, 0.2689414213699951, 0.8807970779778823});
  check_close(out.at("exp").to_f32(), {1.0, e, 1.0 / e, 7.38905609893065});
}

// relu went in by docs/architecture.md's recipe: each backend that lists it runs it natively
// (no fallback allowed here), with the same closed-form values; NaN stays NaN, as in PyTorch.
TEST_CASE("relu at known points on every available backend", "[ops][elementwise]") {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> x{-2.0f, -0.5f, -0.0f, 0.0f, 0.5f, 3.0f, -inf, inf, nan, 1e-30f};
  const std::vector<double> want{0, 0, 0, 0, 0.5, 3, 0, inf, nan, static_cast<double>(1e-30f)};
  int backends = 0;
  for (const auto& device : porta::list_devices()) {
    if (!device.available) continue;
    INFO("backend " << device.name);
    porta::Graph g;
    auto in = g.input("x", {2, 5}, porta::DType::F32);
    const bool lists_relu = device.name == "reference" || device.name == "cpu" ||
                            device.name.rfind("opencl", 0) == 0 ||
                            device.name.rfind("npu-sim", 0) == 0;
    if (!lists_relu) {  // the template backend: it must decline honestly, not compute something
      try {
        run_single(g, g.relu(in), {{"x", f32({2, 5}, x)}}, device.name);
        FAIL("a backend without a relu entry ran relu");
      } catch (const porta::Error& e) {
        CHECK(e.code() == porta::ErrorCode::Unsupported);
      }
      continue;
    }
    check_close(run_single(g, g.relu(in), {{"x", f32({2, 5}, x)}}, device.name).to_f32(), want,
                0.0);
    ++backends;
  }
  CHECK(backends >= 1);
}

TEST_CASE("silu and sigmoid stay finite for large magnitudes", "[ops][elementwise]") {
  porta::Graph g;
  auto x = g.input("x", {2}, porta::DType::F32);
  g.output("silu", g.silu(x));
  g.output("sigmoid", g.sigmoid(x));
  auto exe = porta::compile(g);
  auto out = exe.run({{"x", f32({2}, {-200, 200})}});
  check_close(out.at("silu").to_f32(), {0.0, 200.0});
  check_close(out.at("sigmoid").to_f32(), {0.0, 1.0});
}

TEST_CASE("gelu, exact and tanh-approximated, at known points", "[ops][elementwise]") {
  porta::Graph g;
  auto x = g.input("x", {4}, porta::DType::F32);
  g.output("exact", g.gelu(x));
  g.output("tanh", g.gelu(x, {porta::GeluApproximation::Tanh}));
  auto exe = porta::compile(g);
  auto out = exe.run({{"x", f32({4}, {0, 1, -1, 2})}});
  // x·Φ(x) with Φ the standard normal CDF: Φ(1) = 0.8413447460685429, Φ(2) = 0.9772498680518208.
  check_close(out.at("exact").to_f32(),
              {0.0, 0.8413447460685429, -0.15865525393145707, 1.9544997361036416});
  // 0.5·x·(1 + tanh(sqrt(2/π)·(x + 0.044715·x³))), evaluated in double.
  check_close(out.at("tanh").to_f32(),
              {0.0, 0.8411919906082768, -0.15880800939172324, 1.954597694087775});
}

TEST_CASE("swiglu is silu(gate) times up", "[ops][elementwise]") {
  porta::Graph g;
  auto gate = g.input("gate", {2, 2}, porta::DType::F32);
  auto up = g.input("up", {2, 2}, porta::DType::F32);
  const auto out =
      run_single(g, g.swiglu(gate, up),
                 {{"gate", f32({2, 2}, {0, 1, -1, 2})}, {"up", f32({2, 2}, {5, 2, 3, -1})}});
  const double e = std::exp(1.0);
  check_close(out.to_f32(), {0.0, 2.0 / (1.0 + 1.0 / e), -3.0 / (1.0 + e), -1.7615941559557649});
}

}  // namespace reference_elementwise_ops_tests
