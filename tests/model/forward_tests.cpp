// Every family's forward pass against the plain-loop re-implementation of its Hugging Face code:
// layer by layer (attention block, MLP/MoE block) and the whole model's logits.
#include <catch2/catch.hpp>

#include "model/model_test_support.hpp"

namespace porta::test::model_forward_tests {
namespace {

// FP8 weights stay f8_e4m3 in the model (quantized matmuls, f32 accumulation of the exact
// dequantised values); the plain loops use the same values dequantised in f32.
void check_against_reference(const std::string& kind, bool fp8 = false) {
  const TinyModel tiny = tiny_model(kind, 11, DType::BF16, fp8);
  const model::Model m = load(tiny, {.fp8_dtype = DType::F32});
  const auto ids = prompt_ids();
  const auto t = static_cast<std::int64_t>(ids.size());

  std::vector<Mat> ref_attn, ref_mlp;
  const HfReference ref(tiny.config_json, tiny.tensors);
  const Mat ref_logits = ref.forward(ids, &ref_attn, &ref_mlp);

  std::vector<std::int32_t> positions(ids.size());
  for (std::size_t i = 0; i < positions.size(); ++i) positions[i] = static_cast<std::int32_t>(i);
  const auto run = [&](const Graph& g) {
    Executable exe = compile(g);
    return exe.run({{model::kIdsInput, Tensor::from_vector<std::int32_t>(
                                           {t}, std::vector<std::int32_t>(ids.begin(), ids.end()))},
                    {model::kPositionsInput, Tensor::from_vector<std::int32_t>({t}, positions)}});
  };
  // Block outputs keep every row through every layer.
  auto out = run(m.build({.tokens = t, .all_logits = true, .block_outputs = true}));

  for (std::int64_t l = 0; l < tiny.config.num_layers; ++l) {
    const auto attn = out.at(fmt::format("layer.{}.attention", l)).to_f32();
    const auto mlp = out.at(fmt::format("layer.{}.mlp", l)).to_f32();
    const double attn_diff = max_abs_diff(attn, ref_attn[static_cast<std::size_t>(l)]);
    const double mlp_diff = max_abs_diff(mlp, ref_mlp[static_cast<std::size_t>(l)]);
    INFO(kind << " layer " << l << (tiny.config.is_moe_layer(l) ? " (MoE)" : " (dense)")
              << ": attention max |diff| " << attn_diff << " of max |value| "
              << max_abs(ref_attn[static_cast<std::size_t>(l)]) << ", mlp max |diff| " << mlp_diff
              << " of " << max_abs(ref_mlp[static_cast<std::size_t>(l)]));
    CHECK(attn_diff < 1e-4 * std::max(1.0, max_abs(ref_attn[static_cast<std::size_t>(l)])));
    CHECK(mlp_diff < 1e-4 * std::max(1.0, max_abs(ref_mlp[static_cast<std::size_t>(l)])));
  }
  const auto logits = out.at(model::kLogitsOutput);
  REQUIRE(logits.shape() == Shape{t, tiny.config.vocab_size});
  const double diff = max_abs_diff(logits.to_f32(), ref_logits);
  INFO(kind << " logits: max |diff| " << diff << " of max |logit| " << max_abs(ref_logits));
  CHECK(max_abs(ref_logits) > 0.5);  // the model is not degenerate
  CHECK(diff < 1e-4 * std::max(1.0, max_abs(ref_logits)));

  // Without them, the last layer's feed-forward block runs the last position on its own (and,
  // for every position's logits, the others beside it): the same logits.
  const auto vocab = static_cast<std::size_t>(tiny.config.vocab_size);
  const Mat ref_last(ref_logits.end() - static_cast<std::ptrdiff_t>(vocab), ref_logits.end());
  const Graph pruned = m.build({.tokens = t, .all_logits = false});
  const auto last = run(pruned).at(model::kLogitsOutput);
  REQUIRE(last.shape() == Shape{1, tiny.config.vocab_size});
  CHECK(max_abs_diff(last.to_f32(), ref_last) < 1e-4 * std::max(1.0, max_abs(ref_logits)));
  const auto all = run(m.build({.tokens = t, .all_logits = true})).at(model::kLogitsOutput);
  REQUIRE(all.shape() == Shape{t, tiny.config.vocab_size});
  CHECK(max_abs_diff(all.to_f32(), ref_logits) < 1e-4 * std::max(1.0, max_abs(ref_logits)));
  // Each MoE layer's router sees all T positions but the last layer's, which sees one.
  std::vector<std::int64_t> router_rows;
  for (const Node& node : pruned.nodes())
    if (node.op == OpKind::MoeRouter) router_rows.push_back(pruned.value(node.inputs[0]).shape[0]);
  std::vector<std::int64_t> expected_rows;
  for (std::int64_t l = 0; l < tiny.config.num_layers; ++l)
    if (tiny.config.is_moe_layer(l))
      expected_rows.push_back(l + 1 < tiny.config.num_layers ? t : 1);
  CHECK(router_rows == expected_rows);
}

TEST_CASE("DeepSeek-V3-like model matches the plain-loop HF implementation layer by layer",
          "[model]") {
  check_against_reference("deepseek_v3");
}

TEST_CASE("DeepSeek-V2-like model (no q_lora, group-limited softmax) matches the HF loops",
          "[model]") {
  check_against_reference("deepseek_v2");
}

TEST_CASE("Mixtral-like model matches the HF loops", "[model]") {
  check_against_reference("mixtral");
}

TEST_CASE("Qwen2-MoE-like model (qkv bias, gated shared expert) matches the HF loops", "[model]") {
  check_against_reference("qwen2_moe");
}

TEST_CASE("Qwen3-MoE-like model (q_norm/k_norm, head_dim key) matches the HF loops", "[model]") {
  check_against_reference("qwen3_moe");
}

TEST_CASE("An FP8 DeepSeek-V3-like checkpoint matches the HF loops on its dequantised weights",
          "[model]") {
  check_against_reference("deepseek_v3", true);
}

TEST_CASE("FP8 weights dequantised to bf16 stay within bf16 rounding of the f32 dequantisation",
          "[model]") {
  const TinyModel tiny = tiny_model("deepseek_v3", 11, DType::BF16, true);
  const model::Model as_f32 = load(tiny, {.dequantize = true, .fp8_dtype = DType::F32});
  const model::Model as_bf16 = load(tiny, {.dequantize = true, .fp8_dtype = DType::BF16});
  const std::string name = "model.layers.1.self_attn.q_b_proj.weight";
  CHECK(as_f32.weight(name).dtype() == DType::F32);
  REQUIRE(as_bf16.weight(name).dtype() == DType::BF16);
  const auto a = as_f32.weight(name).to_f32();
  const auto b = as_bf16.weight(name).to_f32();
  for (std::size_t i = 0; i < a.size(); ++i) REQUIRE(b[i] == BFloat16::from_float(a[i]).to_float());
  CHECK(as_bf16.stats().dequantized_bytes * 2 == as_f32.stats().dequantized_bytes);
  // The two models' logits differ by no more than the weights' rounding can explain.
  const auto la = porta_logits(as_f32, prompt_ids()).to_f32();
  const auto lb = porta_logits(as_bf16, prompt_ids()).to_f32();
  double d = 0;
  for (std::size_t i = 0; i < la.size(); ++i) d = std::max(d, double(std::fabs(la[i] - lb[i])));
  CHECK(d > 0);
  CHECK(d < 0.1);
}

TEST_CASE("Routers the configs imply", "[model]") {
  const auto v3 = model::parse_config(model::tiny_config_json("deepseek_v3"));
  CHECK(v3.router.score == moe::Score::Sigmoid);
  CHECK(v3.router.group_score == moe::GroupScore::Top2Sum);
  CHECK(v3.router.use_bias);
  CHECK(v3.router.num_groups == 4);
  CHECK(v3.router.topk_groups == 2);
  CHECK(v3.router.renormalize);
  CHECK(v3.router.scale == Approx(2.5f));
  const auto v2 = model::parse_config(model::tiny_config_json("deepseek_v2"));
  CHECK(v2.router.score == moe::Score::Softmax);
  CHECK(v2.router.group_score == moe::GroupScore::Max);
  CHECK_FALSE(v2.router.use_bias);
  CHECK_FALSE(v2.router.renormalize);
  CHECK(v2.router.scale == Approx(1.5f));
  CHECK_FALSE(v2.is_moe_layer(0));
  CHECK(v2.is_moe_layer(1));
  CHECK(v2.q_lora_rank == 0);
  // DeepSeek-V2 with norm_topk_prob: renormalised and then not scaled (modeling_deepseek V2).
  auto text = model::tiny_config_json("deepseek_v2");
  text.replace(text.find("\"norm_topk_prob\": false"), 23, "\"norm_topk_prob\": true");
  const auto v2n = model::parse_config(text);
  CHECK(v2n.router.renormalize);
  CHECK(v2n.router.scale == 1.0f);
  const auto q2 = model::parse_config(model::tiny_config_json("qwen2_moe"));
  CHECK(q2.shared_expert_gated);
  CHECK_FALSE(q2.is_moe_layer(1));  // mlp_only_layers
  CHECK(q2.attention_bias);
  const auto mx = model::parse_config(model::tiny_config_json("mixtral"));
  CHECK(mx.router.renormalize);
  CHECK(mx.head_dim == 16);
  // YaRN's mscale correction of the softmax scale (mscale_all_dim 1.0, factor 4).
  const float m = 0.1f * std::log(4.0f) + 1.0f;
  CHECK(v3.attention_scale() == Approx(m * m / std::sqrt(24.0f)).epsilon(1e-6));
}

}  // namespace
}  // namespace porta::test::model_forward_tests
