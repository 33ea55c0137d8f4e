// A randomized comparison of moe_experts and of moe_permute -> grouped_matmul -> swiglu ->
// grouped_matmul -> moe_combine against a dense loop written here the way Hugging Face's
// modeling code computes an MoE block: route each token independently (softmax top-k, or each
// expert picking its best tokens), then for every expert, the tokens it got, through its SwiGLU
// MLP, scaled by the routing weight and summed. Random shapes and seeds, on every backend built.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include <catch2/catch.hpp>

#include "moe/moe_test_support.hpp"

namespace moe_experts_random_tests {

using porta::DType;
using porta::Graph;
using porta::Tensor;

namespace {

struct Case {
  std::int64_t T, H, I, E, K;
  bool renormalize, expert_choice;
};

std::vector<float> uniform(std::mt19937& rng, std::size_t n, float scale) {
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// The dense loop: weights[t][e] is token t's weight for expert e (0 when not routed).
std::vector<double> dense_moe(const Case& c, const std::vector<float>& x,
                              const std::vector<float>& gate, const std::vector<float>& up,
                              const std::vector<float>& down,
                              const std::vector<std::vector<double>>& weights) {
  std::vector<double> y(static_cast<std::size_t>(c.T * c.H), 0.0);
  for (std::int64_t e = 0; e < c.E; ++e)
    for (std::int64_t t = 0; t < c.T; ++t) {
      const double w = weights[static_cast<std::size_t>(t)][static_cast<std::size_t>(e)];
      if (w == 0.0) continue;
      std::vector<double> act(static_cast<std::size_t>(c.I));
      for (std::int64_t i = 0; i < c.I; ++i) {
        double g = 0, u = 0;
        for (std::int64_t h = 0; h < c.H; ++h) {
          const double xv = x[static_cast<std::size_t>(t * c.H + h)];
          g += double{gate[static_cast<std::size_t>((e * c.I + i) * c.H + h)]} * xv;
          u += double{up[static_cast<std::size_t>((e * c.I + i) * c.H + h)]} * xv;
        }
        act[static_cast<std::size_t>(i)] = g / (1.0 + std::exp(-g)) * u;
      }
      for (std::int64_t h = 0; h < c.H; ++h) {
        double o = 0;
        for (std::int64_t i = 0; i < c.I; ++i)
          o += double{down[static_cast<std::size_t>((e * c.H + h) * c.I + i)]} *
               act[static_cast<std::size_t>(i)];
        y[static_cast<std::size_t>(t * c.H + h)] += w * o;
      }
    }
  return y;
}

// Softmax top-k per token, or each expert's top-C tokens by softmax score, computed here.
std::vector<std::vector<double>> route(const Case& c, const std::vector<float>& logits) {
  std::vector<std::vector<double>> s(static_cast<std::size_t>(c.T),
                                     std::vector<double>(static_cast<std::size_t>(c.E)));
  for (std::int64_t t = 0; t < c.T; ++t) {
    double z = 0;
    for (std::int64_t e = 0; e < c.E; ++e)
      z += std::exp(double{logits[static_cast<std::size_t>(t * c.E + e)]});
    for (std::int64_t e = 0; e < c.E; ++e)
      s[static_cast<std::size_t>(t)][static_cast<std::size_t>(e)] =
          std::exp(double{logits[static_cast<std::size_t>(t * c.E + e)]}) / z;
  }
  std::vector<std::vector<double>> w(static_cast<std::size_t>(c.T),
                                     std::vector<double>(static_cast<std::size_t>(c.E), 0.0));
  if (c.expert_choice) {
    const auto capacity = std::min<std::int64_t>(
        c.T, static_cast<std::int64_t>(std::ceil(static_cast<double>(c.T * c.K) / c.E)));
    for (std::int64_t e = 0; e < c.E; ++e) {
      std::vector<std::int64_t> order(static_cast<std::size_t>(c.T));
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) {
        return s[static_cast<std::size_t>(a)][static_cast<std::size_t>(e)] >
               s[static_cast<std::size_t>(b)][static_cast<std::size_t>(e)];
      });
      for (std::int64_t i = 0; i < capacity; ++i)
        w[static_cast<std::size_t>(order[static_cast<std::size_t>(i)])]
         [static_cast<std::size_t>(e)] =
             s[static_cast<std::size_t>(order[static_cast<std::size_t>(i)])]
              [static_cast<std::size_t>(e)];
    }
  } else {
    for (std::int64_t t = 0; t < c.T; ++t) {
      const auto& row = s[static_cast<std::size_t>(t)];
      std::vector<std::int64_t> order(static_cast<std::size_t>(c.E));
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) {
        return row[static_cast<std::size_t>(a)] > row[static_cast<std::size_t>(b)];
      });
      double total = 0;
      for (std::int64_t k = 0; k < c.K; ++k)
        total += row[static_cast<std::size_t>(order[static_cast<std::size_t>(k)])];
      for (std::int64_t k = 0; k < c.K; ++k) {
        const auto e = static_cast<std::size_t>(order[static_cast<std::size_t>(k)]);
        w[static_cast<std::size_t>(t)][e] = c.renormalize ? row[e] / total : row[e];
      }
    }
  }
  return w;
}

}  // namespace

