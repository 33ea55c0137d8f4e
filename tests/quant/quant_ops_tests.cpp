// The quantized ops on the reference backend: closed-form W8A8 (dynamic and static) results, the
// weight-only ops against the unquantized ops on the dequantized weights (which must agree bit
// for bit: both are the reference's double-accumulated dot products of the same f32 values), and
// quant_moe_experts against its composition from quant_matmul.
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include <porta/porta.hpp>
#include "quant/quant_test_support.hpp"

namespace quant_ops_tests {

using namespace porta;

namespace {

using quant_test::make_scheme;

Tensor random_f32(Shape shape, std::uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<std::size_t>(shape.numel()));
  for (auto& x : v) x = dist(rng);
  return Tensor::from_vector<float>(std::move(shape), v);
}

std::vector<float> run1(Graph& g, const std::map<std::string, Tensor>& inputs,
                        const std::string& backend = "reference") {
  auto out = compile(g, {.backend = backend, .fallback = ""}).run(inputs);
  return out.begin()->second.to_f32();
}

// W: row 0 = [1, 1, 1, 1] · 0.5, row 1 = [2, 0, -1, 3] · 0.25 (int8 per channel, symmetric).
QuantizedTensor closed_form_weight() {
  QuantizedTensor w;
  w.scheme = make_scheme(QuantFormat::Int8);
  w.shape = {2, 4};
  w.data = Tensor::from_vector<std::int8_t>({2, 4}, {1, 1, 1, 1, 2, 0, -1, 3});
  w.scale = Tensor::from_vector<float>({2, 1}, {0.5f, 0.25f});
  return w;
}

}  // namespace

TEST_CASE("quant_matmul W8A8 dynamic: int32 sums times channel and token scales", "[quant]") {
  Graph g;
  auto x = g.input("x", {1, 4}, DType::F32);
  g.output("y", g.matmul(x, g.weight("w", closed_form_weight()), ActivationQuant::DynamicInt8));
  // x = [127, -63.5, 0.5, 1.5]: s_x = 1, q = [127, -64, 0, 2] (ties to even).
  // Row 0: 127 - 64 + 0 + 2 = 65 → 65 · 0.5 · 1 = 32.5. Row 1: 254 + 0 - 0 + 6 = 260 → 65.
  const auto y = run1(g, {{"x", Tensor::from_vector<float>({1, 4}, {127, -63.5f, 0.5f, 1.5f})}});
  CHECK(y == std::vector<float>{32.5f, 65.0f});
}

TEST_CASE("quant_matmul W8A8 static: per-tensor scale and offset, clamped", "[quant]") {
  Graph g;
  auto x = g.input("x", {1, 4}, DType::F32);
  g.output("y", g.matmul(x, g.weight("w", closed_form_weight()), ActivationQuant::StaticInt8,
                         {0.5f, 3.0f}));
  // x / 0.5 = [254, -127, 1, 3]; + 3 = [257 → 127, -124, 4, 6]; q - 3 = [124, -127, 1, 3].
  // Row 0: 124 - 127 + 1 + 3 = 1 → 1 · 0.5 · 0.5 = 0.25. Row 1: 248 - 1 + 9 = 256 → 256 · 0.25 ·
  // 0.5.
  const auto y = run1(g, {{"x", Tensor::from_vector<float>({1, 4}, {127, -63.5f, 0.5f, 1.5f})}});
  CHECK(y == std::vector<float>{0.25f, 32.0f});
}

