// Reference reshape, permute, slice, concat and cast on small cases.

#include <cstdint>

#include "reference/ops_test_support.hpp"

namespace reference_layout_ops_tests {

using namespace ops_test;

namespace {
std::vector<float> iota_values(int n) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = static_cast<float>(i);
  return v;
}
}  // namespace

TEST_CASE("reshape keeps the elements in order", "[ops][layout]") {
  porta::Graph g;
  auto x = g.input("x", {2, 3}, porta::DType::F32);
  const auto out = run_single(g, g.reshape(x, {3, -1}), {{"x", f32({2, 3}, iota_values(6))}});
  CHECK(out.shape() == porta::Shape{3, 2});
  check_close(out.to_f32(), {0, 1, 2, 3, 4, 5}, 0.0);
}

TEST_CASE("permute transposes a matrix", "[ops][layout]") {
  porta::Graph g;
  auto x = g.input("x", {2, 3}, porta::DType::F32);
  const auto out = run_single(g, g.permute(x, {1, 0}), {{"x", f32({2, 3}, iota_values(6))}});
  CHECK(out.shape() == porta::Shape{3, 2});
  check_close(out.to_f32(), {0, 3, 1, 4, 2, 5}, 0.0);
}

TEST_CASE("permute of a rank-3 tensor moves each element to its permuted index", "[ops][layout]") {
  porta::Graph g;
  auto x = g.input("x", {2, 3, 4}, porta::DType::F32);
  // perm [2, 0, 1]: out[i, j, k] = x[j, k, i], out shape [4, 2, 3]; x[a, b, c] = 12a + 4b + c.
  const auto out = run_single(g, g.permute(x, {2, 0, 1}), {{"x", f32({2, 3, 4}, iota_values(24))}});
  CHECK(out.shape() == porta::Shape{4, 2, 3});
  std::vector<double> want;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 2; ++j)
      for (int k = 0; k < 3; ++k) want.push_back(12 * j + 4 * k + i);
  check_close(out.to_f32(), want, 0.0);
}

TEST_CASE("slice follows Python's start:end:step rules", "[ops][layout]") {
  const auto slice = [](std::int64_t start, std::int64_t end, std::int64_t step) {
    porta::Graph g;
    auto x = g.input("x", {10}, porta::DType::F32);
    return run_single(g, g.slice(x, 0, start, end, step), {{"x", f32({10}, iota_values(10))}});
  };
  check_close(slice(2, 8, 3).to_f32(), {2, 5}, 0.0);
  check_close(slice(-3, 100, 1).to_f32(), {7, 8, 9}, 0.0);  // negative start, end clamped
  check_close(slice(-100, 2, 1).to_f32(), {0, 1}, 0.0);     // start clamped to 0
  check_close(slice(1, -1, 4).to_f32(), {1, 5}, 0.0);       // negative end: 9
  CHECK(slice(5, 2, 1).shape() == porta::Shape{0});         // empty when end <= start
}

TEST_CASE("slice along an inner axis", "[ops][layout]") {
  porta::Graph g;
  auto x = g.input("x", {2, 4}, porta::DType::F32);
  const auto out = run_single(g, g.slice(x, -1, 1, -1), {{"x", f32({2, 4}, iota_values(8))}});
  CHECK(out.shape() == porta::Shape{2, 2});
  check_close(out.to_f32(), {1, 2, 5, 6}, 0.0);
}

