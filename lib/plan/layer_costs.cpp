// Per-layer operator costs of MLA (DeepSeek) and GQA (Mixtral, Qwen) attention, dense MLPs and
// routed/shared experts, for one micro-batch on one chip (see layer_costs.hpp).
//
// Decode uses MLA's absorbed form (W_UK folded into the query, W_UV into the output, attention
// over the 576-wide latent cache, as FlashMLA does); prefill the plain form (K and V up-projected
// from the latent for every cached and new token). Attention runs in bf16 whatever the weight
// format; the GEMMs in the weight format's peak.
#include "plan/layer_costs.hpp"

#include <algorithm>
#include <cmath>

namespace porta::plan::detail {

namespace {

constexpr double kAct = 2;  // bf16 activations

double swiglu_params(const model::ModelConfig& m, double width) {
  return 3.0 * static_cast<double>(m.hidden_size) * width;
}

// A GEMM of `rows` tokens through a weight of `params` parameters.
OpCost gemm(const char* name, double rows, double params, double in, double out,
            double weight_bytes, Unit unit = Unit::Gemm) {
  return {name, 2 * rows * params, params * weight_bytes + rows * (in + out) * kAct, unit};
}

void attention_mla(const StepShape& s, LayerWork& w) {
  const auto& m = *s.model;
  const double H = static_cast<double>(m.hidden_size);
  const double heads = static_cast<double>(m.num_heads) / s.tp;
  const double dn = static_cast<double>(m.qk_nope_head_dim), dr = static_cast<double>(m.qk_rope_head_dim);
  const double dv = static_cast<double>(m.v_head_dim), kvr = static_cast<double>(m.kv_lora_rank);
  const double qr = static_cast<double>(m.q_lora_rank);
  const double wb = s.weight_bytes;
  // With TP the group's tokens all pass through this chip's heads.
  const double T = s.tokens * s.tp;
  const double seqs = s.sequences * s.tp;
  if (qr > 0) {
    w.ops.push_back(gemm("q_a_proj", T, H * qr, H, qr, wb));
    w.ops.push_back(gemm("q_b_proj", T, qr * heads * (dn + dr), qr, heads * (dn + dr), wb));
  } else {
    w.ops.push_back(gemm("q_proj", T, H * heads * (dn + dr), H, heads * (dn + dr), wb));
  }
  w.ops.push_back(gemm("kv_a_proj", T, H * (kvr + dr), H, kvr + dr, wb));
  const double latent = s.kv_bytes * (kvr + dr);
  if (s.decode) {
    // Absorbed: q_nope·W_UK into the latent space, attention over the cache, W_UV after.
    w.ops.push_back(gemm("absorb_uk", T, heads * dn * kvr, heads * dn, heads * kvr, kAct, Unit::Bf16));
    const double ctx = s.context * s.attention_imbalance;
    OpCost core{"mla_decode", 2 * T * heads * ctx * (2 * kvr + dr),
                seqs * ctx * latent + T * heads * (kvr + dr + kvr) * kAct, Unit::Attention};
    w.ops.push_back(core);
    w.ops.push_back(gemm("absorb_uv", T, heads * kvr * dv, heads * kvr, heads * dv, kAct, Unit::Bf16));
  } else {
    const double total = s.context;  // cached + new tokens of each sequence
    const double cached = total - s.new_tokens;
    w.ops.push_back(gemm("kv_b_proj", seqs * total, kvr * heads * (dn + dv), kvr, heads * (dn + dv),
                         wb));
    // Causal: new token i sees the cached prefix and i new tokens.
    const double pairs = seqs * s.new_tokens * (cached + s.new_tokens / 2) * s.attention_imbalance;
    OpCost core{"attention_prefill", 2 * pairs * heads * (dn + dr + dv),
                seqs * total * heads * (dn + dr + dv) * kAct + T * heads * dv * kAct, Unit::Attention};
    w.ops.push_back(core);
  }
  w.ops.push_back(gemm("o_proj", T, heads * dv * H, heads * dv, H, wb));
}

void attention_gqa(const StepShape& s, LayerWork& w) {
  const auto& m = *s.model;
  const double H = static_cast<double>(m.hidden_size);
  const double hd = static_cast<double>(m.head_dim);
  const double heads = static_cast<double>(m.num_heads) / s.tp;
  const double kv_heads = std::max(1.0, static_cast<double>(m.num_kv_heads) / s.tp);
  const double T = s.tokens * s.tp;
  const double seqs = s.sequences * s.tp;
  const double wb = s.weight_bytes;
  w.ops.push_back(gemm("qkv_proj", T, H * (heads + 2 * kv_heads) * hd, H, (heads + 2 * kv_heads) * hd, wb));
  const double kv_token = 2 * kv_heads * hd * s.kv_bytes;
  if (s.decode) {
    const double ctx = s.context * s.attention_imbalance;
    w.ops.push_back({"attention_decode", 4 * T * heads * hd * ctx, seqs * ctx * kv_token, Unit::Attention});
  } else {
    const double cached = s.context - s.new_tokens;
    const double pairs = seqs * s.new_tokens * (cached + s.new_tokens / 2) * s.attention_imbalance;
    w.ops.push_back({"attention_prefill", 4 * pairs * heads * hd,
                     seqs * s.context * kv_token + T * heads * hd * 2 * kAct, Unit::Attention});
  }
  w.ops.push_back(gemm("o_proj", T, heads * hd * H, heads * hd, H, wb));
}

void moe(const StepShape& s, LayerWork& w) {
  const auto& m = *s.model;
  const double H = static_cast<double>(m.hidden_size);
  const double E = static_cast<double>(m.num_experts), k = static_cast<double>(m.top_k);
  const double T = s.tokens;
  w.ops.push_back(gemm("router", T, H * E, H, E, kAct, Unit::Bf16));
  // Tokens the busiest chip's experts receive from the whole EP group.
  const double routed = T * k * s.moe_imbalance;
  const double per_slot = T * k * s.chips / s.total_slots;
  // Experts a micro-batch leaves untouched are not read (Poisson arrivals per slot).
  const double active = s.expert_slots * (1 - std::exp(-per_slot));
  const double expert = swiglu_params(m, static_cast<double>(m.moe_intermediate_size));
  const double I = static_cast<double>(m.moe_intermediate_size);
  w.ops.push_back({"routed_experts", 2 * routed * expert,
                   active * expert * s.weight_bytes + routed * (2 * H + 3 * I) * kAct, Unit::Gemm});
  if (m.shared_intermediate_size > 0) {
    const double shared = swiglu_params(m, static_cast<double>(m.shared_intermediate_size));
    w.ops.push_back(gemm("shared_experts", T, shared, H, H, s.weight_bytes));
  }
  if (s.chips > 1) {
    // dispatch in the quantised activation format, combine in bf16; the busiest chip's share.
    const double elements = T * k * H * s.moe_imbalance;
    w.comms.push_back({Collective::AllToAll, s.chips, elements * s.dispatch_bytes});
    w.comms.push_back({Collective::AllToAll, s.chips, elements * kAct});
  }
}

void common(const StepShape& s, LayerWork& w) {
  const double H = static_cast<double>(s.model->hidden_size);
  // Norms, residual adds, rope, quantisation: a handful of passes over the activations.
  w.ops.push_back({"elementwise", 0, s.tokens * H * kAct * 8, Unit::Bf16});
  if (s.tp > 1)  // reduce-scatter after o_proj + all-gather before the next attention
    w.comms.push_back({Collective::AllReduce, s.tp, s.tokens * s.tp * H * kAct});
}

void attention(const StepShape& s, LayerWork& w) {
  if (s.model->mla)
    attention_mla(s, w);
  else
    attention_gqa(s, w);
}

}  // namespace

LayerWork moe_layer_work(const StepShape& s) {
  LayerWork w;
  attention(s, w);
  moe(s, w);
  common(s, w);
  return w;
}

LayerWork layer_work(const StepShape& s, std::int64_t layer) {
  const auto& m = *s.model;
  if (m.num_experts > 0 && m.is_moe_layer(layer)) return moe_layer_work(s);
  LayerWork w;
  attention(s, w);
  const double I = static_cast<double>(m.intermediate_size);
  w.ops.push_back(gemm("dense_mlp", s.tokens, swiglu_params(m, I), static_cast<double>(m.hidden_size),
                       static_cast<double>(m.hidden_size), s.weight_bytes));
  common(s, w);
  return w;
}

ParamCounts param_counts(const model::ModelConfig& m) {
  ParamCounts p;
  const double H = static_cast<double>(m.hidden_size);
  const double nh = static_cast<double>(m.num_heads);
  if (m.mla) {
    const double dn = static_cast<double>(m.qk_nope_head_dim), dr = static_cast<double>(m.qk_rope_head_dim);
    const double dv = static_cast<double>(m.v_head_dim), kvr = static_cast<double>(m.kv_lora_rank);
    const double qr = static_cast<double>(m.q_lora_rank);
    p.attention_replicated = (qr > 0 ? H * qr : 0) + H * (kvr + dr);
    p.attention = p.attention_replicated + (qr > 0 ? qr : H) * nh * (dn + dr) +
                  kvr * nh * (dn + dv) + nh * dv * H;
  } else {
    const double hd = static_cast<double>(m.head_dim), kv = static_cast<double>(m.num_kv_heads);
    p.attention = H * (nh + 2 * kv) * hd + nh * hd * H;
  }
  p.dense_mlp = swiglu_params(m, static_cast<double>(m.intermediate_size));
  p.shared_experts = swiglu_params(m, static_cast<double>(m.shared_intermediate_size));
  p.expert = swiglu_params(m, static_cast<double>(m.moe_intermediate_size));
  p.router = H * static_cast<double>(m.num_experts);
  p.embedding = static_cast<double>(m.vocab_size) * H * (m.tie_word_embeddings ? 1 : 2);
  for (std::int64_t l = 0; l < m.num_layers; ++l)
    (m.num_experts > 0 && m.is_moe_layer(l) ? p.moe_layers : p.dense_layers) += 1;
  return p;
}

double kv_bytes_per_token_layer(const model::ModelConfig& m, double element_bytes) {
  if (m.mla) return static_cast<double>(m.kv_lora_rank + m.qk_rope_head_dim) * element_bytes;
  return 2.0 * static_cast<double>(m.num_kv_heads * m.head_dim) * element_bytes;
}

}  // namespace porta::plan::detail
