// Each router preset routing a hand-checked case: the ids and weights follow from the preset's
// row of the spec's table, worked out by hand in the comments (closed forms with std::exp).
#include <cmath>

#include <catch2/catch.hpp>

#include "moe/moe_test_support.hpp"

namespace moe_presets_routing_tests {

using namespace porta_moe_test;
namespace moe = porta::moe;

namespace {
double exp_sum(const std::vector<float>& logits) {
  double z = 0;
  for (float l : logits) z += std::exp(double{l});
  return z;
}
}  // namespace

TEST_CASE("moe preset deepseek_v2: 3 of 8 groups by their max, then top-k, scale 16", "[moe]") {
  // 16 experts in groups of 2. Group maxima: g0 5, g2 4, g3 3.5, g6 4.5, the rest 0: the kept
  // groups are 0, 6, 2, so of {0: 5, 1: 1, 12: 4.5, 13: -1, 4: 4, 5: 3} the best four are
  // 0, 12, 4, 5. (Expert 6 with 3.5 would be fourth without group limiting.)
  const std::vector<float> logits{5, 1, 0, 0, 4, 3, 3.5f, 3.4f, 0, 0, 0, 0, 4.5f, -1, 0, 0};
  const auto r = run_router(logits, 1, moe::deepseek_v2(16, 4));
  CHECK(r.ids == std::vector<std::int32_t>{0, 12, 4, 5});
  const double z = exp_sum(logits);  // softmax over all 16, not renormalized
  CHECK(r.weights[0] == Approx(16 * std::exp(5.0) / z));
  CHECK(r.weights[1] == Approx(16 * std::exp(4.5) / z));
  CHECK(r.weights[2] == Approx(16 * std::exp(4.0) / z));
  CHECK(r.weights[3] == Approx(16 * std::exp(3.0) / z));
}

TEST_CASE("moe preset deepseek_v2_lite: softmax top-k over all experts, no renormalize", "[moe]") {
  // softmax of ln [1, 3, 2, 2] is [1, 3, 2, 2] / 8; top 2 is expert 1, then 2 (tie with 3).
  const std::vector<float> logits{0, std::log(3.0f), std::log(2.0f), std::log(2.0f)};
  const auto r = run_router(logits, 1, moe::deepseek_v2_lite(4, 2));
  CHECK(r.ids == std::vector<std::int32_t>{1, 2});
  CHECK(r.weights[0] == Approx(3.0 / 8));
  CHECK(r.weights[1] == Approx(2.0 / 8));
}

TEST_CASE("moe preset deepseek_v3: sigmoid, top2_sum groups, bias for selection only", "[moe]") {
  // 16 experts in 8 groups of 2, keeping 4 groups, top 4. All logits 0 except expert 0 (logit 2)
  // and expert 15 (logit 1): s = sigmoid(l). Bias makes expert 3 the best single choice, but group
  // 1 sums to 0.5 + 0.5 + 0.6 = 1.6, group 0 to sigmoid(2) + 0.5 = 1.38, group 7 to 0.5 +
  // sigmoid(1) = 1.23, others 1.0: the four kept groups are 1, 0, 7 and 2 (the lowest of the tied
  // ones).
  std::vector<float> logits(16, 0.0f);
  logits[0] = 2;
  logits[15] = 1;
  std::vector<float> bias(16, 0.0f);
  bias[3] = 0.6f;
  const auto r = run_router(logits, 1, moe::deepseek_v3(16, 4), bias);
  // c = s + bias: 3 (1.1), 0 (0.88), 15 (0.73), then 1, 2, 4, 5, 14 tie at 0.5: the lowest is 1.
  CHECK(r.ids == std::vector<std::int32_t>{3, 0, 15, 1});
  const double s0 = sigmoid(2), s15 = sigmoid(1), total = 0.5 + s0 + s15 + 0.5;
  CHECK(r.weights[0] == Approx(2.5 * 0.5 / total));  // the bias never enters the weights
  CHECK(r.weights[1] == Approx(2.5 * s0 / total));
  CHECK(r.weights[2] == Approx(2.5 * s15 / total));
  CHECK(r.weights[3] == Approx(2.5 * 0.5 / total));
}

TEST_CASE("moe presets mixtral and qwen3_moe renormalize the top-k softmax", "[moe]") {
  // ln [1, 3, 2, 0.5]: top 2 are experts 1 and 2, renormalized to 3/5 and 2/5.
  const std::vector<float> logits{0, std::log(3.0f), std::log(2.0f), std::log(0.5f)};
  for (const auto& a : {moe::mixtral(4, 2), moe::qwen3_moe(4, 2)}) {
    const auto r = run_router(logits, 1, a);
    CHECK(r.ids == std::vector<std::int32_t>{1, 2});
    CHECK(r.weights[0] == Approx(0.6));
    CHECK(r.weights[1] == Approx(0.4));
  }
}

TEST_CASE("moe presets qwen2_moe and olmoe keep the full-softmax weights", "[moe]") {
  // ln [1, 1, 1, 1, 1, 1, 1, 9]: softmax is [1, ..., 1, 9] / 16; top 3 are 7, then 0 and 1.
  std::vector<float> logits(8, 0.0f);
  logits[7] = std::log(9.0f);
  for (const auto& a : {moe::qwen2_moe(8, 3), moe::olmoe(8, 3)}) {
    const auto r = run_router(logits, 1, a);
    CHECK(r.ids == std::vector<std::int32_t>{7, 0, 1});
    CHECK(r.weights[0] == Approx(9.0 / 16));
    CHECK(r.weights[1] == Approx(1.0 / 16));
    CHECK(r.weights[2] == Approx(1.0 / 16));
  }
}

TEST_CASE("moe preset switch_capacity: top-1 softmax with capacity dropping", "[moe]") {
  // E = 4, T = 6, factor 1.5: C = ceil(1.5 · 6 / 4) = 3. Tokens 0..4 prefer expert 2, token 5
  // expert 0: tokens 3 and 4 are dropped.
  std::vector<float> logits;
  for (int t = 0; t < 5; ++t) logits.insert(logits.end(), {0, 0, 1, 0});
  logits.insert(logits.end(), {1, 0, 0, 0});
  const auto r = run_router(logits, 6, moe::switch_capacity(1.5f, 4));
  CHECK(r.ids == std::vector<std::int32_t>{2, 2, 2, -1, -1, 0});
  const double w = std::exp(1.0) / (std::exp(1.0) + 3);
  CHECK(r.weights[0] == Approx(w));
  CHECK(r.weights[3] == 0.0f);
  CHECK(r.weights[5] == Approx(w));
  CHECK(r.counts == std::vector<std::int32_t>{1, 0, 3, 0});
  CHECK(r.dropped == std::vector<std::int32_t>{0, 0, 2, 0});
}

}  // namespace moe_presets_routing_tests
