// Reference rope: identity at position 0, exact quarter turns, partial rotary, both layouts,
// linear scaling and YaRN (frequencies worked out by hand below).

#include <cmath>
#include <numbers>

#include "reference/ops_test_support.hpp"

namespace reference_rope_ops_tests {

using namespace ops_test;

namespace {

porta::Tensor rope_of(const porta::Shape& shape, const std::vector<float>& x,
                      const std::vector<std::int32_t>& positions, const porta::RopeAttrs& attrs) {
  porta::Graph g;
  auto xv = g.input("x", shape, porta::DType::F32);
  auto pos = g.input("pos", {shape[0]}, porta::DType::I32);
  return run_single(g, g.rope(xv, pos, attrs),
                    {{"x", f32(shape, x)}, {"pos", i32({shape[0]}, positions)}});
}

// theta 4 gives D=4 the frequencies 1 and 4^(-1/2) = 1/2; linear factor 2/π turns position 1
// into angles π/2 (a quarter turn) and π/4.
porta::RopeAttrs quarter_turn(porta::RopeLayout layout, std::int64_t rotary_dim = 0) {
  porta::RopeAttrs attrs;
  attrs.theta = 4.0f;
  attrs.rotary_dim = rotary_dim;
  attrs.layout = layout;
  attrs.scaling.type = porta::RopeScalingType::Linear;
  attrs.scaling.factor = static_cast<float>(2.0 / std::numbers::pi);
  return attrs;
}

const double kHalfSqrt2 = std::numbers::sqrt2 / 2;

}  // namespace

TEST_CASE("rope at position 0 is the identity in both layouts", "[ops][rope]") {
  const std::vector<float> x = {1, -2, 3, 4, 0.5f, 6, 7, -8};
  for (auto layout : {porta::RopeLayout::NeoX, porta::RopeLayout::Interleaved}) {
    porta::RopeAttrs attrs;
    attrs.layout = layout;
    const auto out = rope_of({1, 2, 4}, x, {0}, attrs);
    check_close(out.to_f32(), {1, -2, 3, 4, 0.5, 6, 7, -8}, 0.0);
  }
}

TEST_CASE("rope NeoX rotates the pairs (i, i + d/2)", "[ops][rope]") {
  // Pair (x0, x2) = (1, 3) turns by π/2: (-3, 1). Pair (x1, x3) = (2, 4) turns by π/4:
  // ((2 - 4)·√2/2, (4 + 2)·√2/2).
  const auto out = rope_of({1, 4}, {1, 2, 3, 4}, {1}, quarter_turn(porta::RopeLayout::NeoX));
  check_close(out.to_f32(), {-3, -2 * kHalfSqrt2, 1, 6 * kHalfSqrt2}, 1e-6);
}

TEST_CASE("rope interleaved rotates the pairs (2i, 2i + 1)", "[ops][rope]") {
  // Pair (x0, x1) = (1, 2) turns by π/2: (-2, 1). Pair (x2, x3) = (3, 4) turns by π/4.
  const auto out = rope_of({1, 4}, {1, 2, 3, 4}, {1}, quarter_turn(porta::RopeLayout::Interleaved));
  check_close(out.to_f32(), {-2, 1, -1 * kHalfSqrt2, 7 * kHalfSqrt2}, 1e-6);
}

TEST_CASE("rope with a partial rotary_dim passes the tail through", "[ops][rope]") {
  // D = 6, rotary_dim 4: the first four dims rotate as above, dims 4 and 5 are untouched.
  const std::vector<float> x = {1, 2, 3, 4, 5, 6};
  SECTION("neox") {
    const auto out = rope_of({1, 6}, x, {1}, quarter_turn(porta::RopeLayout::NeoX, 4));
    check_close(out.to_f32(), {-3, -2 * kHalfSqrt2, 1, 6 * kHalfSqrt2, 5, 6}, 1e-6);
  }
  SECTION("interleaved") {
    const auto out = rope_of({1, 6}, x, {1}, quarter_turn(porta::RopeLayout::Interleaved, 4));
    check_close(out.to_f32(), {-2, 1, -1 * kHalfSqrt2, 7 * kHalfSqrt2, 5, 6}, 1e-6);
  }
}

TEST_CASE("rope rotates every head of a token by the token's position", "[ops][rope]") {
  // x[T=2, H=2, D=2] of ones; theta is irrelevant for D = 2 (the one frequency is 1), so token
  // t turns by angle positions[t]: (1, 1) -> (cos - sin, cos + sin).
  const auto out = rope_of({2, 2, 2}, {1, 1, 1, 1, 1, 1, 1, 1}, {0, 3}, {});
  const double c = std::cos(3.0), s = std::sin(3.0);
  check_close(out.to_f32(), {1, 1, 1, 1, c - s, c + s, c - s, c + s}, 1e-6);
}

TEST_CASE("rope uses theta^(-2i/d) frequencies at large positions", "[ops][rope]") {
  // D = 4, theta 10000: frequencies 1 and 0.01. Position 1000 (int64 positions).
  porta::Graph g;
  auto x = g.input("x", {1, 4}, porta::DType::F32);
  auto pos = g.input("pos", {1}, porta::DType::I64);
  const auto out =
      run_single(g, g.rope(x, pos), {{"x", f32({1, 4}, {1, 0, 0, 1})}, {"pos", i64({1}, {1000})}});
  // NeoX pairs (x0, x2) = (1, 0) at angle 1000 and (x1, x3) = (0, 1) at angle 10.
  check_close(out.to_f32(), {std::cos(1000.0), -std::sin(10.0), std::sin(1000.0), std::cos(10.0)},
              1e-5);
}

TEST_CASE("rope YaRN blends frequencies and scales by mscale", "[ops][rope]") {
  // dim 8, base 10000, factor 4, original context 64, beta_fast 32, beta_slow 1, mscale 1,
  // mscale_all_dim 0. Worked by hand:
  //   find_dim(32) = 8·ln(64 / (32·2π)) / (2·ln 10000) = -0.497 -> low = max(floor, 0) = 0
  //   find_dim(1)  = 8·ln(64 / (2π))    / (2·ln 10000) =  1.008 -> high = min(ceil, 7) = 2
  //   ramp(i) = clamp(i / 2, 0, 1) = [0, 0.5, 1, 1]; freq_extra = [1, 0.1, 0.01, 0.001]
  //   inv_freq = extra·(1 - ramp) + extra / 4 · ramp = [1, 0.0625, 0.0025, 0.00025]
  //   m = (0.1·1·ln 4 + 1) / 1 = 1.1386294361
  const double inv_freq[4] = {1.0, 0.0625, 0.0025, 0.00025};
  const double m = 0.1 * std::log(4.0) + 1.0;
  porta::RopeAttrs attrs;
  attrs.scaling = {.type = porta::RopeScalingType::Yarn,
                   .factor = 4.0f,
                   .original_max_position = 64,
                   .beta_fast = 32.0f,
                   .beta_slow = 1.0f,
                   .mscale = 1.0f,
                   .mscale_all_dim = 0.0f};
  const std::vector<float> ones(16, 1.0f);

  SECTION("position 0 only scales by m") {
    const auto out = rope_of({2, 8}, ones, {0, 0}, attrs);
    check_close(out.to_f32(), std::vector<double>(16, m), 1e-6);
  }
  SECTION("position 10, NeoX and interleaved") {
    std::vector<double> neox(8), interleaved(8);
    for (int i = 0; i < 4; ++i) {
      const double c = m * std::cos(10 * inv_freq[i]), s = m * std::sin(10 * inv_freq[i]);
      neox[static_cast<std::size_t>(i)] = c - s;
      neox[static_cast<std::size_t>(i + 4)] = c + s;
      interleaved[static_cast<std::size_t>(2 * i)] = c - s;
      interleaved[static_cast<std::size_t>(2 * i + 1)] = c + s;
    }
    check_close(rope_of({1, 8}, std::vector<float>(8, 1.0f), {10}, attrs).to_f32(), neox, 1e-6);
    attrs.layout = porta::RopeLayout::Interleaved;
    check_close(rope_of({1, 8}, std::vector<float>(8, 1.0f), {10}, attrs).to_f32(), interleaved,
                1e-6);
  }
  SECTION("equal mscale and mscale_all_dim cancel") {
    attrs.scaling.mscale_all_dim = 1.0f;
    const auto out = rope_of({1, 8}, std::vector<float>(8, 1.0f), {0}, attrs);
    check_close(out.to_f32(), std::vector<double>(8, 1.0), 1e-6);
  }
}

}  // namespace reference_rope_ops_tests
