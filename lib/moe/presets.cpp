// Router presets of real checkpoints: the values of docs/moe-router.md's preset table, which
// follow each family's reference modelling code (DeepSeek's modeling_deepseek.py, Hugging Face's
// Mixtral / Qwen-MoE / OLMoE blocks, Switch Transformer's capacity routing).
#include <porta/moe.hpp>

namespace porta::moe {
namespace {

// Plain softmax top-k: the shape every family starts from.
RouterAttrs softmax_top_k(std::int64_t num_experts, std::int64_t top_k, bool renormalize) {
  RouterAttrs a;
  a.num_experts = num_experts;
  a.top_k = top_k;
  a.score = Score::Softmax;
  a.renormalize = renormalize;
  return a;
}

}  // namespace

RouterAttrs deepseek_v2_lite(std::int64_t num_experts, std::int64_t top_k) {
  return softmax_top_k(num_experts, top_k, /*renormalize=*/false);
}

RouterAttrs deepseek_v2(std::int64_t num_experts, std::int64_t top_k) {
  RouterAttrs a = softmax_top_k(num_experts, top_k, /*renormalize=*/false);
  a.num_groups = 8;
  a.topk_groups = 3;
  a.group_score = GroupScore::Max;
  a.scale = 16.0f;
  return a;
}

RouterAttrs deepseek_v3(std::int64_t num_experts, std::int64_t top_k) {
  RouterAttrs a;
  a.num_experts = num_experts;
  a.top_k = top_k;
  a.score = Score::Sigmoid;
  a.num_groups = 8;
  a.topk_groups = 4;
  a.group_score = GroupScore::Top2Sum;
  a.renormalize = true;
  a.scale = 2.5f;
  a.use_bias = true;  // e_score_correction_bias
  return a;
}

RouterAttrs mixtral(std::int64_t num_experts, std::int64_t top_k) {
  return softmax_top_k(num_experts, top_k, /*renormalize=*/true);
}

RouterAttrs qwen2_moe(std::int64_t num_experts, std::int64_t top_k) {
  return softmax_top_k(num_experts, top_k, /*renormalize=*/false);
}

RouterAttrs qwen3_moe(std::int64_t num_experts, std::int64_t top_k) {
  return softmax_top_k(num_experts, top_k, /*renormalize=*/true);
}

RouterAttrs olmoe(std::int64_t num_experts, std::int64_t top_k) {
  return softmax_top_k(num_experts, top_k, /*renormalize=*/false);
}

RouterAttrs switch_capacity(float capacity_factor, std::int64_t num_experts) {
  RouterAttrs a = softmax_top_k(num_experts, /*top_k=*/1, /*renormalize=*/false);
  a.capacity_factor = capacity_factor;
  return a;
}

}  // namespace porta::moe