TEST_CASE("moe experts and the unfused ops match a dense per-expert loop on random problems",
          "[moe]") {
  std::vector<std::string> backends{"reference"};
  for (const auto& d : porta::list_devices())
    if (d.name == "cpu" && d.available) backends.push_back("cpu");
  std::mt19937 rng(31337);
  for (int trial = 0; trial < 8; ++trial) {
    std::uniform_int_distribution<std::int64_t> dim(1, 24);
    Case c{dim(rng), dim(rng) + 8,   dim(rng) + 4,  2 + dim(rng) % 7,
           1,        trial % 2 == 0, trial % 3 == 2};
    c.K = 1 +
          static_cast<std::int64_t>(rng() % static_cast<unsigned>(std::min<std::int64_t>(c.E, 4)));
    INFO("trial " << trial << ": T=" << c.T << " H=" << c.H << " I=" << c.I << " E=" << c.E
                  << " K=" << c.K << (c.expert_choice ? " expert choice" : " token choice"));
    const auto n = [](std::int64_t a, std::int64_t b, std::int64_t d = 1) {
      return static_cast<std::size_t>(a * b * d);
    };
    const auto x = uniform(rng, n(c.T, c.H), 1.0f), logits = uniform(rng, n(c.T, c.E), 2.0f);
    const auto gate = uniform(rng, n(c.E, c.I, c.H), 0.4f),
               up = uniform(rng, n(c.E, c.I, c.H), 0.4f),
               down = uniform(rng, n(c.E, c.H, c.I), 0.4f);
    const auto expected = dense_moe(c, x, gate, up, down, route(c, logits));

    Graph g;
    auto xv = g.input("x", {c.T, c.H}, DType::F32);
    auto attrs = porta::moe::deepseek_v2_lite(c.E, c.K);
    attrs.renormalize = c.renormalize && !c.expert_choice;
    if (c.expert_choice) attrs.mode = porta::moe::Mode::ExpertChoice;
    attrs.renorm_eps = 0;
    attrs.block_size = 1 + trial % 3;
    const auto r = g.moe_router(g.input("logits", {c.T, c.E}, DType::F32), attrs);
    porta::MoeExpertWeights w;
    w.gate = g.weight("gate", Tensor::from_vector<float>({c.E, c.I, c.H}, gate));
    w.up = g.weight("up", Tensor::from_vector<float>({c.E, c.I, c.H}, up));
    w.down = g.weight("down", Tensor::from_vector<float>({c.E, c.H, c.I}, down));
    g.output("fused", g.moe_experts(xv, r, w));
    const auto xp = g.moe_permute(xv, r);
    const auto act =
        g.swiglu(g.grouped_matmul(xp, w.gate, r.offsets), g.grouped_matmul(xp, w.up, r.offsets));
    g.output("unfused", g.moe_combine(g.grouped_matmul(act, w.down, r.offsets), r));
    const std::map<std::string, Tensor> inputs{
        {"x", Tensor::from_vector<float>({c.T, c.H}, x)},
        {"logits", Tensor::from_vector<float>({c.T, c.E}, logits)}};
    for (const auto& backend : backends) {
      INFO("backend " << backend);
      porta::CompileOptions options;
      options.backend = backend;
      const auto out = porta::compile(g, options).run(inputs);
      for (const char* name : {"fused", "unfused"}) {
        INFO(name);
        const auto got = porta_moe_test::floats(out.at(name));
        REQUIRE(got.size() == expected.size());
        for (std::size_t i = 0; i < got.size(); ++i)
          REQUIRE(got[i] == Approx(expected[i]).epsilon(2e-4).margin(2e-5));
      }
    }
  }
}

}  // namespace moe_experts_random_tests
