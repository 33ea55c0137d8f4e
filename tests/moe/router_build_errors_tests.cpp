// Every build-time error of docs/moe-router.md (and of the inputs hash mode, expert choice and
// the valid mask add): a porta::Error with the right code naming what was wrong, never a crash.
#include <catch2/catch.hpp>

#include "moe/moe_test_support.hpp"
#include "core/error_check.hpp"

namespace moe_router_build_errors_tests {

using porta::DType;
using porta::ErrorCode;
using porta::Graph;
using porta::moe::GroupScore;
using porta::moe::Mode;
using porta::moe::RouterAttrs;
using porta::moe::Score;

namespace {
RouterAttrs attrs(std::int64_t e, std::int64_t k, std::int64_t g = 1, std::int64_t tg = 1) {
  RouterAttrs a = porta_moe_test::router(e, k, Score::Softmax);
  a.num_groups = g;
  a.topk_groups = tg;
  return a;
}
}  // namespace

TEST_CASE("moe router build-time errors of the spec", "[moe]") {
  Graph g;
  auto logits = g.input("logits", {5, 8}, DType::F32);
  SECTION("K > E, and K < 1") {
    REQUIRE_PORTA_ERROR(g.moe_router(logits, attrs(8, 9)), ErrorCode::InvalidArgument, "moe_router",
                        "top_k = 9");
    REQUIRE_PORTA_ERROR(g.moe_router(logits, attrs(8, 0)), ErrorCode::InvalidArgument, "top_k = 0");
  }
  SECTION("E not divisible by G") {
    REQUIRE_PORTA_ERROR(g.moe_router(logits, attrs(8, 2, 3)), ErrorCode::InvalidArgument,
                        "not divisible by num_groups 3");
  }
  SECTION("TG > G") {
    REQUIRE_PORTA_ERROR(g.moe_router(logits, attrs(8, 2, 4, 5)), ErrorCode::InvalidArgument,
                        "topk_groups 5");
  }
  SECTION("K > TG · E / G") {
    REQUIRE_PORTA_ERROR(g.moe_router(logits, attrs(8, 5, 4, 2)), ErrorCode::InvalidArgument,
                        "top_k 5 exceeds the 4 experts of the 2 kept groups");
  }
  SECTION("top2_sum with E / G < 2") {
    auto a = attrs(8, 2, 8, 2);
    a.group_score = GroupScore::Top2Sum;
    REQUIRE_PORTA_ERROR(g.moe_router(logits, a), ErrorCode::InvalidArgument, "top2_sum");
  }
  SECTION("logits not 2-D, or not matching E, or not floating point") {
    REQUIRE_PORTA_ERROR(g.moe_router(g.input("l3", {2, 5, 8}, DType::F32), attrs(8, 2)),
                        ErrorCode::ShapeMismatch, "2-D", "[2, 5, 8]");
    REQUIRE_PORTA_ERROR(g.moe_router(logits, attrs(16, 2)), ErrorCode::ShapeMismatch,
                        "8 columns but num_experts is 16");
    REQUIRE_PORTA_ERROR(g.moe_router(g.input("li", {5, 8}, DType::I32), attrs(8, 2)),
                        ErrorCode::DTypeMismatch, "f32, f16 or bf16");
  }
  SECTION("bias of the wrong length, dtype, or missing") {
    auto a = attrs(8, 2);
    a.use_bias = true;
    REQUIRE_PORTA_ERROR(g.moe_router(logits, a, g.input("b7", {7}, DType::F32)),
                        ErrorCode::ShapeMismatch, "bias must have shape [8]");
    REQUIRE_PORTA_ERROR(g.moe_router(logits, a, g.input("bh", {8}, DType::BF16)),
                        ErrorCode::DTypeMismatch, "f32");
    REQUIRE_PORTA_ERROR(g.moe_router(logits, a), ErrorCode::InvalidArgument, "bias");
    REQUIRE_PORTA_ERROR(g.moe_router(logits, attrs(8, 2), g.input("b8", {8}, DType::F32)),
                        ErrorCode::InvalidArgument, "use_bias");
  }
  SECTION("a preset that needs a bias, built without one, names the preset and the bias") {
    auto wide = g.input("logits256", {5, 256}, DType::F32);
    REQUIRE_PORTA_ERROR(g.moe_router(wide, porta::moe::deepseek_v3()), ErrorCode::InvalidArgument,
                        "deepseek_v3 preset", "bias", "[256] f32");
  }
  SECTION("an unknown attribute value") {
    auto a = attrs(8, 2);
    a.score = static_cast<Score>(9);
    REQUIRE_PORTA_ERROR(g.moe_router(logits, a), ErrorCode::InvalidArgument, "unknown score");
    a = attrs(8, 2);
    a.mode = static_cast<Mode>(3);
    REQUIRE_PORTA_ERROR(g.moe_router(logits, a), ErrorCode::InvalidArgument, "unknown mode");
    a = attrs(8, 2);
    a.group_score = static_cast<GroupScore>(2);
    REQUIRE_PORTA_ERROR(g.moe_router(logits, a), ErrorCode::InvalidArgument, "unknown group_score");
    a = attrs(8, 2);
    a.select_on = static_cast<porta::moe::SelectOn>(5);
    REQUIRE_PORTA_ERROR(g.moe_router(logits, a), ErrorCode::InvalidArgument, "unknown select_on");
  }
  SECTION("negative eps or capacity, block size below 1") {
    auto a = attrs(8, 2);
    a.capacity_factor = -1;
    REQUIRE_PORTA_ERROR(g.moe_router(logits, a), ErrorCode::InvalidArgument, "capacity_factor");
    a = attrs(8, 2);
    a.block_size = 0;
    REQUIRE_PORTA_ERROR(g.moe_router(logits, a), ErrorCode::InvalidArgument, "block_size");
    a = attrs(8, 2);
    a.renorm_eps = -1e-9f;
    REQUIRE_PORTA_ERROR(g.moe_router(logits, a), ErrorCode::InvalidArgument, "renorm_eps");
  }
}

TEST_CASE("moe router build-time errors of the valid mask, hash and expert-choice inputs",
          "[moe]") {
  Graph g;
  auto logits = g.input("logits", {5, 8}, DType::F32);
  SECTION("valid mask") {
    auto a = attrs(8, 2);
    a.use_valid = true;
    porta::MoeRouterInputs in{logits, {}, g.input("v4", {4}, DType::I32), {}, {}};
    REQUIRE_PORTA_ERROR(g.moe_router(in, a), ErrorCode::ShapeMismatch, "valid must have shape [5]");
    in.valid = g.input("vf", {5}, DType::F32);
    REQUIRE_PORTA_ERROR(g.moe_router(in, a), ErrorCode::DTypeMismatch, "valid must be i8");
    in.valid.reset();
    REQUIRE_PORTA_ERROR(g.moe_router(in, a), ErrorCode::InvalidArgument, "valid");
    in.valid = g.input("v5", {5}, DType::I8);
    CHECK(g.moe_router(in, a).ids.shape() == porta::Shape{5, 2});
  }
  SECTION("hash mode") {
    auto a = attrs(8, 2);
    a.mode = Mode::Hash;
    porta::MoeRouterInputs in{
        logits, {}, {}, g.input("tok", {5}, DType::I64), g.input("table", {100, 2}, DType::I32)};
    CHECK(g.moe_router(in, a).ids.shape() == porta::Shape{5, 2});
    REQUIRE_PORTA_ERROR(g.moe_router(logits, a), ErrorCode::InvalidArgument, "token_ids",
                        "hash_table");
    in.hash_table = g.input("table3", {100, 3}, DType::I32);
    REQUIRE_PORTA_ERROR(g.moe_router(in, a), ErrorCode::ShapeMismatch, "hash_table must be [V, 2]");
    in.hash_table = g.input("table_f", {100, 2}, DType::F32);
    REQUIRE_PORTA_ERROR(g.moe_router(in, a), ErrorCode::DTypeMismatch, "i32");
    in.hash_table = g.input("table2", {100, 2}, DType::I32);
    in.token_ids = g.input("tok4", {4}, DType::I32);
    REQUIRE_PORTA_ERROR(g.moe_router(in, a), ErrorCode::ShapeMismatch, "token_ids must have shape");
    in.token_ids = g.input("tok_f", {5}, DType::F32);
    REQUIRE_PORTA_ERROR(g.moe_router(in, a), ErrorCode::DTypeMismatch, "i32 or i64");
    in.token_ids = g.input("tok5", {5}, DType::I32);
    auto grouped = attrs(8, 2, 2, 1);
    grouped.mode = Mode::Hash;
    REQUIRE_PORTA_ERROR(g.moe_router(in, grouped), ErrorCode::InvalidArgument, "token_choice");
    auto biased = a;
    biased.use_bias = true;
    in.bias = g.input("bias", {8}, DType::F32);
    REQUIRE_PORTA_ERROR(g.moe_router(in, biased), ErrorCode::InvalidArgument,
                        "no effect in mode hash");
  }
  SECTION("expert choice") {
    auto a = attrs(8, 2, 2, 1);
    a.mode = Mode::ExpertChoice;
    REQUIRE_PORTA_ERROR(g.moe_router(logits, a), ErrorCode::InvalidArgument, "num_groups 2");
    a = attrs(8, 2);
    a.mode = Mode::ExpertChoice;
    a.use_bias = true;
    REQUIRE_PORTA_ERROR(g.moe_router(logits, a, g.input("bias", {8}, DType::F32)),
                        ErrorCode::InvalidArgument, "no effect in mode expert_choice");
  }
}

}  // namespace moe_router_build_errors_tests