TEST_CASE("weight-only quantized ops equal the plain ops on dequantized weights", "[quant]") {
  const QuantScheme schemes[] = {make_scheme(QuantFormat::Int8), make_scheme(QuantFormat::Int4, 32),
                                 make_scheme(QuantFormat::Int4, 64, true),
                                 make_scheme(QuantFormat::F8E4M3)};
  for (const auto& s : schemes) {
    INFO(describe(s));
    const auto xs = random_f32({5, 128}, 1);
    const auto wq = quantize(random_f32({3, 24, 128}, 2), s);
    const auto wf = dequantize(wq);
    const auto offsets = Tensor::from_vector<std::int32_t>({4}, {0, 2, 2, 5});
    Graph q, f;
    q.output("y", q.grouped_matmul(q.input("x", {5, 128}, DType::F32), q.weight("w", wq),
                                   q.input("o", {4}, DType::I32)));
    f.output("y", f.grouped_matmul(f.input("x", {5, 128}, DType::F32), f.weight("w", wf),
                                   f.input("o", {4}, DType::I32)));
    CHECK(run1(q, {{"x", xs}, {"o", offsets}}) == run1(f, {{"x", xs}, {"o", offsets}}));
  }
}

TEST_CASE("quant_moe_experts equals its composition from quant_matmul", "[quant]") {
  // One expert, top-1, routing weight 1: the layer is down(swiglu(gate(x), up(x))) exactly, with
  // each linear quantizing its own input per token.
  const std::int64_t t = 3, h = 64, inter = 32;
  const auto s = make_scheme(QuantFormat::Int8, 32);
  const auto gate = quantize(random_f32({1, inter, h}, 3), s);
  const auto up = quantize(random_f32({1, inter, h}, 4), s);
  const auto down = quantize(random_f32({1, h, inter}, 5), s);
  const auto xs = random_f32({t, h}, 6);
  for (auto act : {ActivationQuant::None, ActivationQuant::DynamicInt8}) {
    INFO(to_string(act));
    Graph m;
    MoeRoute route;
    route.weights = m.input("rw", {t, 1}, DType::F32);
    route.offsets = m.input("offsets", {2}, DType::I32);
    route.perm = m.input("perm", {t}, DType::I32);
    route.inv = m.input("inv", {t}, DType::I32);
    m.output("y", m.moe_experts(
                      m.input("x", {t, h}, DType::F32), route,
                      {m.weight("gate", gate), m.weight("up", up), m.weight("down", down)}, act));
    const auto moe = run1(m, {{"x", xs},
                              {"rw", Tensor::from_vector<float>({t, 1}, {1, 1, 1})},
                              {"offsets", Tensor::from_vector<std::int32_t>({2}, {0, 3})},
                              {"perm", Tensor::from_vector<std::int32_t>({t}, {0, 1, 2})},
                              {"inv", Tensor::from_vector<std::int32_t>({t}, {0, 1, 2})}});
    auto slice = [](const QuantizedTensor& w) {
      QuantizedTensor r = w;
      r.shape = {w.shape[1], w.shape[2]};
      r.data = w.data.reshape({w.data.shape()[1], w.data.shape()[2]});
      r.scale = w.scale.reshape({w.scale.shape()[1], w.scale.shape()[2]});
      return r;
    };
    Graph c;
    auto x = c.input("x", {t, h}, DType::F32);
    c.output("gate", c.matmul(x, c.weight("gate", slice(gate)), act));
    c.output("up", c.matmul(x, c.weight("up", slice(up)), act));
    auto gu = compile(c, {.backend = "reference"}).run({{"x", xs}});
    const auto g_out = gu.at("gate").to_f32(), u_out = gu.at("up").to_f32();
    // swiglu as the reference moe_experts computes it: silu and product in double.
    std::vector<float> a(g_out.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      const double gv = g_out[i];
      a[i] = static_cast<float>(gv / (1.0 + std::exp(-gv)) * static_cast<double>(u_out[i]));
    }
    Graph d;
    d.output("y",
             d.matmul(d.input("a", {t, inter}, DType::F32), d.weight("down", slice(down)), act));
    const auto composed = run1(d, {{"a", Tensor::from_vector<float>({t, inter}, a)}});
    REQUIRE(moe.size() == composed.size());
    for (std::size_t i = 0; i < moe.size(); ++i) CHECK(moe[i] == composed[i]);
  }
}

}  // namespace quant_ops_tests
