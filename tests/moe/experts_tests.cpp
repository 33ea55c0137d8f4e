// moe_experts on the reference backend against a dense loop written the way Hugging Face computes
// an MoE block: for each token, for each chosen expert, w · down(silu(gate·x) · up·x), plus the
// shared expert. The routing it is fed is recomputed here independently (softmax top-k).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include <catch2/catch.hpp>

#include "moe/moe_test_support.hpp"

namespace moe_experts_tests {

using porta::DType;
using porta::Graph;
using porta::Tensor;
using porta_moe_test::sigmoid;

namespace {

struct Problem {
  std::int64_t T, H, I, E, K;
  std::vector<float> x, logits, gate, up, down;       // gate/up [E, I, H], down [E, H, I]
  std::vector<float> s_gate, s_up, s_down, s_gate_w;  // [Is, H], [Is, H], [H, Is], [1, H]
  std::int64_t Is = 0;
};

std::vector<float> random_values(std::mt19937& rng, std::size_t n, float scale) {
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> v(n);
  for (auto& e : v) e = dist(rng);
  return v;
}

Problem make_problem(std::int64_t T, std::int64_t H, std::int64_t I, std::int64_t E, std::int64_t K,
                     std::int64_t Is, unsigned seed) {
  std::mt19937 rng(seed);
  const auto n = [](std::int64_t a, std::int64_t b, std::int64_t c = 1) {
    return static_cast<std::size_t>(a * b * c);
  };
  Problem p{T, H, I, E, K, {}, {}, {}, {}, {}, {}, {}, {}, {}, Is};
  p.x = random_values(rng, n(T, H), 1.0f);
  p.logits = random_values(rng, n(T, E), 2.0f);
  p.gate = random_values(rng, n(E, I, H), 0.5f);
  p.up = random_values(rng, n(E, I, H), 0.5f);
  p.down = random_values(rng, n(E, H, I), 0.5f);
  p.s_gate = random_values(rng, n(Is, H), 0.5f);
  p.s_up = random_values(rng, n(Is, H), 0.5f);
  p.s_down = random_values(rng, n(H, Is), 0.5f);
  p.s_gate_w = random_values(rng, n(1, H), 0.5f);
  return p;
}

// y = W·v for W [rows, cols] row-major (nn.Linear), in double.
std::vector<double> linear(const float* w, std::int64_t rows, std::int64_t cols,
                           const std::vector<double>& v) {
  std::vector<double> y(static_cast<std::size_t>(rows), 0.0);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c)
      y[static_cast<std::size_t>(r)] += double{w[r * cols + c]} * v[static_cast<std::size_t>(c)];
  return y;
}

// down(silu(gate·x) · up·x) for one expert given by its three weight matrices.
std::vector<double> swiglu_mlp(const float* gate, const float* up, const float* down,
                               std::int64_t H, std::int64_t I, const std::vector<double>& x) {
  const auto g = linear(gate, I, H, x);
  const auto u = linear(up, I, H, x);
  std::vector<double> act(static_cast<std::size_t>(I));
  for (std::size_t i = 0; i < act.size(); ++i) act[i] = g[i] * sigmoid(g[i]) * u[i];
  return linear(down, H, I, act);
}

struct Routing {
  std::vector<int> ids;         // [T, K], -1 when dropped
  std::vector<double> weights;  // [T, K]
};

// Softmax top-k (optionally renormalized over the top-k) with an optional capacity walk.
Routing softmax_routing(const Problem& p, bool renormalize, float capacity_factor = 0) {
  Routing r;
  for (std::int64_t t = 0; t < p.T; ++t) {
    const float* row = &p.logits[static_cast<std::size_t>(t * p.E)];
    std::vector<int> order(static_cast<std::size_t>(p.E));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return row[a] > row[b]; });
    double all = 0, top = 0;
    for (std::int64_t e = 0; e < p.E; ++e) all += std::exp(double{row[e]});
    for (std::int64_t k = 0; k < p.K; ++k)
      top += std::exp(double{row[order[static_cast<std::size_t>(k)]]});
    for (std::int64_t k = 0; k < p.K; ++k) {
      const int e = order[static_cast<std::size_t>(k)];
      r.ids.push_back(e);
      r.weights.push_back(std::exp(double{row[e]}) / (renormalize ? top : all));
    }
  }
  if (capacity_factor > 0) {
    const auto capacity = static_cast<int>(std::ceil(capacity_factor * p.T * p.K / p.E));
    std::vector<int> used(static_cast<std::size_t>(p.E), 0);
    for (std::size_t a = 0; a < r.ids.size(); ++a)
      if (used[static_cast<std::size_t>(r.ids[a])]++ >= capacity) {
        r.ids[a] = -1;
        r.weights[a] = 0;
      }
  }
  return r;
}

