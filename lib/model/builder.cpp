// The transformer as a porta graph: embeddings, per layer RMSNorm -> attention (MLA or GQA) ->
// residual -> RMSNorm -> dense MLP or MoE -> residual, then the final norm and lm_head.
//
// Activations are f32 whatever the weights' dtype (matmul takes f32 activations against bf16/f16
// weights). MLA runs in its absorbed form: q_nope is multiplied into the key half of kv_b_proj so
// that attention reads the cached latent [c_kv, k_pe] directly as one shared key/value head, and
// the value half of kv_b_proj is applied after attention. Scores and outputs are the same as the
// expanded form (q_nope·k_nope + q_pe·k_pe), and the cache holds kv_lora_rank + rope numbers per
// position instead of heads · (nope + rope + v).
//
// Weights a quantized checkpoint keeps quantized (Model::quantized_weight) go through the
// quantized matmul and moe_experts with the activation mode their format asks for (W8A8: int8
// activations; weight-only: none); quantized routed experts run the shared experts as separate
// (quantized) matmuls, since the quantized moe_experts takes the routed ones only.
#include <fmt/format.h>

#include "model/model_impl.hpp"

namespace porta::model {

namespace {

class Builder {
 public:
  Builder(const Model::Impl& model, const GraphSpec& spec)
      : m_(model), c_(model.config), spec_(spec) {}

  Graph build() {
    const auto t = spec_.tokens;
    if (t < 1)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("GraphSpec::tokens must be >= 1, not {}", t));
    if (spec_.cache_capacity < 0)
      throw Error(ErrorCode::InvalidArgument, "GraphSpec::cache_capacity must be >= 0");
    ids_ = g_.input(kIdsInput, {t}, DType::I32);
    positions_ = g_.input(kPositionsInput, {t}, DType::I32);
    if (spec_.cache_capacity > 0) cache_len_ = g_.input(kCacheLenInput, {1}, DType::I32);

    const std::string table = "model.embed_tokens.weight";
    Value x = quantized(table) ? g_.embedding(qw(table), ids_) : g_.embedding(w(table), ids_);
    if (x.dtype() != DType::F32) x = g_.cast(x, DType::F32);
    for (std::int64_t l = 0; l < c_.num_layers; ++l) {
      const std::string p = PreparedNames::layer(l);
      Value h = g_.rms_norm(x, w(p + "input_layernorm.weight"), c_.rms_norm_eps);
      const Value attn = c_.mla ? mla(l, h) : attention(l, h);
      if (spec_.block_outputs) g_.output(fmt::format("layer.{}.attention", l), attn);
      x = x + attn;
      if (l + 1 == c_.num_layers && t > 1 && !spec_.block_outputs && !spec_.expert_counts) {
        g_.output(kLogitsOutput, last_layer_logits(l, x));
        return std::move(g_);
      }
      x = feed_forward(l, x);
    }
    x = g_.rms_norm(x, w("model.norm.weight"), c_.rms_norm_eps);
    // The last position's logits come from the same one-row lm_head whether or not the others
    // are asked for, so they are bit-identical either way on every backend (a kernel's
    // summation order may depend on its row count).
    Value last = linear(t > 1 ? g_.slice(x, 0, t - 1, t) : x, m_.lm_head_name);
    if (spec_.all_logits && t > 1)
      last = g_.concat({linear(g_.slice(x, 0, 0, t - 1), m_.lm_head_name), last}, 0);
    g_.output(kLogitsOutput, last);
    return std::move(g_);
  }

 private:
  Value w(const std::string& name) {
    const auto it = values_.find(name);
    if (it != values_.end()) return it->second;
    Value v = g_.weight(name, m_.get(name));
    values_.emplace(name, v);
    return v;
  }

  // Layer l's RMSNorm -> dense MLP or MoE -> residual.
  Value feed_forward(std::int64_t l, Value x) {
    const std::string p = PreparedNames::layer(l);
    const Value h = g_.rms_norm(x, w(p + "post_attention_layernorm.weight"), c_.rms_norm_eps);
    const Value mlp = c_.is_moe_layer(l) ? moe(l, h) : dense_mlp(p + "mlp.", h);
    if (spec_.block_outputs) g_.output(fmt::format("layer.{}.mlp", l), mlp);
    return x + mlp;
  }

