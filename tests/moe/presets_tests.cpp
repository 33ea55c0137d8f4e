// The router presets against docs/moe-router.md's preset table, and attribute names.
#include <catch2/catch.hpp>

#include <porta/error.hpp>
#include <porta/moe.hpp>

namespace moe_presets_tests {

using namespace porta::moe;

namespace {
// Everything the preset table does not mention keeps its default.
void check_untabled_defaults(const RouterAttrs& a) {
  CHECK(a.select_on == SelectOn::Score);
  CHECK(a.mode == Mode::TokenChoice);
  CHECK(a.renorm_eps == 1e-20f);
  CHECK(a.block_size == 1);
}
}  // namespace

TEST_CASE("moe presets match the spec's table", "[moe]") {
  SECTION("deepseek_v2_lite") {
    const auto a = deepseek_v2_lite();
    CHECK(a.num_experts == 64);
    CHECK(a.top_k == 6);
    CHECK(a.score == Score::Softmax);
    CHECK(a.num_groups == 1);
    CHECK(a.topk_groups == 1);
    CHECK_FALSE(a.renormalize);
    CHECK(a.scale == 1.0f);
    CHECK_FALSE(a.use_bias);
    CHECK(a.capacity_factor == 0.0f);
    check_untabled_defaults(a);
  }
  SECTION("deepseek_v2") {
    const auto a = deepseek_v2();
    CHECK(a.num_experts == 160);
    CHECK(a.top_k == 6);
    CHECK(a.score == Score::Softmax);
    CHECK(a.num_groups == 8);
    CHECK(a.topk_groups == 3);
    CHECK(a.group_score == GroupScore::Max);
    CHECK_FALSE(a.renormalize);
    CHECK(a.scale == 16.0f);
    CHECK_FALSE(a.use_bias);
    CHECK(a.capacity_factor == 0.0f);
    check_untabled_defaults(a);
  }
  SECTION("deepseek_v3") {
    const auto a = deepseek_v3();
    CHECK(a.num_experts == 256);
    CHECK(a.top_k == 8);
    CHECK(a.score == Score::Sigmoid);
    CHECK(a.num_groups == 8);
    CHECK(a.topk_groups == 4);
    CHECK(a.group_score == GroupScore::Top2Sum);
    CHECK(a.renormalize);
    CHECK(a.scale == 2.5f);
    CHECK(a.use_bias);
    CHECK(a.capacity_factor == 0.0f);
    check_untabled_defaults(a);
  }
  SECTION("mixtral and qwen3_moe renormalize softmax top-k") {
    for (const auto& [a, e, k] : {std::tuple{mixtral(), 8, 2}, std::tuple{qwen3_moe(), 128, 8}}) {
      CHECK(a.num_experts == e);
      CHECK(a.top_k == k);
      CHECK(a.score == Score::Softmax);
      CHECK(a.num_groups == 1);
      CHECK(a.renormalize);
      CHECK(a.scale == 1.0f);
      CHECK_FALSE(a.use_bias);
      check_untabled_defaults(a);
    }
  }
  SECTION("qwen2_moe and olmoe do not renormalize") {
    for (const auto& [a, e, k] : {std::tuple{qwen2_moe(), 60, 4}, std::tuple{olmoe(), 64, 8}}) {
      CHECK(a.num_experts == e);
      CHECK(a.top_k == k);
      CHECK(a.score == Score::Softmax);
      CHECK(a.num_groups == 1);
      CHECK_FALSE(a.renormalize);
      CHECK(a.scale == 1.0f);
      CHECK_FALSE(a.use_bias);
      check_untabled_defaults(a);
    }
  }
  SECTION("switch_capacity is softmax top-1 with a capacity") {
    const auto a = switch_capacity(1.25f);
    CHECK(a.num_experts == 128);
    CHECK(a.top_k == 1);
    CHECK(a.score == Score::Softmax);
    CHECK(a.num_groups == 1);
    CHECK_FALSE(a.renormalize);
    CHECK(a.scale == 1.0f);
    CHECK(a.capacity_factor == 1.25f);
    check_untabled_defaults(a);
  }
  SECTION("E and K are the caller's") {
    CHECK(deepseek_v3(64, 6).num_experts == 64);
    CHECK(deepseek_v3(64, 6).top_k == 6);
    CHECK(switch_capacity(2.0f, 16).num_experts == 16);
  }
}

TEST_CASE("moe attribute names parse and print both ways", "[moe]") {
  CHECK(parse_score("softmax") == Score::Softmax);
  CHECK(parse_score("sigmoid") == Score::Sigmoid);
  CHECK(parse_score("sqrt_softplus") == Score::SqrtSoftplus);
  CHECK(parse_score("identity") == Score::Identity);
  CHECK(parse_select_on("score") == SelectOn::Score);
  CHECK(parse_select_on("logit") == SelectOn::Logit);
  CHECK(parse_group_score("max") == GroupScore::Max);
  CHECK(parse_group_score("top2_sum") == GroupScore::Top2Sum);
  CHECK(parse_mode("token_choice") == Mode::TokenChoice);
  CHECK(parse_mode("hash") == Mode::Hash);
  CHECK(parse_mode("expert_choice") == Mode::ExpertChoice);

  CHECK(to_string(Score::SqrtSoftplus) == "sqrt_softplus");
  CHECK(to_string(Score::Identity) == "identity");
  CHECK(to_string(SelectOn::Logit) == "logit");
  CHECK(to_string(GroupScore::Top2Sum) == "top2_sum");
  CHECK(to_string(Mode::ExpertChoice) == "expert_choice");
  for (auto s : {Score::Softmax, Score::Sigmoid, Score::SqrtSoftplus, Score::Identity})
    CHECK(parse_score(to_string(s)) == s);
  for (auto m : {Mode::TokenChoice, Mode::Hash, Mode::ExpertChoice})
    CHECK(parse_mode(to_string(m)) == m);
}

TEST_CASE("moe unknown attribute names throw InvalidArgument listing the accepted ones", "[moe]") {
  const auto expect_rejected = [](auto parse, const char* name, const char* accepted) {
    try {
      (void)parse(name);
      FAIL("accepted " << name);
    } catch (const porta::Error& e) {
      CHECK(e.code() == porta::ErrorCode::InvalidArgument);
      CHECK_THAT(e.what(), Catch::Contains(name) && Catch::Contains(accepted));
    }
  };
  expect_rejected(parse_score, "Softmax", "softmax, sigmoid, sqrt_softplus, identity");
  expect_rejected(parse_select_on, "logits", "score, logit");
  expect_rejected(parse_group_score, "top2", "max, top2_sum");
  expect_rejected(parse_mode, "", "token_choice, hash, expert_choice");
}

}  // namespace moe_presets_tests