TEST_CASE("concat along the last and the first axis", "[ops][layout]") {
  SECTION("axis 1") {
    porta::Graph g;
    auto a = g.input("a", {2, 1}, porta::DType::F32);
    auto b = g.input("b", {2, 2}, porta::DType::F32);
    const auto out = run_single(g, g.concat({a, b}, 1),
                                {{"a", f32({2, 1}, {1, 2})}, {"b", f32({2, 2}, {10, 11, 20, 21})}});
    CHECK(out.shape() == porta::Shape{2, 3});
    check_close(out.to_f32(), {1, 10, 11, 2, 20, 21}, 0.0);
  }
  SECTION("axis 0, three inputs") {
    porta::Graph g;
    auto a = g.input("a", {1, 2}, porta::DType::I32);
    auto b = g.input("b", {2, 2}, porta::DType::I32);
    auto c = g.input("c", {1, 2}, porta::DType::I32);
    const auto out = run_single(
        g, g.concat({a, b, c}, 0),
        {{"a", i32({1, 2}, {1, 2})}, {"b", i32({2, 2}, {3, 4, 5, 6})}, {"c", i32({1, 2}, {7, 8})}});
    CHECK(out.shape() == porta::Shape{4, 2});
    REQUIRE(out.dtype() == porta::DType::I32);
    const auto* v = out.data_as<std::int32_t>();
    CHECK(std::vector<std::int32_t>(v, v + 8) == std::vector<std::int32_t>{1, 2, 3, 4, 5, 6, 7, 8});
  }
}

TEST_CASE("cast rounds to nearest even and converts exactly", "[ops][layout]") {
  SECTION("f32 to i32") {
    porta::Graph g;
    auto x = g.input("x", {4}, porta::DType::F32);
    const auto out = run_single(g, g.cast(x, porta::DType::I32),
                                {{"x", f32({4}, {1.5f, -2.5f, 300.7f, -0.2f})}});
    REQUIRE(out.dtype() == porta::DType::I32);
    const auto* v = out.data_as<std::int32_t>();
    CHECK(std::vector<std::int32_t>(v, v + 4) == std::vector<std::int32_t>{2, -2, 301, 0});
  }
  SECTION("f32 to bf16") {
    porta::Graph g;
    auto x = g.input("x", {3}, porta::DType::F32);
    // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties go to the even one, 1.
    // 1 + 3·2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: the even one is 1 + 2^-6.
    const auto out = run_single(g, g.cast(x, porta::DType::BF16),
                                {{"x", f32({3}, {1.00390625f, 1.01171875f, -3.0f})}});
    REQUIRE(out.dtype() == porta::DType::BF16);
    check_close(out.to_f32(), {1.0, 1.015625, -3.0}, 0.0);
  }
  SECTION("i64 to f32") {
    porta::Graph g;
    auto x = g.input("x", {2}, porta::DType::I64);
    const auto out = run_single(g, g.cast(x, porta::DType::F32), {{"x", i64({2}, {-7, 1 << 20})}});
    check_close(out.to_f32(), {-7, 1048576}, 0.0);
  }
}

TEST_CASE("ops run on zero-token inputs", "[ops][layout]") {
  // An MoE expert or a batch can hold no rows; every kernel must accept the empty tensor.
  porta::Graph g;
  auto x = g.input("x", {0, 4}, porta::DType::F32);
  auto pos = g.input("pos", {0}, porta::DType::I32);
  auto w = g.weight("w", f32({4}, {1, 1, 1, 1}));
  auto proj = g.weight("proj", f32({3, 4}, std::vector<float>(12, 0.5f)));
  auto h = g.rope(g.silu(g.rms_norm(x, w)), pos);
  auto y = g.softmax(g.matmul(h, proj, {.transpose_b = true}));
  auto [values, indices] = g.top_k(y, 2);
  auto table = g.weight("table", f32({2, 4}, std::vector<float>(8, 1.0f)));
  g.output("y", y);
  g.output("values", values);
  g.output("indices", indices);
  g.output("rows", g.embedding(table, pos));
  g.output("attn",
           g.attention(g.reshape(x, {0, 1, 4}), g.reshape(x, {0, 1, 4}), g.reshape(x, {0, 1, 4})));
  auto exe = porta::compile(g);
  auto out = exe.run({{"x", porta::Tensor::zeros({0, 4}, porta::DType::F32)},
                      {"pos", porta::Tensor::zeros({0}, porta::DType::I32)}});
  CHECK(out.at("y").shape() == porta::Shape{0, 3});
  CHECK(out.at("values").shape() == porta::Shape{0, 2});
  CHECK(out.at("indices").shape() == porta::Shape{0, 2});
  CHECK(out.at("rows").shape() == porta::Shape{0, 4});
  CHECK(out.at("attn").shape() == porta::Shape{0, 1, 4});
}

}  // namespace reference_layout_ops_tests