  // The logits from the last layer's residual stream after its attention (x, [T, H]): only the
  // positions whose logits are asked for go on through its feed-forward block, the final norm
  // and the lm_head, as llama.cpp does (its last layer keeps the output rows only). Every
  // position's keys and values are already out for the cache; prefill's last MoE layer then
  // runs one token instead of T. The last position takes a path of its own either way, so its
  // logits are bit-identical with and without the others (a kernel's summation order may depend
  // on its row count). Graphs that report per-layer results (block outputs, expert counts) keep
  // every row, as those results describe all T.
  Value last_layer_logits(std::int64_t l, Value x) {
    const auto t = spec_.tokens;
    auto logits = [&](Value rows) {
      return linear(g_.rms_norm(feed_forward(l, rows), w("model.norm.weight"), c_.rms_norm_eps),
                    m_.lm_head_name);
    };
    const Value last = logits(g_.slice(x, 0, t - 1, t));
    return spec_.all_logits ? g_.concat({logits(g_.slice(x, 0, 0, t - 1)), last}, 0) : last;
  }

  const QuantizedWeight* quantized(const std::string& name) const {
    const auto it = m_.quantized.find(name);
    return it == m_.quantized.end() ? nullptr : &it->second;
  }
  QuantizedValue qw(const std::string& name) {
    const auto it = qvalues_.find(name);
    if (it != qvalues_.end()) return it->second;
    QuantizedValue v = g_.weight(name, quantized(name)->weight);
    qvalues_.emplace(name, v);
    return v;
  }

  Value linear(Value x, const std::string& weight_name) {
    if (const QuantizedWeight* q = quantized(weight_name))
      return g_.matmul(x, qw(weight_name), q->activation, q->input);
    return g_.matmul(x, w(weight_name), {.transpose_b = true});
  }
  Value linear_layer(Value x, const std::string& prefix, bool bias = false) {
    Value y = linear(x, prefix + ".weight");
    return bias ? y + w(prefix + ".bias") : y;
  }

  RopeAttrs rope_attrs() const { return c_.rope; }

  // Attention over the new keys/values, after those of the cache when there is one. Records the
  // new rows as graph outputs for the caller to append to its cache.
  Value attend(std::int64_t l, Value q, Value k, Value v, const std::vector<Value>& new_rows,
               float scale) {
    const auto slots = std::vector<std::string>(c_.mla ? std::vector<std::string>{"latent"}
                                                       : std::vector<std::string>{"k", "v"});
    for (std::size_t i = 0; i < slots.size(); ++i)
      g_.output(cache_output_name(l, slots[i]), new_rows[i]);
    const AttentionAttrs attrs{
        .causal = true, .scale = scale, .kv_cache = spec_.cache_capacity > 0};
    if (spec_.cache_capacity == 0) return g_.attention(q, k, v, attrs);
    const auto s = spec_.cache_capacity;
    Value k_cache;
    Value v_cache;
    if (c_.mla) {
      k_cache = g_.input(cache_input_name(l, "latent"), {s, 1, k.shape()[2]}, DType::F32);
      v_cache = k_cache;
    } else {
      k_cache = g_.input(cache_input_name(l, "k"), {s, c_.num_kv_heads, c_.head_dim}, DType::F32);
      v_cache = g_.input(cache_input_name(l, "v"), {s, c_.num_kv_heads, c_.head_dim}, DType::F32);
    }
    return g_.attention(q, k, v, k_cache, v_cache, cache_len_, attrs);
  }

