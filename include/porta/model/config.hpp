// ModelConfig: what a Hugging Face config.json says about a Mixture-of-Experts transformer, in
// the terms porta's model builder needs.
//
// parse_config() reads the config.json of deepseek_v2, deepseek_v3, mixtral, qwen2_moe and
// qwen3_moe checkpoints, applies each family's defaults the way its Hugging Face modelling code
// does, derives the router attributes the config implies (scoring_func, topk_method, n_group,
// topk_group, norm_topk_prob, routed_scaling_factor) and checks every value it uses: a missing,
// mistyped or out-of-range key is a porta::Error naming the key.
#pragma once

#include <porta/config.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <porta/moe.hpp>
#include <porta/ops.hpp>

PORTA_API_BEGIN
namespace porta::model {

enum class Family { DeepseekV2, DeepseekV3, Mixtral, Qwen2Moe, Qwen3Moe };

// "deepseek_v2", "deepseek_v3", "mixtral", "qwen2_moe", "qwen3_moe"
std::string_view family_name(Family family) noexcept;

struct ModelConfig {
  std::string model_type;
  Family family = Family::DeepseekV3;

  std::int64_t vocab_size = 0;
  std::int64_t hidden_size = 0;
  std::int64_t num_layers = 0;
  std::int64_t num_heads = 0;
  std::int64_t num_kv_heads = 0;       // standard attention (GQA); MLA ignores it
  std::int64_t head_dim = 0;           // standard attention
  std::int64_t intermediate_size = 0;  // the dense MLP's
  float rms_norm_eps = 1e-6f;
  std::int64_t max_position_embeddings = 0;
  bool tie_word_embeddings = false;
  std::optional<std::int64_t> sliding_window;  // Mixtral/Qwen: not applied (see docs/models.md)

  // Rotary embedding. The layout follows the family (interleaved for MLA's q_pe/k_pe).
  RopeAttrs rope;

  // Multi-head latent attention (DeepSeek-V2/V3).
  bool mla = false;
  std::int64_t q_lora_rank = 0;  // 0: q_proj is one matrix (V2-Lite)
  std::int64_t kv_lora_rank = 0;
  std::int64_t qk_nope_head_dim = 0;
  std::int64_t qk_rope_head_dim = 0;
  std::int64_t v_head_dim = 0;

  bool attention_bias = false;  // q/k/v projections carry a bias (Qwen2-MoE)
  bool qk_norm = false;         // per-head RMSNorm of q and k before rope (Qwen3-MoE)

  // Mixture of experts.
  std::int64_t num_experts = 0;  // routed experts per MoE layer (0: a dense model)
  std::int64_t top_k = 0;
  std::int64_t moe_intermediate_size = 0;
  std::int64_t shared_intermediate_size = 0;  // 0: no shared experts
  bool shared_expert_gated = false;           // Qwen2-MoE's sigmoid shared_expert_gate
  std::int64_t first_k_dense_replace = 0;     // DeepSeek: layers before this one are dense
  std::int64_t moe_layer_freq = 1;            // DeepSeek
  std::int64_t decoder_sparse_step = 1;       // Qwen-MoE
  std::vector<std::int64_t> mlp_only_layers;  // Qwen-MoE
  moe::RouterAttrs router;
  // The V2 rule scales the weights only when they are not renormalised; V3 always scales.
  // Both are folded into `router` already; kept for reports.
  std::string topk_method;
  std::string scoring_func;

  // FP8 block quantisation (quantization_config.weight_block_size), empty when not quantised.
  std::optional<std::pair<std::int64_t, std::int64_t>> fp8_block;
  // quantization_config.quant_method ("fp8" or "compressed-tensors"; empty when absent) and the
  // whole object as JSON text, which the loader's format readers parse (docs/quantized-checkpoints.md).
  std::string quant_method;
  std::string quantization_config;

  bool is_moe_layer(std::int64_t layer) const;
  // The query head size the attention scores are computed with (MLA: nope + rope).
  std::int64_t query_head_dim() const {
    return mla ? qk_nope_head_dim + qk_rope_head_dim : head_dim;
  }
  // The softmax scale: 1/sqrt(query_head_dim), times mscale² when YaRN's mscale_all_dim is set.
  float attention_scale() const;
};

// Parses config.json text; `source` names the file in error messages.
ModelConfig parse_config(const std::string& json_text, const std::string& source = "config.json");
// Reads DIR/config.json (or the file itself when `path` is a file).
ModelConfig load_config(const std::string& path);

// YaRN's attention-magnitude factor: 1 for scale <= 1, else 0.1 · mscale · ln(scale) + 1.
float yarn_mscale(float scale, float mscale);

}  // namespace porta::model
PORTA_API_END