// The Hugging Face way: token by token, expert by expert, plus the (optionally gated) shared one.
std::vector<double> dense_reference(const Problem& p, const Routing& r, bool shared,
                                    bool shared_gated) {
  std::vector<double> y(static_cast<std::size_t>(p.T * p.H), 0.0);
  const auto expert_stride = static_cast<std::size_t>(p.I * p.H);
  for (std::int64_t t = 0; t < p.T; ++t) {
    const std::vector<double> xt(p.x.begin() + t * p.H, p.x.begin() + (t + 1) * p.H);
    for (std::int64_t k = 0; k < p.K; ++k) {
      const int e = r.ids[static_cast<std::size_t>(t * p.K + k)];
      if (e < 0) continue;
      const auto off = static_cast<std::size_t>(e) * expert_stride;
      const auto out = swiglu_mlp(&p.gate[off], &p.up[off], &p.down[off], p.H, p.I, xt);
      for (std::int64_t h = 0; h < p.H; ++h)
        y[static_cast<std::size_t>(t * p.H + h)] +=
            r.weights[static_cast<std::size_t>(t * p.K + k)] * out[static_cast<std::size_t>(h)];
    }
    if (shared) {
      const auto out = swiglu_mlp(p.s_gate.data(), p.s_up.data(), p.s_down.data(), p.H, p.Is, xt);
      const double gate = shared_gated ? sigmoid(linear(p.s_gate_w.data(), 1, p.H, xt)[0]) : 1.0;
      for (std::int64_t h = 0; h < p.H; ++h)
        y[static_cast<std::size_t>(t * p.H + h)] += gate * out[static_cast<std::size_t>(h)];
    }
  }
  return y;
}

// Routes with `attrs` and runs moe_experts through the public API; returns y and the router ids.
std::pair<std::vector<float>, std::vector<std::int32_t>> run_experts(
    const Problem& p, const porta::moe::RouterAttrs& attrs, bool shared, bool shared_gated) {
  Graph g;
  auto x = g.input("x", {p.T, p.H}, DType::F32);
  auto logits = g.input("logits", {p.T, p.E}, DType::F32);
  const auto route = g.moe_router(logits, attrs);
  porta::MoeExpertWeights w;
  w.gate = g.weight("gate", Tensor::from_vector<float>({p.E, p.I, p.H}, p.gate));
  w.up = g.weight("up", Tensor::from_vector<float>({p.E, p.I, p.H}, p.up));
  w.down = g.weight("down", Tensor::from_vector<float>({p.E, p.H, p.I}, p.down));
  if (shared) {
    w.shared_gate = g.weight("s_gate", Tensor::from_vector<float>({p.Is, p.H}, p.s_gate));
    w.shared_up = g.weight("s_up", Tensor::from_vector<float>({p.Is, p.H}, p.s_up));
    w.shared_down = g.weight("s_down", Tensor::from_vector<float>({p.H, p.Is}, p.s_down));
    if (shared_gated)
      w.shared_gate_weight = g.weight("s_gate_w", Tensor::from_vector<float>({1, p.H}, p.s_gate_w));
  }
  g.output("y", g.moe_experts(x, route, w));
  g.output("ids", route.ids);
  auto exe = porta::compile(g);
  auto out = exe.run({{"x", Tensor::from_vector<float>({p.T, p.H}, p.x)},
                      {"logits", Tensor::from_vector<float>({p.T, p.E}, p.logits)}});
  return {porta_moe_test::floats(out.at("y")), porta_moe_test::ints(out.at("ids"))};
}

void check_close(const std::vector<float>& got, const std::vector<double>& expected) {
  REQUIRE(got.size() == expected.size());
  for (std::size_t i = 0; i < got.size(); ++i)
    CHECK(got[i] == Approx(expected[i]).epsilon(1e-4).margin(1e-5));
}

}  // namespace

TEST_CASE("moe_experts matches a dense per-expert loop (Mixtral routing)", "[moe]") {
  const auto p = make_problem(/*T=*/7, /*H=*/8, /*I=*/6, /*E=*/4, /*K=*/2, /*Is=*/0, 11);
  const auto expected_routing = softmax_routing(p, /*renormalize=*/true);
  const auto [y, ids] = run_experts(p, porta::moe::mixtral(4, 2), false, false);
  CHECK(std::vector<int>(ids.begin(), ids.end()) == expected_routing.ids);
  check_close(y, dense_reference(p, expected_routing, false, false));
}

TEST_CASE("moe_experts with block padding and a sigmoid-gated shared expert", "[moe]") {
  const auto p = make_problem(/*T=*/9, /*H=*/6, /*I=*/5, /*E=*/6, /*K=*/3, /*Is=*/7, 23);
  auto attrs = porta::moe::qwen2_moe(6, 3);
  attrs.block_size = 4;
  const auto expected_routing = softmax_routing(p, /*renormalize=*/false);
  SECTION("gated (Qwen2-MoE)") {
    const auto [y, ids] = run_experts(p, attrs, true, true);
    CHECK(std::vector<int>(ids.begin(), ids.end()) == expected_routing.ids);
    check_close(y, dense_reference(p, expected_routing, true, true));
  }
  SECTION("ungated") {
    const auto [y, ids] = run_experts(p, attrs, true, false);
    check_close(y, dense_reference(p, expected_routing, true, false));
  }
}

TEST_CASE("moe_experts leaves tokens dropped for capacity without routed output", "[moe]") {
  const auto p = make_problem(/*T=*/12, /*H=*/4, /*I=*/3, /*E=*/3, /*K=*/1, /*Is=*/0, 5);
  const auto expected_routing = softmax_routing(p, false, /*capacity_factor=*/1.0f);
  REQUIRE(std::count(expected_routing.ids.begin(), expected_routing.ids.end(), -1) > 0);
  const auto [y, ids] = run_experts(p, porta::moe::switch_capacity(1.0f, 3), false, false);
  CHECK(std::vector<int>(ids.begin(), ids.end()) == expected_routing.ids);
  check_close(y, dense_reference(p, expected_routing, false, false));
}

TEST_CASE("moe_experts with T = 0 tokens", "[moe]") {
  const auto p = make_problem(0, 4, 3, 4, 2, 0, 1);
  const auto [y, ids] = run_experts(p, porta::moe::mixtral(4, 2), false, false);
  CHECK(y.empty());
  CHECK(ids.empty());
}

}  // namespace moe_experts_tests
