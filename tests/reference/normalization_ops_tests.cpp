// Reference softmax, rms_norm and layer_norm against closed forms.

#include <cmath>
#include <limits>
#include <optional>

#include "reference/ops_test_support.hpp"

namespace reference_normalization_ops_tests {

using namespace ops_test;

namespace {
const float kLn2 = static_cast<float>(std::log(2.0));
const float kLn3 = static_cast<float>(std::log(3.0));
}  // namespace

TEST_CASE("softmax of [0, ln2, ln3] is [1/6, 2/6, 3/6] along the last axis", "[ops][softmax]") {
  porta::Graph g;
  auto x = g.input("x", {2, 3}, porta::DType::F32);
  // The second row is shifted by 1000: only a max-subtracted softmax survives it.
  const auto out = run_single(
      g, g.softmax(x), {{"x", f32({2, 3}, {0, kLn2, kLn3, 1000, 1000 + kLn2, 1000 + kLn3})}});
  // 1000 + ln2 rounds in f32 (ulp 2^-14 near 1000), so the second row gets a looser tolerance.
  const auto v = out.to_f32();
  check_close({v[0], v[1], v[2]}, {1.0 / 6, 2.0 / 6, 3.0 / 6});
  check_close({v[3], v[4], v[5]}, {1.0 / 6, 2.0 / 6, 3.0 / 6}, 1e-4);
}

TEST_CASE("softmax along axis 0 and a middle axis", "[ops][softmax]") {
  SECTION("axis 0") {
    porta::Graph g;
    auto x = g.input("x", {3, 2}, porta::DType::F32);
    const auto out =
        run_single(g, g.softmax(x, 0), {{"x", f32({3, 2}, {0, kLn3, kLn2, kLn2, kLn3, 0})}});
    check_close(out.to_f32(), {1.0 / 6, 3.0 / 6, 2.0 / 6, 2.0 / 6, 3.0 / 6, 1.0 / 6});
  }
  SECTION("axis 1 of three") {
    porta::Graph g;
    auto x = g.input("x", {1, 3, 2}, porta::DType::F32);
    const auto out =
        run_single(g, g.softmax(x, 1), {{"x", f32({1, 3, 2}, {0, 5, kLn2, 5, kLn3, 5})}});
    check_close(out.to_f32(), {1.0 / 6, 1.0 / 3, 2.0 / 6, 1.0 / 3, 3.0 / 6, 1.0 / 3});
  }
}

TEST_CASE("softmax puts all mass on the finite entry next to -inf", "[ops][softmax]") {
  porta::Graph g;
  auto x = g.input("x", {3}, porta::DType::F32);
  const float inf = std::numeric_limits<float>::infinity();
  const auto out = run_single(g, g.softmax(x), {{"x", f32({3}, {-inf, 2, -inf})}});
  check_close(out.to_f32(), {0, 1, 0}, 0.0);
}

TEST_CASE("rms_norm of [3, 4] with eps 0 is [3, 4] / sqrt(12.5)", "[ops][norm]") {
  porta::Graph g;
  auto x = g.input("x", {2, 2}, porta::DType::F32);
  auto w = g.weight("w", f32({2}, {1.0f, 2.0f}));
  const auto out = run_single(g, g.rms_norm(x, w, 0.0f), {{"x", f32({2, 2}, {3, 4, -1, 1})}});
  const double r = std::sqrt(12.5);
  check_close(out.to_f32(), {3 / r, 2 * 4 / r, -1.0, 2.0});
}

TEST_CASE("rms_norm adds eps inside the square root", "[ops][norm]") {
  porta::Graph g;
  auto x = g.input("x", {1, 2}, porta::DType::F32);
  auto w = g.weight("w", f32({2}, {1.0f, 1.0f}));
  // mean(x²) = 0.5, + eps 0.5 = 1: the output is x unchanged.
  const auto out = run_single(g, g.rms_norm(x, w, 0.5f), {{"x", f32({1, 2}, {1, 0})}});
  check_close(out.to_f32(), {1.0, 0.0});
}

TEST_CASE("layer_norm uses the biased variance, weight and bias", "[ops][norm]") {
  SECTION("with bias") {
    porta::Graph g;
    auto x = g.input("x", {2, 3}, porta::DType::F32);
    auto w = g.weight("w", f32({3}, {2, 2, 2}));
    auto b = g.weight("b", f32({3}, {1, 1, 1}));
    // Row [1, 2, 3]: mean 2, biased variance 2/3, so (x - 2) / sqrt(2/3) = [-1.2247, 0, 1.2247].
    const auto out =
        run_single(g, g.layer_norm(x, w, b, 0.0f), {{"x", f32({2, 3}, {1, 2, 3, 10, 10, 13})}});
    const double s = 1.0 / std::sqrt(2.0 / 3.0);
    // Row [10, 10, 13]: mean 11, variance (1 + 1 + 4) / 3 = 2, deviations [-1, -1, 2] / sqrt 2.
    const double t = 1.0 / std::sqrt(2.0);
    check_close(out.to_f32(), {1 - 2 * s, 1, 1 + 2 * s, 1 - 2 * t, 1 - 2 * t, 1 + 4 * t}, 1e-6);
  }
  SECTION("without bias, with eps") {
    porta::Graph g;
    auto x = g.input("x", {1, 2}, porta::DType::F32);
    auto w = g.weight("w", f32({2}, {1, 3}));
    // [0, 2]: mean 1, variance 1, + eps 3 = 4: deviations [-1, 1] / 2.
    const auto out =
        run_single(g, g.layer_norm(x, w, std::nullopt, 3.0f), {{"x", f32({1, 2}, {0, 2})}});
    check_close(out.to_f32(), {-0.5, 1.5});
  }
}

}  // namespace reference_normalization_ops_tests