  Value mla(std::int64_t l, Value x) {
    const std::string p = PreparedNames::layer(l) + "self_attn.";
    const auto t = spec_.tokens;
    const auto nh = c_.num_heads;
    const auto nope = c_.qk_nope_head_dim;
    const auto rope = c_.qk_rope_head_dim;
    const auto r = c_.kv_lora_rank;

    Value q = c_.q_lora_rank > 0
                  ? linear(g_.rms_norm(linear(x, p + "q_a_proj.weight"),
                                       w(p + "q_a_layernorm.weight"), c_.rms_norm_eps),
                           p + "q_b_proj.weight")
                  : linear(x, p + "q_proj.weight");
    q = g_.reshape(q, {t, nh, nope + rope});
    Value q_nope = g_.slice(q, 2, 0, nope);
    Value q_pe = g_.rope(g_.slice(q, 2, nope, nope + rope), positions_, rope_attrs());

    Value kv = linear(x, p + "kv_a_proj_with_mqa.weight");  // [T, r + rope]
    Value c_kv =
        g_.rms_norm(g_.slice(kv, 1, 0, r), w(p + "kv_a_layernorm.weight"), c_.rms_norm_eps);
    Value k_pe =
        g_.rope(g_.reshape(g_.slice(kv, 1, r, r + rope), {t, 1, rope}), positions_, rope_attrs());
    Value latent = g_.concat({g_.reshape(c_kv, {t, 1, r}), k_pe}, 2);  // [T, 1, r + rope]

    // q_nope[h] · W_UK[h] ([nope] x [nope, r] -> [r]) per head, batched over heads; the loader
    // stores W_UK[h] transposed ([r, nope]).
    Value q_latent =
        g_.permute(per_head(g_.permute(q_nope, {1, 0, 2}), PreparedNames::k_absorb(l)), {1, 0, 2});
    Value q_full = g_.concat({q_latent, q_pe}, 2);  // [T, H, r + rope]
    // The latent serves as keys and, its first r features, as values. Attending over the whole
    // latent rows and dropping the output's last rope features costs rope / r more of the
    // value product; slicing the values out of the cache instead would copy all of its
    // capacity on every step.
    Value o = g_.slice(attend(l, q_full, latent, latent, {latent}, c_.attention_scale()), 2, 0,
                       r);  // [T, H, r]
    // Per head o[h] · W_UV[h]ᵀ -> [v].
    o = per_head(g_.permute(o, {1, 0, 2}), PreparedNames::v_absorb(l));
    o = g_.reshape(g_.permute(o, {1, 0, 2}), {t, nh * c_.v_head_dim});
    return linear(o, p + "o_proj.weight");
  }

  // x [H, T, K] · W[h]ᵀ per head for MLA's per-head weight `name` [H, N, K] -> [H, T, N]. A
  // packed one (a GGUF's blocks) is a grouped product whose groups are the heads.
  Value per_head(Value x, const std::string& name) {
    const QuantizedWeight* q = quantized(name);
    if (q == nullptr) return g_.matmul(x, w(name), {.transpose_b = true});
    const auto heads = x.shape()[0], t = x.shape()[1];
    const std::string offsets_name = fmt::format("mla.head_offsets.{}x{}", heads, t);
    auto it = values_.find(offsets_name);
    if (it == values_.end()) {
      std::vector<std::int32_t> offsets(static_cast<std::size_t>(heads + 1));
      for (std::size_t h = 0; h < offsets.size(); ++h)
        offsets[h] = static_cast<std::int32_t>(static_cast<std::int64_t>(h) * t);
      it = values_
               .emplace(offsets_name, g_.weight(offsets_name, Tensor::from_vector<std::int32_t>(
                                                                  {heads + 1}, offsets)))
               .first;
    }
    const Value rows = g_.reshape(x, {heads * t, x.shape()[2]});
    const Value y = g_.grouped_matmul(rows, qw(name), it->second, q->activation);
    return g_.reshape(y, {heads, t, y.shape()[1]});
  }

  Value attention(std::int64_t l, Value x) {
    const std::string p = PreparedNames::layer(l) + "self_attn.";
    const auto t = spec_.tokens;
    const auto d = c_.head_dim;
    Value q = g_.reshape(linear_layer(x, p + "q_proj", c_.attention_bias), {t, c_.num_heads, d});
    Value k = g_.reshape(linear_layer(x, p + "k_proj", c_.attention_bias), {t, c_.num_kv_heads, d});
    Value v = g_.reshape(linear_layer(x, p + "v_proj", c_.attention_bias), {t, c_.num_kv_heads, d});
    if (c_.qk_norm) {
      q = g_.rms_norm(q, w(p + "q_norm.weight"), c_.rms_norm_eps);
      k = g_.rms_norm(k, w(p + "k_norm.weight"), c_.rms_norm_eps);
    }
    q = g_.rope(q, positions_, rope_attrs());
    k = g_.rope(k, positions_, rope_attrs());
    Value o = attend(l, q, k, v, {k, v}, c_.attention_scale());
    return linear(g_.reshape(o, {t, c_.num_heads * d}), p + "o_proj.weight");
  }

  Value dense_mlp(const std::string& p, Value x) {
    return linear(g_.swiglu(linear(x, p + "gate_proj.weight"), linear(x, p + "up_proj.weight")),
                  p + "down_proj.weight");
  }

