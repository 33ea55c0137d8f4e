// Reference embedding (gather, id range errors) and top_k (order, ties, NaN, dtypes).

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include <porta/error.hpp>

#include "reference/ops_test_support.hpp"

namespace reference_embedding_topk_ops_tests {

using namespace ops_test;

TEST_CASE("embedding gathers table rows for ids of any shape", "[ops][embedding]") {
  porta::Graph g;
  auto table = g.weight("table", f32({3, 2}, {0, 1, 10, 11, 20, 21}));
  auto ids = g.input("ids", {2, 2}, porta::DType::I32);
  const auto out = run_single(g, g.embedding(table, ids), {{"ids", i32({2, 2}, {2, 0, 1, 2})}});
  CHECK(out.shape() == porta::Shape{2, 2, 2});
  check_close(out.to_f32(), {20, 21, 0, 1, 10, 11, 20, 21}, 0.0);
}

TEST_CASE("embedding keeps the table's dtype and takes i64 ids", "[ops][embedding]") {
  porta::Graph g;
  const std::vector<float> rows = {0.5f, -1.25f, 3.0f, 7.0f};
  auto table = g.weight("table", porta::Tensor::from_f32({2, 2}, porta::DType::BF16, rows));
  auto ids = g.input("ids", {3}, porta::DType::I64);
  const auto out = run_single(g, g.embedding(table, ids), {{"ids", i64({3}, {1, 1, 0})}});
  CHECK(out.dtype() == porta::DType::BF16);
  check_close(out.to_f32(), {3, 7, 3, 7, 0.5, -1.25}, 0.0);
}

TEST_CASE("embedding rejects an id outside the table", "[ops][embedding]") {
  for (std::int32_t bad : {3, -1}) {
    porta::Graph g;
    auto table = g.weight("table", f32({3, 2}, {0, 1, 10, 11, 20, 21}));
    auto ids = g.input("ids", {2}, porta::DType::I32);
    auto y = g.name(g.embedding(table, ids), "tok_embed");
    try {
      run_single(g, y, {{"ids", i32({2}, {0, bad})}});
      FAIL("expected porta::Error");
    } catch (const porta::Error& e) {
      CHECK(e.code() == porta::ErrorCode::InvalidArgument);
      const std::string message = e.what();
      CHECK_THAT(message, Catch::Contains("tok_embed") && Catch::Contains("embedding") &&
                              Catch::Contains("id " + std::to_string(bad)));
    }
  }
}

namespace {

struct TopK {
  std::vector<float> values;
  std::vector<std::int32_t> indices;
};

TopK top_k_of(const porta::Tensor& x, std::int64_t k, bool largest) {
  porta::Graph g;
  auto in = g.input("x", x.shape(), x.dtype());
  auto [values, indices] = g.top_k(in, k, largest);
  g.output("values", values);
  g.output("indices", indices);
  auto exe = porta::compile(g);
  auto out = exe.run({{"x", x}});
  const auto& idx = out.at("indices");
  REQUIRE(idx.dtype() == porta::DType::I32);
  REQUIRE(out.at("values").dtype() == x.dtype());
  return {out.at("values").to_f32(),
          std::vector<std::int32_t>(idx.data_as<std::int32_t>(),
                                    idx.data_as<std::int32_t>() + idx.numel())};
}

}  // namespace

TEST_CASE("top_k picks the best values of each row, best first", "[ops][topk]") {
  const auto x = f32({2, 5}, {3, 1, 3, 5, 2, -1, -2, 0, 4, 4});
  const auto largest = top_k_of(x, 3, true);
  check_close(largest.values, {5, 3, 3, 4, 4, 0}, 0.0);
  CHECK(largest.indices == std::vector<std::int32_t>{3, 0, 2, 3, 4, 2});
  const auto smallest = top_k_of(x, 2, false);
  check_close(smallest.values, {1, 2, -2, -1}, 0.0);
  CHECK(smallest.indices == std::vector<std::int32_t>{1, 4, 1, 0});
}

TEST_CASE("top_k breaks ties by the lower index", "[ops][topk]") {
  const auto x = f32({1, 4}, {7, 7, 7, 7});
  CHECK(top_k_of(x, 3, true).indices == std::vector<std::int32_t>{0, 1, 2});
  CHECK(top_k_of(x, 3, false).indices == std::vector<std::int32_t>{0, 1, 2});
}

TEST_CASE("top_k ranks NaN below every number, largest or smallest", "[ops][topk]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const auto x = f32({1, 4}, {nan, 1, -inf, 2});
  const auto largest = top_k_of(x, 4, true);
  CHECK(largest.indices == std::vector<std::int32_t>{3, 1, 2, 0});
  check_close(largest.values, {2, 1, -inf, std::nan("")}, 0.0);
  const auto smallest = top_k_of(x, 4, false);
  CHECK(smallest.indices == std::vector<std::int32_t>{2, 1, 3, 0});
  CHECK(top_k_of(x, 1, false).indices == std::vector<std::int32_t>{2});
}

TEST_CASE("top_k on bf16 returns the input's values exactly", "[ops][topk]") {
  const std::vector<float> values = {0.1f, 0.3f, 0.2f};
  const auto x = porta::Tensor::from_f32({3}, porta::DType::BF16, values);
  const auto result = top_k_of(x, 2, true);
  CHECK(result.indices == std::vector<std::int32_t>{1, 2});
  CHECK(result.values[0] == x.at_f32(1));
  CHECK(result.values[1] == x.at_f32(2));
}

TEST_CASE("top_k compares large i64 values exactly", "[ops][topk]") {
  // 2^40 and 2^40 + 1 are the same float: only integer comparison orders them.
  const auto x = i64({3}, {1LL << 40, (1LL << 40) + 1, 5});
  const auto result = top_k_of(x, 2, true);
  CHECK(result.indices == std::vector<std::int32_t>{1, 0});
}

}  // namespace reference_embedding_topk_ops_tests
