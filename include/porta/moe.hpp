// Attributes of porta's Mixture-of-Experts ops and the presets of real checkpoints.
//
// The router covers every routing variant of DeepSeek-V2/V3, Mixtral, Qwen-MoE, OLMoE and Switch
// with one op and exact semantics; docs/moe-router.md is the specification. The presets return the attributes each model family uses, so
// `g.moe_router(logits, porta::moe::deepseek_v3())` routes as DeepSeek-V3 does.
#pragma once

#include <porta/config.hpp>

#include <cstdint>
#include <string_view>

PORTA_API_BEGIN
namespace porta::moe {

enum class Score { Softmax, Sigmoid, SqrtSoftplus, Identity };
enum class SelectOn { Score, Logit };
enum class GroupScore { Max, Top2Sum };
// token_choice: each token picks its K experts. hash: each token's experts are a fixed table's row
// for its token id (Hash Layers). expert_choice: each expert picks its C best tokens, so a token
// gets 0..E experts and every token has E assignment slots (see slots_per_token).
enum class Mode { TokenChoice, Hash, ExpertChoice };

struct RouterAttrs {
  std::int64_t num_experts = 0;  // E
  std::int64_t top_k = 1;        // K
  Score score = Score::Softmax;
  SelectOn select_on = SelectOn::Score;
  std::int64_t num_groups = 1;   // G
  std::int64_t topk_groups = 1;  // TG
  GroupScore group_score = GroupScore::Max;
  Mode mode = Mode::TokenChoice;
  bool renormalize = false;
  float renorm_eps = 1e-20f;
  float scale = 1.0f;
  float capacity_factor = 0.0f;  // 0: no capacity limit
  std::int64_t block_size = 1;   // pad each expert's block of `perm` to a multiple of this
  bool use_bias = false;         // a selection bias input [E] is expected (DeepSeek-V3)
  bool use_valid = false;        // a valid-row mask input [T] is expected (0 marks padding)
  friend bool operator==(const RouterAttrs&, const RouterAttrs&) = default;
};

// The router's inputs, in node order: logits [T, E]; bias [E] f32 when use_bias; valid [T]
// (i8, i32 or i64; 0 = padding row) when use_valid; token_ids [T] (i32 or i64) and
// hash_table [V, K] (i32) in hash mode. Graph::moe_router takes them by name (MoeRouterInputs).

// Assignment slots per token: top_k, or num_experts in expert-choice mode (ids, weights are
// [T, slots], inv is [T * slots], assignment a = t * slots + k).
std::int64_t slots_per_token(const RouterAttrs& attrs);
// Slots per expert for `tokens` (valid) rows: C = ceil(capacity_factor * T * K / E), at most T * K
// (token choice) or T (expert choice, where a factor of 0 means 1). -1 when unlimited.
std::int64_t expert_capacity(const RouterAttrs& attrs, std::int64_t tokens);
// Rows of `perm` (and of moe_permute's output) for T = `tokens` rows: every assignment that can be
// kept, plus room to pad each expert's block to a multiple of block_size.
std::int64_t perm_rows(const RouterAttrs& attrs, std::int64_t tokens);

// Presets. E and K are the model's; the rest is what the family's reference code does.
RouterAttrs deepseek_v2_lite(std::int64_t num_experts = 64, std::int64_t top_k = 6);
RouterAttrs deepseek_v2(std::int64_t num_experts = 160, std::int64_t top_k = 6);
RouterAttrs deepseek_v3(std::int64_t num_experts = 256, std::int64_t top_k = 8);
RouterAttrs mixtral(std::int64_t num_experts = 8, std::int64_t top_k = 2);
RouterAttrs qwen2_moe(std::int64_t num_experts = 60, std::int64_t top_k = 4);
RouterAttrs qwen3_moe(std::int64_t num_experts = 128, std::int64_t top_k = 8);
RouterAttrs olmoe(std::int64_t num_experts = 64, std::int64_t top_k = 8);
RouterAttrs switch_capacity(float capacity_factor, std::int64_t num_experts = 128);

// Attribute values from their names in configs and on the command line ("softmax", "sigmoid",
// "sqrt_softplus", "identity"; "score", "logit"; "max", "top2_sum"; "token_choice", "hash",
// "expert_choice"). Unknown names throw porta::Error listing the accepted ones.
Score parse_score(std::string_view name);
SelectOn parse_select_on(std::string_view name);
GroupScore parse_group_score(std::string_view name);
Mode parse_mode(std::string_view name);
std::string_view to_string(Score value) noexcept;
std::string_view to_string(SelectOn value) noexcept;
std::string_view to_string(GroupScore value) noexcept;
std::string_view to_string(Mode value) noexcept;

// How shared experts of moe_experts are gated.
enum class SharedGate { None, Sigmoid };

struct ExpertsAttrs {
  bool has_shared = false;
  SharedGate shared_gate = SharedGate::None;  // Qwen2-MoE: sigmoid(x · w_gate_shared)
  friend bool operator==(const ExpertsAttrs&, const ExpertsAttrs&) = default;
};

}  // namespace porta::moe
PORTA_API_END
