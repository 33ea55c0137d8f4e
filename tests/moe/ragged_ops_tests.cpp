// moe_permute, grouped_matmul and moe_combine on small hand-worked cases, including empty experts,
// padding rows and index values that must be refused at run time.
#include <catch2/catch.hpp>

#include "moe/moe_test_support.hpp"

namespace moe_ragged_ops_tests {

using porta::DType;
using porta::Graph;
using porta::Tensor;

TEST_CASE("moe_permute gathers token rows by assignment and zeroes padding", "[moe]") {
  for (DType dtype : {DType::F32, DType::BF16}) {
    Graph g;
    auto x = g.input("x", {2, 2}, dtype);
    auto perm = g.input("perm", {5}, DType::I32);
    const auto out = g.add_op(porta::OpKind::MoePermute, {x, perm}, porta::MoePermuteAttrs{2});
    g.output("y", out[0]);
    auto exe = porta::compile(g);
    // K = 2: assignment a belongs to token a / 2; 4 = T·K is the padding sentinel.
    auto r = exe.run({{"x", Tensor::from_f32({2, 2}, dtype, std::vector<float>{1, 2, 3, 4})},
                      {"perm", Tensor::from_vector<std::int32_t>({5}, {2, 0, 3, 4, 1})}});
    const Tensor& y = r.at("y");
    CHECK(y.dtype() == dtype);
    CHECK(y.shape() == porta::Shape{5, 2});
    CHECK(y.to_f32() == std::vector<float>{3, 4, 1, 2, 3, 4, 0, 0, 1, 2});
  }
}

TEST_CASE("moe_permute refuses a negative perm entry", "[moe]") {
  Graph g;
  auto x = g.input("x", {2, 2}, DType::F32);
  auto perm = g.input("perm", {2}, DType::I32);
  g.output("y", g.name(g.add_op(porta::OpKind::MoePermute, {x, perm}, porta::MoePermuteAttrs{1})[0],
                       "gather_rows"));
  auto exe = porta::compile(g);
  try {
    exe.run({{"x", Tensor::zeros({2, 2}, DType::F32)},
             {"perm", Tensor::from_vector<std::int32_t>({2}, {0, -3})}});
    FAIL("a negative perm entry was accepted");
  } catch (const porta::Error& e) {
    CHECK(e.code() == porta::ErrorCode::InvalidArgument);
    CHECK_THAT(e.what(), Catch::Contains("gather_rows") && Catch::Contains("-3"));
  }
}

namespace {
// rows [4, 2] times w [3, 2, 2] by `offsets`, through the public API.
std::map<std::string, Tensor> run_grouped(const std::vector<std::int32_t>& offsets) {
  Graph g;
  auto rows = g.input("rows", {4, 2}, DType::F32);
  auto w = g.input("w", {3, 2, 2}, DType::F32);
  auto off = g.input("offsets", {4}, DType::I32);
  g.output("y", g.name(g.grouped_matmul(rows, w, off), "experts_gm"));
  auto exe = porta::compile(g);
  return exe.run({{"rows", Tensor::from_vector<float>({4, 2}, {1, 2, 3, 4, 5, 6, 7, 8})},
                  {"w", Tensor::from_vector<float>({3, 2, 2}, {1, 0, 0, 1,      // identity
                                                               9, 9, 9, 9,      // never used
                                                               1, 1, 2, -1})},  // [x0+x1, 2x0-x1]
                  {"offsets", Tensor::from_vector<std::int32_t>({4}, offsets)}});
}
}  // namespace

TEST_CASE("grouped_matmul multiplies each expert's rows by its weight", "[moe]") {
  // Expert 0 takes rows 0-1, expert 1 none, expert 2 row 2; row 3 is past offsets[E]: zero.
  const auto r = run_grouped({0, 2, 2, 3});
  CHECK(r.at("y").to_f32() == std::vector<float>{1, 2, 3, 4, 11, 4, 0, 0});
  // All experts empty.
  CHECK(run_grouped({0, 0, 0, 0}).at("y").to_f32() == std::vector<float>(8, 0.0f));
}

TEST_CASE("grouped_matmul refuses bad offsets at run time, naming the node", "[moe]") {
  for (const auto& offsets :
       {std::vector<std::int32_t>{0, 3, 2, 4}, std::vector<std::int32_t>{0, 1, 2, 5},
        std::vector<std::int32_t>{-1, 1, 2, 3}}) {
    try {
      run_grouped(offsets);
      FAIL("offsets accepted: " << offsets[0] << offsets[1] << offsets[2] << offsets[3]);
    } catch (const porta::Error& e) {
      CHECK(e.code() == porta::ErrorCode::InvalidArgument);
      CHECK_THAT(e.what(), Catch::Contains("experts_gm") && Catch::Contains("offsets"));
    }
  }
}

namespace {
std::vector<float> run_combine(const std::vector<std::int32_t>& inv) {
  Graph g;
  auto yp = g.input("yp", {3, 2}, DType::F32);
  auto w = g.input("w", {2, 2}, DType::F32);
  auto inv_value = g.input("inv", {4}, DType::I32);
  g.output("y", g.name(g.add_op(porta::OpKind::MoeCombine, {yp, w, inv_value})[0], "mix"));
  auto exe = porta::compile(g);
  return exe
      .run({{"yp", Tensor::from_vector<float>({3, 2}, {1, 2, 3, 4, 5, 6})},
            {"w", Tensor::from_vector<float>({2, 2}, {0.5f, 0.25f, 2.0f, 1.0f})},
            {"inv", Tensor::from_vector<std::int32_t>({4}, inv)}})
      .at("y")
      .to_f32();
}
}  // namespace

TEST_CASE("moe_combine sums weighted expert rows per token, skipping dropped ones", "[moe]") {
  // Token 0: 0.5·yp[2] + 0.25·yp[0]; token 1: its first assignment was dropped, 1·yp[1].
  CHECK(run_combine({2, 0, -1, 1}) == std::vector<float>{2.75f, 3.5f, 3, 4});
  try {
    run_combine({2, 0, 3, 1});  // row 3 of a 3-row yp
    FAIL("inv past the rows was accepted");
  } catch (const porta::Error& e) {
    CHECK(e.code() == porta::ErrorCode::InvalidArgument);
    CHECK_THAT(e.what(), Catch::Contains("mix") && Catch::Contains("inv"));
  }
}

TEST_CASE("router -> permute -> combine round-trips the tokens", "[moe]") {
  // With weights summing to 1 per token and the identity as every expert, combine(permute(x))
  // must give x back, including block padding and an expert with no tokens.
  auto a = porta::moe::mixtral(4, 2);
  a.block_size = 4;
  Graph g;
  auto x = g.input("x", {3, 2}, DType::F32);
  auto logits = g.input("logits", {3, 4}, DType::F32);
  const auto route = g.moe_router(logits, a);
  g.output("y", g.moe_combine(g.moe_permute(x, route), route));
  auto exe = porta::compile(g);
  auto r = exe.run({{"x", Tensor::from_vector<float>({3, 2}, {1, -2, 3, 0.5f, -4, 8})},
                    {"logits", Tensor::from_vector<float>({3, 4}, {1, 2, 0, -1,  //
                                                                   0, 2, 1, -1,  //
                                                                   2, 1, 0, -1})}});
  const auto y = r.at("y").to_f32();
  const std::vector<float> expected{1, -2, 3, 0.5f, -4, 8};
  for (std::size_t i = 0; i < y.size(); ++i) CHECK(y[i] == Approx(expected[i]));
}

}  // namespace moe_ragged_ops_tests