  Value moe(std::int64_t l, Value x) {
    auto name = [l](const char* part) { return PreparedNames::moe(l, part); };
    Value logits = linear(x, name("gate"));
    const MoeRoute route = c_.router.use_bias ? g_.moe_router(logits, c_.router, w(name("bias")))
                                              : g_.moe_router(logits, c_.router);
    if (spec_.expert_counts) g_.output(fmt::format("layer.{}.expert_counts", l), route.counts);
    auto shared_mlp = [&] {
      Value shared = linear(g_.swiglu(linear(x, name("shared.gate")), linear(x, name("shared.up"))),
                            name("shared.down"));
      if (c_.shared_expert_gated) shared = shared * g_.sigmoid(linear(x, name("shared_gate")));
      return shared;
    };
    if (const QuantizedWeight* q = quantized(name("experts.gate"))) {
      if (m_.ep_placement)
        throw Error(ErrorCode::Unsupported,
                    fmt::format("layer {}: expert parallelism runs float expert weights, and this "
                                "layer's experts are quantized ({}); load the model with "
                                "--dequantize to run it expert-parallel",
                                l, describe(q->weight.scheme)));
      const QuantMoeExpertWeights ew{qw(name("experts.gate")), qw(name("experts.up")),
                                     qw(name("experts.down"))};
      Value y = ew.up.scheme == ew.gate.scheme && ew.down.scheme == ew.gate.scheme
                    ? g_.moe_experts(x, route, ew, q->activation)
                    : mixed_quant_experts(x, route, ew, q->activation);
      return c_.shared_intermediate_size == 0 ? y : y + shared_mlp();
    }
    MoeExpertWeights weights{w(name("experts.gate")), w(name("experts.up")),
                             w(name("experts.down"))};
    moe::ExpertsAttrs attrs;
    // Float routed experts with quantized shared ones: the shared MLP runs on its own.
    std::optional<Value> separate_shared;
    if (c_.shared_intermediate_size > 0 && quantized(name("shared.gate"))) {
      separate_shared = shared_mlp();
    } else if (c_.shared_intermediate_size > 0) {
      attrs.has_shared = true;
      weights.shared_gate = w(name("shared.gate"));
      weights.shared_up = w(name("shared.up"));
      weights.shared_down = w(name("shared.down"));
      if (c_.shared_expert_gated) {
        attrs.shared_gate = moe::SharedGate::Sigmoid;
        weights.shared_gate_weight = w(name("shared_gate"));
      }
    }
    Value routed = routed_experts(l, x, route, weights, attrs);
    return separate_shared ? routed + *separate_shared : routed;
  }

  // Routed experts whose projections are quantized in different schemes (a GGUF's q4_K gate and
  // up with a q8_0 or q6_K down, as llama.cpp's quantizer writes them): the composition
  // quant_moe_experts stands for, with one quantized grouped matmul per projection.
  Value mixed_quant_experts(Value x, const MoeRoute& route, const QuantMoeExpertWeights& w,
                            ActivationQuant act) {
    const Value rows = g_.moe_permute(x, route);
    const Value h = g_.swiglu(g_.grouped_matmul(rows, w.gate, route.offsets, act),
                              g_.grouped_matmul(rows, w.up, route.offsets, act));
    return g_.moe_combine(g_.grouped_matmul(h, w.down, route.offsets, act), route);
  }

  Value routed_experts(std::int64_t l, Value x, const MoeRoute& route,
                       const MoeExpertWeights& weights, const moe::ExpertsAttrs& attrs) {
    if (!m_.ep_placement) return g_.moe_experts(x, route, weights, attrs);
    // Expert parallelism: this rank's slots only, dispatched to by all_to_all.
    std::vector<Value> in{x, route.weights, route.offsets, route.perm, route.inv,
                          weights.gate, weights.up, weights.down};
    if (attrs.has_shared)
      in.insert(in.end(), {*weights.shared_gate, *weights.shared_up, *weights.shared_down});
    if (weights.shared_gate_weight) in.push_back(*weights.shared_gate_weight);
    const ExpertParallelAttrs ep{attrs, m_.ep_rank, m_.ep_placement->layers.at(l)};
    return g_.add_op(OpKind::MoeExpertsEp, in, ep)[0];
  }

  const Model::Impl& m_;
  const ModelConfig& c_;
  const GraphSpec& spec_;
  Graph g_;
  Value ids_, positions_, cache_len_;
  std::map<std::string, Value> values_;
  std::map<std::string, QuantizedValue> qvalues_;
};

}  // namespace

Graph build_graph(const Model::Impl& model, const GraphSpec& spec) {
  return Builder(model, spec).build();
}

Graph Model::build(const GraphSpec& spec) const { return build_graph(*impl_, spec); }

}  // namespace porta::model
