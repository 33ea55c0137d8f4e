// Shape and dtype inference of the graph builder on well-typed operands; expected shapes are
// worked out by hand from each op's definition.
#include <cstdint>
#include <string>

#include <catch2/catch.hpp>

#include <porta/graph.hpp>
#include <porta/moe.hpp>

namespace graph_shape_tests {

using porta::DType;
using porta::Graph;
using porta::Shape;
using porta::Tensor;

TEST_CASE("matmul broadcasts batch dimensions and honours transposes", "[unit][graph]") {
  Graph g;
  auto a = g.input("a", {2, 1, 4, 3}, DType::F32);
  auto b = g.input("b", {5, 3, 6}, DType::F32);
  const auto y = g.matmul(a, b);
  CHECK(y.shape() == Shape{2, 5, 4, 6});
  CHECK(y.dtype() == DType::F32);

  auto at = g.input("at", {3, 4}, DType::BF16);  // [K, M]
  auto bt = g.input("bt", {5, 3}, DType::BF16);  // [N, K]
  auto plain_b = g.input("pb", {3, 5}, DType::BF16);
  CHECK(g.matmul(at, plain_b, {.transpose_a = true}).shape() == Shape{4, 5});
  CHECK(g.matmul(g.input("m", {4, 3}, DType::BF16), bt, {.transpose_b = true}).shape() ==
        Shape{4, 5});
  const auto both = g.matmul(at, bt, {.transpose_a = true, .transpose_b = true});
  CHECK(both.shape() == Shape{4, 5});
  CHECK(both.dtype() == DType::BF16);
  // A plain 2-D weight applies to every batch.
  CHECK(g.matmul(g.input("x3", {7, 2, 3}, DType::BF16), plain_b).shape() == Shape{7, 2, 5});
}

TEST_CASE("elementwise ops broadcast NumPy-style", "[unit][graph]") {
  Graph g;
  auto x = g.input("x", {4, 1, 3}, DType::F32);
  auto y = g.input("y", {5, 1}, DType::F32);
  CHECK((x + y).shape() == Shape{4, 5, 3});
  CHECK(g.mul(x, g.scalar(2.0f)).shape() == Shape{4, 1, 3});
  CHECK(g.sub(g.input("i", {2}, DType::I64), g.input("j", {3, 1}, DType::I64)).shape() ==
        Shape{3, 2});
  CHECK(g.silu(x).shape() == Shape{4, 1, 3});
  CHECK(g.cast(x, DType::F8E4M3).dtype() == DType::F8E4M3);
}

TEST_CASE("slice handles negative indices, steps, clamping and empty results", "[unit][graph]") {
  Graph g;
  auto x = g.input("x", {10, 6}, DType::F32);
  CHECK(g.slice(x, 0, -2, 10).shape() == Shape{2, 6});       // rows 8, 9
  CHECK(g.slice(x, 0, 1, -1, 3).shape() == Shape{3, 6});     // rows 1, 4, 7
  CHECK(g.slice(x, 0, 8, 2).shape() == Shape{0, 6});         // empty
  CHECK(g.slice(x, -1, 0, 100, 4).shape() == Shape{10, 2});  // columns 0, 4 (end clamped)
  CHECK(g.slice(x, 1, -100, 3).shape() == Shape{10, 3});     // start clamped to 0
  CHECK(g.slice(x, 0, 0, 10, 20).shape() == Shape{1, 6});    // a step past the end: row 0
}

TEST_CASE("reshape, permute and concat shapes", "[unit][graph]") {
  Graph g;
  auto x = g.input("x", {2, 3, 4}, DType::F16);
  CHECK(g.reshape(x, {-1, 4}).shape() == Shape{6, 4});
  CHECK(g.reshape(x, {4, 6}).shape() == Shape{4, 6});
  CHECK(g.permute(x, {2, 0, 1}).shape() == Shape{4, 2, 3});
  auto y = g.input("y", {2, 5, 4}, DType::F16);
  auto z = g.input("z", {2, 1, 4}, DType::F16);
  const auto c = g.concat({x, y, z}, 1);
  CHECK(c.shape() == Shape{2, 9, 4});
  CHECK(c.dtype() == DType::F16);
  CHECK(g.concat({x, x}, -1).shape() == Shape{2, 3, 8});
}

TEST_CASE("top_k gives values in the input dtype and int32 indices", "[unit][graph]") {
  Graph g;
  auto x = g.input("x", {3, 7}, DType::F16);
  auto [values, indices] = g.top_k(x, 2);
  CHECK(values.shape() == Shape{3, 2});
  CHECK(values.dtype() == DType::F16);
  CHECK(indices.shape() == Shape{3, 2});
  CHECK(indices.dtype() == DType::I32);
  // Two outputs of one node are named "<node>:<index>".
  CHECK(values.info().name == "top_k_0:0");
  CHECK(indices.info().name == "top_k_0:1");
  CHECK(g.top_k(x, 7, false).first.shape() == Shape{3, 7});
}

TEST_CASE("norms, rope, embedding and swiglu keep or build the documented shapes",
          "[unit][graph]") {
  Graph g;
  auto x = g.input("x", {5, 16}, DType::F32);
  CHECK(g.rms_norm(x, g.weight("w", Tensor::zeros({16}, DType::F32))).shape() == Shape{5, 16});
  auto q = g.input("q", {5, 4, 64}, DType::F32);
  auto pos = g.input("pos", {5}, DType::I64);
  CHECK(g.rope(q, pos, {.rotary_dim = 32}).shape() == Shape{5, 4, 64});
  auto table = g.weight("table", Tensor::zeros({100, 8}, DType::BF16));
  const auto e = g.embedding(table, g.input("ids", {2, 3}, DType::I32));
  CHECK(e.shape() == Shape{2, 3, 8});
  CHECK(e.dtype() == DType::BF16);
  CHECK(g.swiglu(x, x).shape() == Shape{5, 16});
}

TEST_CASE("attention with Dk != Dv and a KV cache", "[unit][graph]") {
  Graph g;
  auto q = g.input("q", {3, 8, 192}, DType::F32);
  auto k = g.input("k", {3, 2, 192}, DType::F32);
  auto v = g.input("v", {3, 2, 128}, DType::F32);
  CHECK(g.attention(q, k, v).shape() == Shape{3, 8, 128});
  auto k_cache = g.input("k_cache", {16, 2, 192}, DType::F32);
  auto v_cache = g.input("v_cache", {16, 2, 128}, DType::F32);
  auto len = g.input("len", {1}, DType::I32);
  const auto y = g.attention(q, k, v, k_cache, v_cache, len, {.scale = 0.125f});
  CHECK(y.shape() == Shape{3, 8, 128});
  CHECK(y.dtype() == DType::F32);
  const auto& node = g.node(y.info().producer);
  CHECK(node.inputs.size() == 6);
  CHECK(std::get<porta::AttentionAttrs>(node.attrs).kv_cache);
}

TEST_CASE("moe_router outputs have the documented shapes and dtypes", "[unit][graph][moe]") {
  constexpr std::int64_t T = 5, E = 8, K = 2;
  Graph g;
  auto logits = g.input("logits", {T, E}, DType::BF16);
  porta::moe::RouterAttrs attrs;
  attrs.num_experts = E;
  attrs.top_k = K;
  const auto route = g.moe_router(logits, attrs);
  CHECK(route.top_k == K);
  CHECK(route.ids.shape() == Shape{T, K});
  CHECK(route.ids.dtype() == DType::I32);
  CHECK(route.weights.shape() == Shape{T, K});
  CHECK(route.weights.dtype() == DType::F32);
  CHECK(route.counts.shape() == Shape{E});
  CHECK(route.offsets.shape() == Shape{E + 1});
  CHECK(route.offsets.dtype() == DType::I32);
  CHECK(route.perm.shape() == Shape{T * K});
  CHECK(route.inv.shape() == Shape{T * K});
  CHECK(route.dropped.shape() == Shape{E});
  CHECK(route.nonfinite.shape() == Shape{T});
  CHECK(route.mean_score.shape() == Shape{E});
  CHECK(route.mean_score.dtype() == DType::F32);

  // Padding each expert's block to a multiple of 4 needs at most 3 extra slots per expert.
  attrs.block_size = 4;
  const auto padded = g.moe_router(logits, attrs);
  CHECK(padded.perm.shape() == Shape{T * K + E * 3});
  CHECK(padded.inv.shape() == Shape{T * K});

  // DeepSeek-V3's preset with its bias input, and zero tokens.
  auto empty_logits = g.input("empty", {0, 256}, DType::F32);
  auto bias = g.weight("bias", Tensor::zeros({256}, DType::F32));
  const auto v3 = g.moe_router(empty_logits, porta::moe::deepseek_v3(), bias);
  CHECK(v3.ids.shape() == Shape{0, 8});
  CHECK(v3.offsets.shape() == Shape{257});
}

TEST_CASE("Graph inspection: nodes, values, default names, to_string", "[unit][graph]") {
  Graph g;
  auto x = g.input("x", {2, 3}, DType::F32);
  auto w = g.weight("w", Tensor::zeros({3, 4}, DType::F32));
  auto y = g.silu(g.matmul(x, w));
  g.output("y", y);
  REQUIRE(g.nodes().size() == 2);
  CHECK(g.nodes()[0].name == "matmul_0");
  CHECK(g.nodes()[1].name == "silu_1");
  CHECK(g.nodes()[1].inputs == std::vector<porta::ValueId>{g.nodes()[0].outputs[0]});
  CHECK(g.inputs().size() == 1);
  CHECK(g.outputs().size() == 1);
  CHECK(g.outputs()[0].second == y.id());
  CHECK(w.info().kind == porta::ValueKind::Constant);
  CHECK(w.info().constant.data() != nullptr);
  CHECK(g.num_values() == 4);
  CHECK(g.handle(y.id()).shape() == Shape{2, 4});
  const std::string listing = g.to_string();
  CHECK(listing.find("matmul_0") != std::string::npos);
  CHECK(listing.find("silu_1") != std::string::npos);
  CHECK(listing.find("output y") != std::string::npos);
  // Moving the graph keeps handles valid.
  Graph moved = std::move(g);
  CHECK(moved.silu(y).shape() == Shape{2, 4});
}

}  // namespace graph_shape_tests
