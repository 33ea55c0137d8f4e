// Load statistics, the aux-loss-free bias update and the EPLB-style placement plan, on loads
// whose answers are worked out by hand; and the bias update closing the loop with the router.
#include <numeric>
#include <random>

#include <catch2/catch.hpp>

#include <porta/moe_balance.hpp>

#include "moe/moe_test_support.hpp"
#include "core/error_check.hpp"

namespace moe_balance_tests {

namespace moe = porta::moe;
using porta::ErrorCode;
using porta::Tensor;

TEST_CASE("moe load_stats: imbalance, spread, hottest and idle experts", "[moe]") {
  const std::vector<std::int64_t> load{6, 2, 0, 4};  // total 12, mean 3
  const auto s = moe::load_stats(load);
  CHECK(s.total == 12);
  CHECK(s.mean == 3.0);
  CHECK(s.max == 6);
  CHECK(s.min == 0);
  CHECK(s.hottest == 0);
  CHECK(s.coldest == 2);
  CHECK(s.imbalance == 2.0);  // 6 / 3
  CHECK(s.idle == 1);
  // Deviations 3, -1, -3, 1: variance 20 / 4 = 5.
  CHECK(s.cv == Approx(std::sqrt(5.0) / 3.0));

  SECTION("ties pick the lowest index; perfect balance is imbalance 1, cv 0") {
    const auto even = moe::load_stats(std::vector<std::int64_t>{5, 5, 5});
    CHECK(even.imbalance == 1.0);
    CHECK(even.cv == 0.0);
    CHECK(even.hottest == 0);
    CHECK(even.coldest == 0);
  }
  SECTION("no load at all") {
    const auto idle = moe::load_stats(std::vector<std::int64_t>{0, 0});
    CHECK(idle.imbalance == 0.0);
    CHECK(idle.idle == 2);
  }
  SECTION("from the router's i32 expert_counts tensor") {
    const auto t = moe::load_stats(Tensor::from_vector<std::int32_t>({4}, {6, 2, 0, 4}));
    CHECK(t.load == load);
    CHECK(t.imbalance == 2.0);
  }
  SECTION("bad loads are errors") {
    REQUIRE_PORTA_ERROR(moe::load_stats(std::vector<std::int64_t>{1, -2}),
                        ErrorCode::InvalidArgument, "load[1] = -2");
    REQUIRE_PORTA_ERROR(moe::load_stats(std::vector<std::int64_t>{}), ErrorCode::InvalidArgument,
                        "zero experts");
    REQUIRE_PORTA_ERROR(moe::load_stats(Tensor::zeros({4}, porta::DType::F32)),
                        ErrorCode::DTypeMismatch, "i32 or i64");
    REQUIRE_PORTA_ERROR(moe::load_stats(Tensor::zeros({2, 2}, porta::DType::I32)),
                        ErrorCode::ShapeMismatch, "1-D");
  }
}

TEST_CASE("moe LoadTracker sums counts over batches", "[moe]") {
  moe::LoadTracker tracker(3);
  tracker.add(std::vector<std::int64_t>{1, 2, 3});
  tracker.add(Tensor::from_vector<std::int32_t>({3}, {3, 2, 1}));
  CHECK(tracker.batches() == 2);
  CHECK(tracker.stats().load == std::vector<std::int64_t>{4, 4, 4});
  CHECK(tracker.stats().imbalance == 1.0);
  REQUIRE_PORTA_ERROR(tracker.add(std::vector<std::int64_t>{1, 2}), ErrorCode::ShapeMismatch,
                      "3 experts");
  tracker.reset();
  CHECK(tracker.batches() == 0);
  CHECK(tracker.stats().total == 0);
}

TEST_CASE("moe update_bias: b_i += gamma * sign(mean - load_i)", "[moe]") {
  std::vector<float> bias{0.0f, 0.5f, -0.25f, 1.0f};
  // Loads 6, 3, 0, 3: mean 3. Expert 0 is over (-gamma), 2 under (+gamma), 1 and 3 exactly at
  // the mean (sign 0: unchanged).
  moe::update_bias(bias, std::vector<std::int64_t>{6, 3, 0, 3}, 0.125f);
  CHECK(bias == std::vector<float>{-0.125f, 0.5f, -0.125f, 1.0f});

  SECTION("on tensors, in place") {
    Tensor b = Tensor::from_vector<float>({2}, {0.0f, 0.0f});
    moe::update_bias(b, Tensor::from_vector<std::int32_t>({2}, {1, 4}), 0.001f);
    CHECK(b.to_f32() == std::vector<float>{0.001f, -0.001f});
  }
  SECTION("mismatched lengths and non-finite gamma are errors") {
    REQUIRE_PORTA_ERROR(moe::update_bias(bias, std::vector<std::int64_t>{1, 2}, 0.1f),
                        ErrorCode::ShapeMismatch, "4 entries", "2 experts");
    REQUIRE_PORTA_ERROR(moe::update_bias(bias, std::vector<std::int64_t>{1, 2, 3, 4}, NAN),
                        ErrorCode::InvalidArgument, "gamma");
  }
}

TEST_CASE("moe update_bias closes the loop: the router's load evens out", "[moe]") {
  // Logits skewed towards low expert indices; DeepSeek-V3-style sigmoid routing with a bias.
  constexpr std::int64_t T = 64, E = 8, K = 2;
  std::mt19937 rng(99);
  std::normal_distribution<float> noise(0.0f, 0.5f);
  std::vector<float> logits(static_cast<std::size_t>(T * E));
  for (std::int64_t t = 0; t < T; ++t)
    for (std::int64_t e = 0; e < E; ++e)
      logits[static_cast<std::size_t>(t * E + e)] = -0.3f * static_cast<float>(e) + noise(rng);
  auto attrs = porta_moe_test::router(E, K, moe::Score::Sigmoid);
  attrs.use_bias = true;
  std::vector<float> bias(E, 0.0f);
  const auto load_of = [&] {
    const auto r = porta_moe_test::run_router(logits, T, attrs, bias);
    return std::vector<std::int64_t>(r.counts.begin(), r.counts.end());
  };
  const double before = moe::load_stats(load_of()).imbalance;
  for (int step = 0; step < 80; ++step) moe::update_bias(bias, load_of(), 0.02f);
  const double after = moe::load_stats(load_of()).imbalance;
  INFO("imbalance before " << before << ", after " << after);
  // Sign updates of a fixed gamma keep oscillating around balance, so the check is that the load
  // got much more even, not perfectly even.
  CHECK(before > 2.5);
  CHECK(after < 1.5);
  CHECK(after < before / 2);
}

TEST_CASE("moe plan_expert_placement replicates hot experts and balances devices", "[moe]") {
  // 4 experts on 2 devices of 3 slots: 2 spare slots. Loads 90, 30, 20, 10. The first spare
  // goes to expert 0 (90 / 1). 90 / 2 = 45 is still the most, but a device holds an expert once,
  // so on 2 devices expert 0 has at most 2 replicas: the second spare goes to expert 1 (30).
  const auto p = moe::plan_expert_placement(std::vector<std::int64_t>{90, 30, 20, 10}, 2, 3);
  CHECK(p.replicas == std::vector<std::int64_t>{2, 2, 1, 1});
  // Replicas 45 (0), 45 (0), 20 (2), 15 (1), 15 (1), 10 (3), heaviest first, each onto the
  // lightest device with a free slot that does not hold the expert (ties: the lower device):
  // 45 -> d0, 45 -> d1, 20 -> d0, 15 -> d1, 15 -> d0 (d1 holds 1), 10 -> d1 (d0 is full).
  REQUIRE(p.device_experts.size() == 2);
  CHECK(p.device_experts[0] == std::vector<std::int64_t>{0, 2, 1});
  CHECK(p.device_experts[1] == std::vector<std::int64_t>{0, 1, 3});
  CHECK(p.device_load == std::vector<double>{80.0, 70.0});
  CHECK(p.imbalance == Approx(80.0 / 75.0));

  SECTION("no replicas to spare: one expert per slot") {
    const auto q = moe::plan_expert_placement(std::vector<std::int64_t>{5, 1, 1, 5}, 2, 2);
    CHECK(q.replicas == std::vector<std::int64_t>{1, 1, 1, 1});
    CHECK(q.device_load == std::vector<double>{6.0, 6.0});  // {0, 1} and {3, 2}
    CHECK(q.imbalance == 1.0);
  }
  SECTION("too few slots is an error") {
    REQUIRE_PORTA_ERROR(moe::plan_expert_placement(std::vector<std::int64_t>{1, 1, 1}, 1, 2),
                        ErrorCode::InvalidArgument, "cannot hold 3 experts");
  }
}

}  // namespace moe_balance_tests
