// moe_router edge cases on the reference backend: empty batches, NaN rows, ties, the -inf (not 0)
// group masking, capacity dropping, the selection bias and every score function (the valid mask,
// hash and expert-choice modes are in router_modes_tests.cpp). Expectations are worked out by hand
// from docs/moe-router.md.
#include <cmath>
#include <limits>

#include <catch2/catch.hpp>

#include "moe/moe_test_support.hpp"

namespace moe_router_edge_cases_tests {

using namespace porta_moe_test;
using porta::moe::GroupScore;
using porta::moe::Score;
using porta::moe::SelectOn;

namespace {
const float kNaN = std::numeric_limits<float>::quiet_NaN();
}

TEST_CASE("moe router with T = 0 tokens", "[moe]") {
  auto a = porta::moe::deepseek_v3(16, 4);
  a.block_size = 3;
  const auto r = run_router({}, 0, a, std::vector<float>(16, 0.0f));
  CHECK(r.ids.empty());
  CHECK(r.weights.empty());
  CHECK(r.inv.empty());
  CHECK(r.nonfinite.empty());
  CHECK(r.counts == std::vector<std::int32_t>(16, 0));
  CHECK(r.dropped == std::vector<std::int32_t>(16, 0));
  CHECK(r.offsets == std::vector<std::int32_t>(17, 0));
  CHECK(r.mean_score == std::vector<float>(16, 0.0f));
  // P = 0 + E·(3 - 1) padding slots, all holding the sentinel T·K = 0.
  CHECK(r.perm == std::vector<std::int32_t>(32, 0));
}

TEST_CASE("moe router NaN rows raise nonfinite and still give valid distinct ids", "[moe]") {
  SECTION("sigmoid: the NaN expert ranks last") {
    const std::vector<float> logits{1, kNaN, 3, 2,  //
                                    0, 1,    2, 3};
    const auto r = run_router(logits, 2, router(4, 2, Score::Sigmoid));
    CHECK(r.nonfinite == std::vector<std::int32_t>{1, 0});
    CHECK(r.ids == std::vector<std::int32_t>{2, 3, 3, 2});
    CHECK(r.weights[0] == Approx(sigmoid(3)));
    CHECK(r.weights[1] == Approx(sigmoid(2)));
  }
  SECTION("softmax: a NaN poisons the whole row; ids are the lowest indices, all distinct") {
    const std::vector<float> logits{1, 2, kNaN, 4};
    const auto r = run_router(logits, 1, router(4, 4, Score::Softmax));
    CHECK(r.nonfinite == std::vector<std::int32_t>{1});
    CHECK(r.ids == std::vector<std::int32_t>{0, 1, 2, 3});
    CHECK(r.counts == std::vector<std::int32_t>{1, 1, 1, 1});
  }
  SECTION("NaN in a group-limited row") {
    auto a = router(4, 2, Score::Identity);
    a.num_groups = 2;
    a.topk_groups = 1;
    const auto r = run_router({kNaN, kNaN, 1, kNaN}, 1, a);
    CHECK(r.nonfinite == std::vector<std::int32_t>{1});
    // Group 1 (max 1) beats group 0 (max -inf, NaN ranking as -inf). Expert 2 comes first;
    // every other expert is -inf (masked or NaN) and they tie by index, so 0 comes second.
    CHECK(r.ids[0] == 2);
    CHECK(r.ids[1] == 0);
  }
}

TEST_CASE("moe router ties go to the lower expert index", "[moe]") {
  const auto r = run_router({1, 2, 2, 1, 0}, 1, router(5, 3, Score::Identity));
  CHECK(r.ids == std::vector<std::int32_t>{1, 2, 0});
  CHECK(r.weights == std::vector<float>{2, 2, 1});

  SECTION("tied groups keep the lower group index") {
    auto a = router(6, 2, Score::Identity);
    a.num_groups = 3;
    a.topk_groups = 1;
    const auto g = run_router({0, 1, 5, -9, 5, -9}, 1, a);  // groups {0,1} {2,3} {4,5}
    CHECK(g.ids == std::vector<std::int32_t>{2, 3});
  }
}

TEST_CASE("moe router masks dropped groups with -inf, not 0", "[moe]") {
  SECTION("negative identity scores") {
    auto a = router(4, 2, Score::Identity);
    a.num_groups = 2;
    a.topk_groups = 1;
    a.group_score = GroupScore::Max;
    // Group 0 {-5, -1} beats group 1 {-2, -3}. Zero-masking would pick experts 2 and 3.
    const auto r = run_router({-5, -1, -2, -3}, 1, a);
    CHECK(r.ids == std::vector<std::int32_t>{1, 0});
    CHECK(r.weights == std::vector<float>{-1, -5});
  }
  SECTION("sigmoid scores with a negative selection bias (DeepSeek-V3 style)") {
    auto a = router(4, 2, Score::Sigmoid);
    a.num_groups = 2;
    a.topk_groups = 1;
    a.group_score = GroupScore::Top2Sum;
    a.renormalize = true;
    a.use_bias = true;
    // s = 0.5 everywhere; c = [-.5, -.3, -.4, -.45]: group 0 sums to -.8, group 1 to -.85.
    const auto r = run_router({0, 0, 0, 0}, 1, a, {-1.0f, -0.8f, -0.9f, -0.95f});
    CHECK(r.ids == std::vector<std::int32_t>{1, 0});
    // Weights come from s, not from the biased c.
    CHECK(r.weights[0] == Approx(0.5));
    CHECK(r.weights[1] == Approx(0.5));
  }
}

TEST_CASE("moe router bias changes which experts, never the weights", "[moe]") {
  auto a = router(4, 2, Score::Sigmoid);
  a.renormalize = true;
  a.use_bias = true;
  const auto r = run_router({2, 1, 0, -1}, 1, a, {0, 0, 0, 10});
  CHECK(r.ids == std::vector<std::int32_t>{3, 0});
  const double s3 = sigmoid(-1), s0 = sigmoid(2);
  CHECK(r.weights[0] == Approx(s3 / (s3 + s0)));
  CHECK(r.weights[1] == Approx(s0 / (s3 + s0)));
}

TEST_CASE("moe router select_on logit weighs by sigmoid of the logits", "[moe]") {
  auto a = router(3, 2, Score::Softmax);
  a.select_on = SelectOn::Logit;
  const auto r = run_router({1, 3, 2}, 1, a);
  CHECK(r.ids == std::vector<std::int32_t>{1, 2});
  CHECK(r.weights[0] == Approx(sigmoid(3)));
  CHECK(r.weights[1] == Approx(sigmoid(2)));

  SECTION("with a bias that overrides the ranking") {
    a.use_bias = true;
    const auto b = run_router({1, 3, 2}, 1, a, {5, 0, 0});
    CHECK(b.ids == std::vector<std::int32_t>{0, 1});
    CHECK(b.weights[0] == Approx(sigmoid(1)));
    CHECK(b.weights[1] == Approx(sigmoid(3)));
  }
}

TEST_CASE("moe router sqrt_softplus score is stable for large logits", "[moe]") {
  const auto r = run_router({-30, 0, 100, 2}, 1, router(4, 2, Score::SqrtSoftplus));
  CHECK(r.ids == std::vector<std::int32_t>{2, 3});
  CHECK(r.weights[0] == Approx(10.0));  // sqrt(log(1 + e^100)) = sqrt(100) to f32 precision
  CHECK(r.weights[1] == Approx(std::sqrt(std::log(1.0 + std::exp(2.0)))));
  CHECK(r.mean_score[1] == Approx(std::sqrt(std::log(2.0))));
  CHECK(r.mean_score[0] == Approx(std::sqrt(std::exp(-30.0))).epsilon(1e-4));
}

TEST_CASE("moe router mean_score averages each expert's score over the rows", "[moe]") {
  const auto r = run_router({0, 1, 2, -1}, 2, router(2, 1, Score::Sigmoid));
  CHECK(r.mean_score[0] == Approx((0.5 + sigmoid(2)) / 2));
  CHECK(r.mean_score[1] == Approx((sigmoid(1) + sigmoid(-1)) / 2));  // = 0.5
  CHECK(r.ids == std::vector<std::int32_t>{1, 0});
}

TEST_CASE("moe router capacity drops assignments in token order", "[moe]") {
  SECTION("Switch, K = 1: C = ceil(1.0 · 4 / 2) = 2") {
    // Tokens 0, 1, 3 prefer expert 0, token 2 expert 1: token 3 finds expert 0 full.
    const std::vector<float> logits{2, 0, 1, 0, 0, 3, 4, 1};
    const auto r = run_router(logits, 4, porta::moe::switch_capacity(1.0f, 2));
    CHECK(r.ids == std::vector<std::int32_t>{0, 0, 1, -1});
    CHECK(r.weights[0] == Approx(sigmoid(2)));  // softmax of two = sigmoid of the difference
    CHECK(r.weights[1] == Approx(sigmoid(1)));
    CHECK(r.weights[2] == Approx(sigmoid(3)));
    CHECK(r.weights[3] == 0.0f);  // dropped; the kept ones are not renormalized
    CHECK(r.counts == std::vector<std::int32_t>{2, 1});
    CHECK(r.dropped == std::vector<std::int32_t>{1, 0});
    CHECK(r.offsets == std::vector<std::int32_t>{0, 2, 3});
    CHECK(r.perm == std::vector<std::int32_t>{0, 1, 2, 4});  // the free slot holds T·K = 4
    CHECK(r.inv == std::vector<std::int32_t>{0, 1, 2, -1});
  }
  SECTION("K = 2: the walk is over a = t·K + k") {
    auto a = router(3, 2, Score::Identity);
    a.capacity_factor = 1.0f;                  // C = ceil(3 · 2 / 3) = 2
    const std::vector<float> logits{3, 2, 0,   //  ids [0, 1]
                                    2, 3, 0,   //  ids [1, 0]
                                    3, 0, 2};  //  ids [0, 2]: expert 0 is full by then
    const auto r = run_router(logits, 3, a);
    CHECK(r.ids == std::vector<std::int32_t>{0, 1, 1, 0, -1, 2});
    CHECK(r.weights == std::vector<float>{3, 2, 3, 2, 0, 2});
    CHECK(r.counts == std::vector<std::int32_t>{2, 2, 1});
    CHECK(r.dropped == std::vector<std::int32_t>{1, 0, 0});
    CHECK(r.offsets == std::vector<std::int32_t>{0, 2, 4, 5});
    CHECK(r.perm == std::vector<std::int32_t>{0, 3, 1, 2, 5, 6});
    CHECK(r.inv == std::vector<std::int32_t>{0, 2, 3, 1, -1, 4});
  }
  SECTION("C rounds up: ceil(1.25 · 8 / 4) = 3, with block padding") {
    auto a = porta::moe::switch_capacity(1.25f, 4);
    a.block_size = 2;
    const auto r = run_router({5, 0, 0, 0, 5, 0, 0, 0, 5, 0, 0, 0, 5, 0, 0, 0,
                               5, 0, 0, 0, 0, 5, 0, 0, 0, 5, 0, 0, 0, 0, 5, 0},
                              8, a);
    CHECK(r.ids == std::vector<std::int32_t>{0, 0, 0, -1, -1, 1, 1, 2});
    CHECK(r.counts == std::vector<std::int32_t>{3, 2, 1, 0});
    CHECK(r.dropped == std::vector<std::int32_t>{2, 0, 0, 0});
    CHECK(r.offsets == std::vector<std::int32_t>{0, 4, 6, 8, 8});
    constexpr std::int32_t S = 8;
    CHECK(r.perm == std::vector<std::int32_t>{0, 1, 2, S, 5, 6, 7, S, S, S, S, S});
    CHECK(r.inv == std::vector<std::int32_t>{0, 1, 2, -1, -1, 4, 5, 6});
  }
  SECTION("a factor of 1.1 gives 1.1 · 20 / 2 = 11 slots, not 12") {
    std::vector<float> logits;
    for (int t = 0; t < 20; ++t) logits.insert(logits.end(), {1.0f, 0.0f});
    const auto r = run_router(logits, 20, porta::moe::switch_capacity(1.1f, 2));
    CHECK(r.counts == std::vector<std::int32_t>{11, 0});
    CHECK(r.dropped == std::vector<std::int32_t>{9, 0});
  }
}

}  // namespace moe_router_edge_cases_tests
