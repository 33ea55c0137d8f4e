// Graph building errors: every ill-typed builder call throws porta::Error at once, with the right
// code and a message naming the op, the node and the operands' shapes.
#include <cstdint>
#include <vector>

#include <catch2/catch.hpp>

#include <porta/graph.hpp>
#include <porta/moe.hpp>

#include "core/error_check.hpp"

namespace graph_error_tests {

using porta::DType;
using porta::ErrorCode;
using porta::Graph;
using porta::Tensor;
using porta::Value;

namespace {

porta::moe::RouterAttrs router(std::int64_t experts, std::int64_t k, std::int64_t groups = 1,
                               std::int64_t topk_groups = 1) {
  porta::moe::RouterAttrs a;
  a.num_experts = experts;
  a.top_k = k;
  a.num_groups = groups;
  a.topk_groups = topk_groups;
  return a;
}

}  // namespace

TEST_CASE("matmul with different inner dimensions", "[unit][graph]") {
  Graph g;
  auto a = g.input("a", {4, 8}, DType::F32);
  auto b = g.input("b", {9, 16}, DType::F32);
  REQUIRE_PORTA_ERROR(g.matmul(a, b), ErrorCode::ShapeMismatch, "matmul", "'matmul_0'", "f32[4, 8]",
                      "f32[9, 16]", "8", "9");
  // transpose_b makes b [N, K] = [16, 9]: K is 9 against a's 8.
  REQUIRE_PORTA_ERROR(g.matmul(a, b, {.transpose_b = true}), ErrorCode::ShapeMismatch, "matmul");
  auto batch_a = g.input("ba", {3, 4, 8}, DType::F32);
  auto batch_b = g.input("bb", {2, 8, 5}, DType::F32);
  REQUIRE_PORTA_ERROR(g.matmul(batch_a, batch_b), ErrorCode::ShapeMismatch, "matmul", "[3, 4, 8]",
                      "[2, 8, 5]");
  auto vec = g.input("v", {8}, DType::F32);
  REQUIRE_PORTA_ERROR(g.matmul(vec, b), ErrorCode::ShapeMismatch, "matmul", "[8]");
  CHECK(g.nodes().empty());  // failed calls add nothing
}

TEST_CASE("elementwise ops with non-broadcastable shapes or mixed dtypes", "[unit][graph]") {
  Graph g;
  auto x = g.input("x", {2, 3}, DType::F32);
  auto y = g.input("y", {4}, DType::F32);
  auto h = g.input("h", {2, 3}, DType::F16);
  auto i = g.input("i", {2, 3}, DType::I32);
  REQUIRE_PORTA_ERROR(g.add(x, y), ErrorCode::ShapeMismatch, "add", "'add_0'", "[2, 3]", "[4]");
  REQUIRE_PORTA_ERROR(x * y, ErrorCode::ShapeMismatch, "mul", "[2, 3]", "[4]");
  REQUIRE_PORTA_ERROR(g.add(x, h), ErrorCode::DTypeMismatch, "add", "f32[2, 3]", "f16[2, 3]");
  REQUIRE_PORTA_ERROR(x - h, ErrorCode::DTypeMismatch, "sub", "f16");
  REQUIRE_PORTA_ERROR(g.div(i, i), ErrorCode::DTypeMismatch, "div", "i32");
  REQUIRE_PORTA_ERROR(i / i, ErrorCode::DTypeMismatch, "div", "i32");
  CHECK(g.add(i, i).dtype() == DType::I32);  // integer add is fine
}

TEST_CASE("axis, norm, rope and embedding errors", "[unit][graph]") {
  Graph g;
  auto x = g.input("x", {2, 8}, DType::F32);
  REQUIRE_PORTA_ERROR(g.softmax(x, 2), ErrorCode::InvalidArgument, "softmax", "'softmax_0'",
                      "axis 2", "[2, 8]");
  REQUIRE_PORTA_ERROR(g.softmax(x, -3), ErrorCode::InvalidArgument, "softmax", "-3");

  auto w7 = g.weight("w7", Tensor::zeros({7}, DType::F32));
  REQUIRE_PORTA_ERROR(g.rms_norm(x, w7), ErrorCode::ShapeMismatch, "rms_norm", "w7", "[7]",
                      "[2, 8]");
  REQUIRE_PORTA_ERROR(g.layer_norm(x, g.weight("w8", Tensor::zeros({8}, DType::F32)), w7),
                      ErrorCode::ShapeMismatch, "layer_norm", "[7]");

  auto q = g.input("q", {4, 2, 8}, DType::F32);
  auto pos = g.input("pos", {4}, DType::I32);
  REQUIRE_PORTA_ERROR(g.rope(q, pos, {.rotary_dim = 3}), ErrorCode::InvalidArgument, "rope",
                      "rotary_dim 3", "[4, 2, 8]");
  REQUIRE_PORTA_ERROR(g.rope(q, pos, {.rotary_dim = 10}), ErrorCode::InvalidArgument, "rope", "10");
  auto fpos = g.input("fpos", {4}, DType::F32);
  REQUIRE_PORTA_ERROR(g.rope(q, fpos), ErrorCode::DTypeMismatch, "rope", "f32[4]");

  auto table = g.weight("table", Tensor::zeros({10, 4}, DType::F32));
  auto float_ids = g.input("float_ids", {3}, DType::F32);
  REQUIRE_PORTA_ERROR(g.embedding(table, float_ids), ErrorCode::DTypeMismatch, "embedding",
                      "float_ids", "f32[3]", "[10, 4]");
}

TEST_CASE("layout op errors: reshape, permute, slice, concat, top_k", "[unit][graph]") {
  Graph g;
  auto x = g.input("x", {2, 3, 4}, DType::F32);
  REQUIRE_PORTA_ERROR(g.reshape(x, {5, 5}), ErrorCode::ShapeMismatch, "reshape", "'reshape_0'",
                      "24", "[5, 5]", "[2, 3, 4]");
  REQUIRE_PORTA_ERROR(g.reshape(x, {5, -1}), ErrorCode::ShapeMismatch, "reshape", "[5, -1]");
  REQUIRE_PORTA_ERROR(g.reshape(x, {-1, -1}), ErrorCode::InvalidArgument, "reshape");
  REQUIRE_PORTA_ERROR(g.permute(x, {0, 0, 1}), ErrorCode::InvalidArgument, "permute", "[0, 0, 1]",
                      "[2, 3, 4]");
  REQUIRE_PORTA_ERROR(g.permute(x, {1, 0}), ErrorCode::InvalidArgument, "permute", "[1, 0]");
  REQUIRE_PORTA_ERROR(g.permute(x, {0, 1, 3}), ErrorCode::InvalidArgument, "permute", "[0, 1, 3]");
  REQUIRE_PORTA_ERROR(g.slice(x, 3, 0, 1), ErrorCode::InvalidArgument, "slice", "axis 3");
  REQUIRE_PORTA_ERROR(g.slice(x, 0, 0, 1, 0), ErrorCode::InvalidArgument, "slice", "step");

  auto h = g.input("h", {2, 3, 4}, DType::F16);
  REQUIRE_PORTA_ERROR(g.concat({x, h}, 0), ErrorCode::DTypeMismatch, "concat", "f32[2, 3, 4]",
                      "f16[2, 3, 4]");
  auto other = g.input("other", {2, 5, 4}, DType::F32);
  REQUIRE_PORTA_ERROR(g.concat({x, other}, 0), ErrorCode::ShapeMismatch, "concat", "[2, 5, 4]");
  REQUIRE_PORTA_ERROR(g.concat({}, 0), ErrorCode::InvalidArgument, "concat");

  REQUIRE_PORTA_ERROR(g.top_k(x, 5), ErrorCode::InvalidArgument, "top_k", "'top_k_0'", "k = 5",
                      "[2, 3, 4]");
  REQUIRE_PORTA_ERROR(g.top_k(x, 0), ErrorCode::InvalidArgument, "top_k", "k = 0");
}

TEST_CASE("attention head errors", "[unit][graph]") {
  Graph g;
  auto q6 = g.input("q6", {2, 6, 8}, DType::F32);
  auto k4 = g.input("k4", {2, 4, 8}, DType::F32);
  auto v4 = g.input("v4", {2, 4, 8}, DType::F32);
  REQUIRE_PORTA_ERROR(g.attention(q6, k4, v4), ErrorCode::ShapeMismatch, "attention",
                      "'attention_0'", "6", "4", "[2, 6, 8]");

  auto q = g.input("q", {2, 4, 8}, DType::F32);
  auto k16 = g.input("k16", {2, 2, 16}, DType::F32);
  auto v16 = g.input("v16", {2, 2, 16}, DType::F32);
  REQUIRE_PORTA_ERROR(g.attention(q, k16, v16), ErrorCode::ShapeMismatch, "attention", "head", "8",
                      "16");

  auto k = g.input("k", {2, 2, 8}, DType::F32);
  auto v_short = g.input("v_short", {3, 2, 8}, DType::F32);
  REQUIRE_PORTA_ERROR(g.attention(q, k, v_short), ErrorCode::ShapeMismatch, "attention",
                      "[3, 2, 8]");
  // The cache form checks its extra inputs too.
  auto kc = g.input("kc", {16, 2, 8}, DType::F32);
  auto vc_wrong = g.input("vc_wrong", {16, 2, 4}, DType::F32);
  auto len = g.input("len", {1}, DType::I32);
  REQUIRE_PORTA_ERROR(g.attention(q, k, k, kc, vc_wrong, len), ErrorCode::ShapeMismatch,
                      "attention", "[16, 2, 4]");
  auto flen = g.input("flen", {1}, DType::F32);
  REQUIRE_PORTA_ERROR(g.attention(q, k, k, kc, kc, flen), ErrorCode::DTypeMismatch, "attention",
                      "flen");
}

TEST_CASE("moe_router attribute and operand errors", "[unit][graph][moe]") {
  Graph g;
  auto logits = g.input("logits", {3, 8}, DType::F32);
  REQUIRE_PORTA_ERROR(g.moe_router(logits, router(8, 9)), ErrorCode::InvalidArgument, "moe_router",
                      "'moe_router_0'", "top_k = 9", "[3, 8]");
  REQUIRE_PORTA_ERROR(g.moe_router(logits, router(8, 2, 3)), ErrorCode::InvalidArgument,
                      "moe_router", "num_groups 3");
  REQUIRE_PORTA_ERROR(g.moe_router(logits, router(8, 2, 2, 3)), ErrorCode::InvalidArgument,
                      "moe_router", "topk_groups 3");
  // 4 groups of 2, keeping 1 group: only 2 experts are eligible for K = 3.
  REQUIRE_PORTA_ERROR(g.moe_router(logits, router(8, 3, 4, 1)), ErrorCode::InvalidArgument,
                      "moe_router", "top_k 3");
  auto one_per_group = router(8, 2, 8, 4);
  one_per_group.group_score = porta::moe::GroupScore::Top2Sum;
  REQUIRE_PORTA_ERROR(g.moe_router(logits, one_per_group), ErrorCode::InvalidArgument, "moe_router",
                      "top2_sum");
  one_per_group.group_score = porta::moe::GroupScore::Max;
  CHECK(g.moe_router(logits, one_per_group).ids.shape() == porta::Shape{3, 2});  // fine with max

  auto with_bias = router(8, 2);
  with_bias.use_bias = true;
  auto bias7 = g.weight("bias7", Tensor::zeros({7}, DType::F32));
  REQUIRE_PORTA_ERROR(g.moe_router(logits, with_bias, bias7), ErrorCode::ShapeMismatch,
                      "moe_router", "bias7", "[7]", "[8]");
  REQUIRE_PORTA_ERROR(g.moe_router(logits, with_bias), ErrorCode::InvalidArgument, "moe_router",
                      "bias");

  auto logits3d = g.input("logits3d", {2, 3, 8}, DType::F32);
  REQUIRE_PORTA_ERROR(g.moe_router(logits3d, router(8, 2)), ErrorCode::ShapeMismatch, "moe_router",
                      "2-D", "[2, 3, 8]");
  REQUIRE_PORTA_ERROR(g.moe_router(logits, router(16, 2)), ErrorCode::ShapeMismatch, "moe_router",
                      "16");
  auto int_logits = g.input("int_logits", {3, 8}, DType::I32);
  REQUIRE_PORTA_ERROR(g.moe_router(int_logits, router(8, 2)), ErrorCode::DTypeMismatch,
                      "moe_router", "i32");
}

TEST_CASE("unknown attribute and op names list the accepted ones", "[unit][graph]") {
  REQUIRE_PORTA_ERROR(porta::moe::parse_score("bogus"), ErrorCode::InvalidArgument, "bogus",
                      "softmax", "sigmoid");
  REQUIRE_PORTA_ERROR(porta::moe::parse_select_on("bogus"), ErrorCode::InvalidArgument, "bogus",
                      "logit");
  REQUIRE_PORTA_ERROR(porta::moe::parse_group_score("bogus"), ErrorCode::InvalidArgument, "bogus",
                      "top2_sum");
  REQUIRE_PORTA_ERROR(porta::moe::parse_mode("bogus"), ErrorCode::InvalidArgument, "bogus",
                      "expert_choice");
  REQUIRE_PORTA_ERROR(porta::parse_rope_layout("bogus"), ErrorCode::InvalidArgument, "bogus",
                      "neox", "interleaved");
  REQUIRE_PORTA_ERROR(porta::parse_gelu_approximation("bogus"), ErrorCode::InvalidArgument, "bogus",
                      "tanh");
  REQUIRE_PORTA_ERROR(porta::parse_op("bogus"), ErrorCode::NotFound, "bogus", "matmul",
                      "moe_router");
  // And the known ones parse.
  CHECK(porta::moe::parse_score("sqrt_softplus") == porta::moe::Score::SqrtSoftplus);
  CHECK(porta::parse_rope_layout("interleaved") == porta::RopeLayout::Interleaved);
  CHECK(porta::parse_op("rms_norm") == porta::OpKind::RmsNorm);
  for (const auto& op : porta::all_ops()) CHECK(porta::parse_op(op.name) == op.kind);
}

TEST_CASE("values, inputs, names and outputs are checked", "[unit][graph]") {
  Graph g1;
  Graph g2;
  auto x1 = g1.input("x1", {2}, DType::F32);
  auto x2 = g2.input("x2", {2}, DType::F32);
  REQUIRE_PORTA_ERROR(g2.silu(x1), ErrorCode::InvalidArgument, "silu", "x1", "another graph");
  REQUIRE_PORTA_ERROR(x1 + x2, ErrorCode::InvalidArgument, "add", "different graphs");
  REQUIRE_PORTA_ERROR(g2.output("y", x1), ErrorCode::InvalidArgument, "x1", "another graph");

  REQUIRE_PORTA_ERROR(g1.input("x1", {3}, DType::F32), ErrorCode::InvalidArgument, "x1");
  REQUIRE_PORTA_ERROR(g1.input("neg", {2, -3}, DType::F32), ErrorCode::InvalidArgument, "neg",
                      "[2, -3]");

  auto a = g1.silu(x1);
  auto b = g1.exp(x1);
  g1.name(a, "act");
  CHECK(g1.node(a.info().producer).name == "act");
  CHECK(a.info().name == "act");
  REQUIRE_PORTA_ERROR(g1.name(b, "act"), ErrorCode::InvalidArgument, "act");
  CHECK(g1.node(b.info().producer).name == "exp_1");
  g1.name(a, "act");  // renaming to its own name is fine
  REQUIRE_PORTA_ERROR(g1.name(x1, "named_input"), ErrorCode::InvalidArgument, "x1");
  // The old default name is free again after a rename.
  g1.name(b, "silu_0");
  CHECK(g1.node(b.info().producer).name == "silu_0");

  REQUIRE_PORTA_ERROR(g1.output("y", Value{}), ErrorCode::InvalidArgument, "output", "empty");
  REQUIRE_PORTA_ERROR(g1.silu(Value{}), ErrorCode::InvalidArgument, "silu", "empty");
  REQUIRE_PORTA_ERROR(Value{} + x1, ErrorCode::InvalidArgument, "empty");
  REQUIRE_PORTA_ERROR(Value{}.shape(), ErrorCode::InvalidArgument, "empty");
  g1.output("y", a);
  REQUIRE_PORTA_ERROR(g1.output("y", b), ErrorCode::InvalidArgument, "'y'");

  REQUIRE_PORTA_ERROR(g1.add_op(porta::OpKind::Add, {x1}), ErrorCode::InvalidArgument, "add",
                      "2 inputs");
  REQUIRE_PORTA_ERROR(g1.add_op(porta::OpKind::Matmul, {x1, x1}, porta::AxisAttrs{}),
                      ErrorCode::InvalidArgument, "matmul", "attributes");
  REQUIRE_PORTA_ERROR(g1.node(99), ErrorCode::NotFound, "99");
  REQUIRE_PORTA_ERROR(g1.weight("undefined", Tensor()), ErrorCode::InvalidArgument, "undefined");
}

}  // namespace graph_error_tests
