// moe_router on the reference backend: the worked cases of docs/moe-router.md, each expectation
// derived independently (closed forms with std::exp, or by hand from the spec's rules).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include <catch2/catch.hpp>

#include "moe/moe_test_support.hpp"

namespace moe_router_spec_cases_tests {

using namespace porta_moe_test;
using porta::moe::GroupScore;
using porta::moe::Score;

TEST_CASE("moe router case 1: sigmoid, group-limited, renormalized and scaled", "[moe]") {
  const std::vector<float> logits{3, -4, 1, 1, .5f, .4f, -1, -2};
  auto a = router(8, 2, Score::Sigmoid);
  a.num_groups = 4;
  a.topk_groups = 1;
  a.renormalize = true;
  a.scale = 2.5f;

  SECTION("top2_sum picks group 1 (sigmoid(1) twice beats sigmoid(3) + sigmoid(-4))") {
    a.group_score = GroupScore::Top2Sum;
    const auto r = run_router(logits, 1, a);
    CHECK(r.ids == std::vector<std::int32_t>{2, 3});
    CHECK(r.weights[0] == Approx(1.25));
    CHECK(r.weights[1] == Approx(1.25));
  }
  SECTION("max picks group 0") {
    a.group_score = GroupScore::Max;
    const auto r = run_router(logits, 1, a);
    CHECK(r.ids == std::vector<std::int32_t>{0, 1});
    const double s0 = sigmoid(3), s1 = sigmoid(-4);
    CHECK(r.weights[0] == Approx(2.5 * s0 / (s0 + s1)));
    CHECK(r.weights[1] == Approx(2.5 * s1 / (s0 + s1)));
    // The spec's rounded figures.
    CHECK(r.weights[0] == Approx(2.4537).margin(1e-4));
    CHECK(r.weights[1] == Approx(0.0463).margin(1e-4));
  }
}

TEST_CASE("moe router case 2: all-equal logits tie to the lowest indices", "[moe]") {
  auto a = router(8, 3, Score::Softmax);
  a.renormalize = true;
  const auto r = run_router(std::vector<float>(8, 0.7f), 1, a);
  CHECK(r.ids == std::vector<std::int32_t>{0, 1, 2});
  for (float w : r.weights) CHECK(w == Approx(1.0 / 3.0));
}

TEST_CASE("moe router case 3: K = 1 sigmoid with and without renormalize", "[moe]") {
  const std::vector<float> logits{0, 1, -1, .5f};
  auto a = router(4, 1, Score::Sigmoid);
  a.scale = 2.5f;
  SECTION("renormalized: the single weight becomes the scale") {
    a.renormalize = true;
    const auto r = run_router(logits, 1, a);
    CHECK(r.ids == std::vector<std::int32_t>{1});
    CHECK(r.weights[0] == Approx(2.5));
  }
  SECTION("not renormalized: scale times sigmoid(1)") {
    const auto r = run_router(logits, 1, a);
    CHECK(r.ids == std::vector<std::int32_t>{1});
    CHECK(r.weights[0] == Approx(2.5 * sigmoid(1)));
    CHECK(r.weights[0] == Approx(1.8276).margin(1e-4));
  }
}

TEST_CASE("moe router case 4: DeepSeek-V2-Lite softmax top-2, no renormalize", "[moe]") {
  const std::vector<float> logits{1, 2, 3, 0, -1, .5f};
  const auto r = run_router(logits, 1, porta::moe::deepseek_v2_lite(6, 2));
  double z = 0;
  for (float l : logits) z += std::exp(double{l});
  CHECK(r.ids == std::vector<std::int32_t>{2, 1});
  CHECK(r.weights[0] == Approx(std::exp(3.0) / z));
  CHECK(r.weights[1] == Approx(std::exp(2.0) / z));
  CHECK(r.weights[0] == Approx(0.6048).margin(1e-4));
  CHECK(r.weights[1] == Approx(0.2225).margin(1e-4));

  SECTION("bf16 logits (exactly representable) route identically") {
    const auto b =
        run_router(logits, 1, porta::moe::deepseek_v2_lite(6, 2), {}, porta::DType::BF16);
    CHECK(b.ids == r.ids);
    CHECK(b.weights == r.weights);
  }
}

TEST_CASE("moe router case 5: Mixtral equals softmax over the top-k logits", "[moe]") {
  constexpr std::int64_t T = 6, E = 8, K = 2;
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> dist(-3.0f, 3.0f);
  std::vector<float> logits(T * E);
  for (auto& v : logits) v = dist(rng);
  const auto r = run_router(logits, T, porta::moe::mixtral(E, K));
  for (std::int64_t t = 0; t < T; ++t) {
    std::vector<int> order(E);
    std::iota(order.begin(), order.end(), 0);
    const float* row = &logits[static_cast<std::size_t>(t * E)];
    std::sort(order.begin(), order.end(), [&](int x, int y) { return row[x] > row[y]; });
    const double z = std::exp(double{row[order[0]]}) + std::exp(double{row[order[1]]});
    for (int k = 0; k < K; ++k) {
      const auto a = static_cast<std::size_t>(t * K + k);
      CHECK(r.ids[a] == order[static_cast<std::size_t>(k)]);
      CHECK(r.weights[a] == Approx(std::exp(double{row[order[static_cast<std::size_t>(k)]]}) / z));
    }
  }
}

namespace {
// Logits whose top-3 (in this order) are the spec's case 6 ids [[2,3,4],[1,2,4],[1,3,4],[1,2,3]].
const std::vector<float> kCase6Logits{-5, -5, 3,  2,  1,  //
                                      -5, 3,  2,  -5, 1,  //
                                      -5, 3,  -5, 2,  1,  //
                                      -5, 3,  2,  1,  -5};
}  // namespace

TEST_CASE("moe router case 6: counts, offsets, perm and inv", "[moe]") {
  const auto r = run_router(kCase6Logits, 4, router(5, 3, Score::Identity));
  CHECK(r.ids == std::vector<std::int32_t>{2, 3, 4, 1, 2, 4, 1, 3, 4, 1, 2, 3});
  CHECK(r.counts == std::vector<std::int32_t>{0, 3, 3, 3, 3});
  CHECK(r.offsets == std::vector<std::int32_t>{0, 0, 3, 6, 9, 12});
  const std::vector<std::int32_t> perm{3, 6, 9, 0, 4, 10, 1, 7, 11, 2, 5, 8};
  CHECK(r.perm == perm);
  std::vector<std::int32_t> inv(12);
  for (std::int32_t i = 0; i < 12; ++i)
    inv[static_cast<std::size_t>(perm[static_cast<std::size_t>(i)])] = i;
  CHECK(r.inv == inv);
  CHECK(r.dropped == std::vector<std::int32_t>(5, 0));
  CHECK(r.nonfinite == std::vector<std::int32_t>(4, 0));
}

TEST_CASE("moe router block padding pads each expert's block with the sentinel", "[moe]") {
  auto a = router(5, 3, Score::Identity);
  a.block_size = 4;
  const auto r = run_router(kCase6Logits, 4, a);
  constexpr std::int32_t S = 12;  // T·K
  CHECK(r.counts == std::vector<std::int32_t>{0, 3, 3, 3, 3});
  CHECK(r.offsets == std::vector<std::int32_t>{0, 0, 4, 8, 12, 16});
  // P = T·K + E·(block - 1) = 12 + 15 = 27; slots past offsets[E] = 16 hold the sentinel too.
  std::vector<std::int32_t> perm{3, 6, 9, S, 0, 4, 10, S, 1, 7, 11, S, 2, 5, 8, S};
  perm.resize(27, S);
  CHECK(r.perm == perm);
  std::vector<std::int32_t> inv(12);
  for (std::int32_t i = 0; i < 16; ++i)
    if (perm[static_cast<std::size_t>(i)] != S)
      inv[static_cast<std::size_t>(perm[static_cast<std::size_t>(i)])] = i;
  CHECK(r.inv == inv);
}

TEST_CASE("moe router perm is stably sorted by expert on random routing", "[moe]") {
  constexpr std::int64_t T = 9, E = 6, K = 3;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  std::vector<float> logits(T * E);
  for (auto& v : logits) v = dist(rng);
  const auto r = run_router(logits, T, porta::moe::qwen2_moe(E, K));
  REQUIRE(r.offsets.front() == 0);
  REQUIRE(r.offsets.back() == T * K);
  for (std::int32_t e = 0; e < E; ++e) {
    std::vector<std::int32_t> expected;  // assignments of e in ascending order
    for (std::int32_t a = 0; a < T * K; ++a)
      if (r.ids[static_cast<std::size_t>(a)] == e) expected.push_back(a);
    const std::vector<std::int32_t> block(
        r.perm.begin() + r.offsets[static_cast<std::size_t>(e)],
        r.perm.begin() + r.offsets[static_cast<std::size_t>(e) + 1]);
    CHECK(block == expected);
    CHECK(r.counts[static_cast<std::size_t>(e)] == static_cast<std::int32_t>(expected.size()));
  }
  for (std::int32_t a = 0; a < T * K; ++a)
    CHECK(r.perm[static_cast<std::size_t>(r.inv[static_cast<std::size_t>(a)])] == a);
}

TEST_CASE("moe router with the deepseek_v3 preset routes on biased, group-limited scores",
          "[moe]") {
  // E = 16 in 8 groups of 2. s = sigmoid(0) = 0.5 everywhere, so c = 0.5 + bias:
  //   [.6 .7 | .5 .5 | .8 .4 | .3 .55 | .75 .75 | .2 .2 | .5 .65 | 0 .95]
  // Top-2 sums 1.3, 1.0, 1.2, .85, 1.5, .4, 1.15, .95 keep groups 4, 0, 2, 6, which drops
  // expert 15 (the best single c, .95). Best three left: 4 (.8), then 8 and 9 (.75, tied).
  // Weights: 0.5 each (the bias never enters them), renormalized to 1/3 and scaled by 2.5.
  const std::vector<float> bias{0.1f,  0.2f,  0.0f,  0.0f,  0.3f, -0.1f, -0.2f, 0.05f,
                                0.25f, 0.25f, -0.3f, -0.3f, 0.0f, 0.15f, -0.5f, 0.45f};
  const auto r = run_router(std::vector<float>(16, 0.0f), 1, porta::moe::deepseek_v3(16, 3), bias);
  CHECK(r.ids == std::vector<std::int32_t>{4, 8, 9});
  for (float w : r.weights) CHECK(w == Approx(2.5 / 3.0));
  std::vector<std::int32_t> counts(16, 0);
  counts[4] = counts[8] = counts[9] = 1;
  CHECK(r.counts == counts);
  CHECK(r.mean_score == std::vector<float>(16, 0.5f));
}

}  // namespace moe_router_spec_cases_tests
