// Hugging Face <-> GGUF tensor names, after llama.cpp's gguf-py tensor_mapping and
// convert_hf_to_gguf.py (see docs/gguf.md for the table).
#include "model/gguf_names.hpp"

#include <charconv>
#include <cstring>
#include <utility>

#include <fmt/format.h>

#include <porta/error.hpp>

namespace porta::model::detail {

namespace {

// Per-layer suffixes that map one to one.
constexpr std::pair<const char*, const char*> kLayerNames[] = {
    {"input_layernorm.weight", "attn_norm.weight"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.q_proj.bias", "attn_q.bias"},
    {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.k_proj.bias", "attn_k.bias"},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.v_proj.bias", "attn_v.bias"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"self_attn.q_norm.weight", "attn_q_norm.weight"},
    {"self_attn.k_norm.weight", "attn_k_norm.weight"},
    {"self_attn.q_a_proj.weight", "attn_q_a.weight"},
    {"self_attn.q_a_layernorm.weight", "attn_q_a_norm.weight"},
    {"self_attn.q_b_proj.weight", "attn_q_b.weight"},
    {"self_attn.kv_a_proj_with_mqa.weight", "attn_kv_a_mqa.weight"},
    {"self_attn.kv_a_layernorm.weight", "attn_kv_a_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
    {"mlp.gate.weight", "ffn_gate_inp.weight"},
    {"block_sparse_moe.gate.weight", "ffn_gate_inp.weight"},
    {"mlp.gate.e_score_correction_bias", "exp_probs_b.bias"},
    {"mlp.shared_experts.gate_proj.weight", "ffn_gate_shexp.weight"},
    {"mlp.shared_experts.up_proj.weight", "ffn_up_shexp.weight"},
    {"mlp.shared_experts.down_proj.weight", "ffn_down_shexp.weight"},
    {"mlp.shared_expert.gate_proj.weight", "ffn_gate_shexp.weight"},
    {"mlp.shared_expert.up_proj.weight", "ffn_up_shexp.weight"},
    {"mlp.shared_expert.down_proj.weight", "ffn_down_shexp.weight"},
    {"mlp.shared_expert_gate.weight", "ffn_gate_inp_shexp.weight"},
};

// Expert projections: Hugging Face's per-expert name -> GGUF's merged tensor.
constexpr std::pair<const char*, const char*> kExpertNames[] = {
    {"gate_proj.weight", "ffn_gate_exps.weight"}, {"up_proj.weight", "ffn_up_exps.weight"},
    {"down_proj.weight", "ffn_down_exps.weight"}, {"w1.weight", "ffn_gate_exps.weight"},
    {"w3.weight", "ffn_up_exps.weight"},          {"w2.weight", "ffn_down_exps.weight"},
};

bool parse_index(std::string_view text, std::int64_t& value) {
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && ptr == text.data() + text.size() && value >= 0;
}

[[noreturn]] void no_counterpart(const std::string& hf) {
  throw Error(ErrorCode::NotFound,
              fmt::format("tensor '{}' has no GGUF counterpart porta knows", hf));
}

}  // namespace

std::string gguf_architecture(const ModelConfig& config) {
  switch (config.family) {
    case Family::DeepseekV2:
    case Family::DeepseekV3: return "deepseek2";
    case Family::Mixtral: return "llama";
    case Family::Qwen2Moe: return "qwen2moe";
    case Family::Qwen3Moe: return "qwen3moe";
  }
  return "unknown";
}

GgufName gguf_name_of(const std::string& hf, const ModelConfig& config) {
  if (hf == "model.embed_tokens.weight") return {"token_embd.weight"};
  if (hf == "model.norm.weight") return {"output_norm.weight"};
  if (hf == "lm_head.weight") return {"output.weight"};
  constexpr std::string_view prefix = "model.layers.";
  if (!hf.starts_with(prefix)) no_counterpart(hf);
  const std::size_t dot = hf.find('.', prefix.size());
  GgufName out;
  if (dot == std::string::npos ||
      !parse_index(std::string_view(hf).substr(prefix.size(), dot - prefix.size()), out.layer))
    no_counterpart(hf);
  const std::string rest = hf.substr(dot + 1);
  const std::string blk = fmt::format("blk.{}.", out.layer);

  if (rest == "self_attn.kv_b_proj.weight") {
    out.gguf = blk + "attn_kv_b.weight";
    out.layout = GgufLayout::KvB;
    return out;
  }
  for (const auto& [from, to] : kLayerNames)
    if (rest == from) {
      out.gguf = blk + to;
      // llama.cpp's llama architecture uses GPT-J style rope, so the converter permutes the
      // rows of q and k; the other architectures here keep Hugging Face's order.
      if (config.family == Family::Mixtral && (rest == "self_attn.q_proj.weight" ||
                                               rest == "self_attn.k_proj.weight")) {
        out.layout = GgufLayout::PermutedRows;
        out.heads = rest[10] == 'q' ? config.num_heads : config.num_kv_heads;
      }
      return out;
    }
  for (const char* experts : {"mlp.experts.", "block_sparse_moe.experts."}) {
    if (!rest.starts_with(experts)) continue;
    const std::string tail = rest.substr(std::strlen(experts));
    const std::size_t edot = tail.find('.');
    if (edot == std::string::npos || !parse_index(tail.substr(0, edot), out.expert))
      no_counterpart(hf);
    const std::string proj = tail.substr(edot + 1);
    for (const auto& [from, to] : kExpertNames)
      if (proj == from) {
        out.gguf = blk + to;
        out.layout = GgufLayout::ExpertSlice;
        return out;
      }
  }
  no_counterpart(hf);
}

void permute_rows(const std::byte* src, std::byte* dst, std::int64_t heads, std::int64_t rows,
                  std::size_t row_bytes, bool inverse) {
  const std::int64_t d = rows / heads;
  const std::int64_t half = d / 2;
  for (std::int64_t h = 0; h < heads; ++h)
    for (std::int64_t i = 0; i < 2; ++i)
      for (std::int64_t j = 0; j < half; ++j) {
        const std::int64_t hf_row = h * d + i * half + j;
        const std::int64_t gguf_row = h * d + 2 * j + i;
        const std::int64_t from = inverse ? gguf_row : hf_row;
        const std::int64_t to = inverse ? hf_row : gguf_row;
        std::memcpy(dst + static_cast<std::size_t>(to) * row_bytes,
                    src + static_cast<std::size_t>(from) * row_bytes, row_bytes);
      }
}

}  // namespace porta::model::detail
