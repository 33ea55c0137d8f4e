// A porta model (config + Hugging Face tensors) written as a GGUF the way llama.cpp's
// convert_hf_to_gguf.py lays it out: merged expert tensors, llama's permuted q/k, deepseek2's
// optional kv_b split, the architecture's metadata keys.
#include <porta/model/gguf.hpp>

#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <optional>

#include <fmt/format.h>

#include <porta/error.hpp>
#include <porta/model/checkpoint_gen.hpp>

#include "model/gguf_names.hpp"

namespace porta::model {

namespace {

using gguf::GgmlType;
using gguf::Value;
using Metadata = std::vector<std::pair<std::string, Value>>;

Value u32(std::int64_t v) { return Value::u32(static_cast<std::uint32_t>(v)); }
Value f32(double v) { return Value::f32(static_cast<float>(v)); }

void rope_metadata(const ModelConfig& c, const std::string& a, Metadata& m) {
  const RopeScaling& s = c.rope.scaling;
  if (s.type == RopeScalingType::Linear) {
    m.emplace_back(a + ".rope.scaling.type", Value::str("linear"));
    m.emplace_back(a + ".rope.scaling.factor", f32(s.factor));
  } else if (s.type == RopeScalingType::Yarn) {
    m.emplace_back(a + ".rope.scaling.type", Value::str("yarn"));
    m.emplace_back(a + ".rope.scaling.factor", f32(s.factor));
    m.emplace_back(a + ".rope.scaling.original_context_length", u32(s.original_max_position));
    m.emplace_back(a + ".rope.scaling.yarn_beta_fast", f32(s.beta_fast));
    m.emplace_back(a + ".rope.scaling.yarn_beta_slow", f32(s.beta_slow));
    if (c.mla) {
      if (s.mscale_all_dim != 0 && s.mscale != s.mscale_all_dim)
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("YaRN mscale {} != mscale_all_dim {} cannot be expressed in GGUF "
                                "(it stores one yarn_log_multiplier)",
                                s.mscale, s.mscale_all_dim));
      m.emplace_back(a + ".rope.scaling.yarn_log_multiplier", f32(0.1 * s.mscale_all_dim));
    }
  }
}

void mla_metadata(const ModelConfig& c, const std::string& a, const GgufExportOptions& o,
                  Metadata& m) {
  if (c.moe_layer_freq != 1)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("moe_layer_freq {} cannot be expressed in GGUF", c.moe_layer_freq));
  m.emplace_back(a + ".rope.dimension_count", u32(c.qk_rope_head_dim));
  if (c.q_lora_rank > 0) m.emplace_back(a + ".attention.q_lora_rank", u32(c.q_lora_rank));
  m.emplace_back(a + ".attention.kv_lora_rank", u32(c.kv_lora_rank));
  if (o.split_kv_b) {
    // Current llama.cpp: the cache holds the latent, so "keys" are kv_lora + rope wide.
    m.emplace_back(a + ".attention.head_count_kv", u32(1));
    m.emplace_back(a + ".attention.key_length", u32(c.kv_lora_rank + c.qk_rope_head_dim));
    m.emplace_back(a + ".attention.value_length", u32(c.kv_lora_rank));
    m.emplace_back(a + ".attention.key_length_mla", u32(c.query_head_dim()));
    m.emplace_back(a + ".attention.value_length_mla", u32(c.v_head_dim));
  } else {
    m.emplace_back(a + ".attention.head_count_kv", u32(c.num_heads));
    m.emplace_back(a + ".attention.key_length", u32(c.query_head_dim()));
    m.emplace_back(a + ".attention.value_length", u32(c.v_head_dim));
  }
  if (c.num_experts == 0) return;
  m.emplace_back(a + ".expert_count", u32(c.num_experts));
  m.emplace_back(a + ".expert_used_count", u32(c.top_k));
  m.emplace_back(a + ".expert_feed_forward_length", u32(c.moe_intermediate_size));
  m.emplace_back(a + ".expert_shared_count", u32(c.shared_intermediate_size / c.moe_intermediate_size));
  m.emplace_back(a + ".leading_dense_block_count", u32(c.first_k_dense_replace));
  m.emplace_back(a + ".expert_weights_scale", f32(c.router.scale));
  m.emplace_back(a + ".expert_weights_norm", Value::boolean_value(c.router.renormalize));
  m.emplace_back(a + ".expert_gating_func", u32(c.router.score == moe::Score::Sigmoid ? 2 : 1));
  m.emplace_back(a + ".expert_group_count", u32(c.router.num_groups));
  m.emplace_back(a + ".expert_group_used_count", u32(c.router.topk_groups));
}

// The 32-element type llama.cpp's quantizer stores a matrix in when its rows are not whole
// 256-element super-blocks of the requested K-quant (V2-Lite's 1408-wide expert down
// projections): so a file written here has the type mix of one llama-quantize writes.
GgmlType fallback_type(GgmlType requested) {
  using G = GgmlType;
  switch (requested) {
    case G::Q2_K:
    case G::Q3_K:
    case G::IQ4_XS: return G::IQ4_NL;
    case G::Q4_K: return G::Q5_0;
    case G::Q5_K: return G::Q5_1;
    case G::Q6_K: return G::Q8_0;
    default: return G::F16;
  }
}

// Layer i of n gets more bits in llama-quantize's _M recipes: the first and last eighth, and
// every third layer between.
bool uses_more_bits(std::int64_t i, std::int64_t n) {
  return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

GgmlType mix_base_type(GgufMix mix) {
  return mix == GgufMix::Q5_K_M ? GgmlType::Q5_K : GgmlType::Q4_K;
}

// The type llama-quantize (llama_tensor_get_type) gives `gguf_name` in `mix`, before the
// fallback for rows that are not whole blocks: the output head q6_K (q8_0 when its rows are not
// whole super-blocks); value and down projections of the layers uses_more_bits picks q6_K;
// 8-expert models' keys and values q8_0 and, in Q4_K_M, their attention outputs q5_K.
GgmlType mix_type(const std::string& gguf_name, std::uint64_t row, const ModelConfig& c,
                  GgufMix mix) {
  const bool has_output = !c.tie_word_embeddings;
  if (gguf_name == "output.weight" || (!has_output && gguf_name == "token_embd.weight"))
    return row % 256 == 0 ? GgmlType::Q6_K : GgmlType::Q8_0;
  const bool eight_experts = c.num_experts == 8;
  int layer = -1;
  if (std::sscanf(gguf_name.c_str(), "blk.%d.", &layer) != 1) return mix_base_type(mix);
  const auto has = [&](const char* part) { return gguf_name.find(part) != std::string::npos; };
  if (has("attn_v.weight")) {
    if (eight_experts) return GgmlType::Q8_0;
    return uses_more_bits(layer, c.num_layers) ? GgmlType::Q6_K : mix_base_type(mix);
  }
  if (has("attn_k.weight") && eight_experts) return GgmlType::Q8_0;
  if (has("ffn_down") && uses_more_bits(layer, c.num_layers)) return GgmlType::Q6_K;
  if (has("attn_output.weight") && eight_experts && mix == GgufMix::Q4_K_M) return GgmlType::Q5_K;
  return mix_base_type(mix);
}

// The type a tensor is stored as: vectors, the router and its bias in f32; matrices in the
// requested type (or the mix's choice) when their rows hold whole blocks, else its
// fallback_type, else f16.
GgmlType storage_type(const std::string& gguf_name, const std::vector<std::uint64_t>& dims,
                      const ModelConfig& c, const GgufExportOptions& options) {
  if (dims.size() < 2 || gguf_name.find("ffn_gate_inp") != std::string::npos) return GgmlType::F32;
  const GgmlType requested = options.mix == GgufMix::None
                                 ? options.matrix_type
                                 : mix_type(gguf_name, dims[0], c, options.mix);
  for (GgmlType t : {requested, fallback_type(requested)})
    if (dims[0] % gguf::traits_of(t).block_elements == 0) return t;
  return GgmlType::F16;
}

// A GGUF tensor being assembled in f32 from its Hugging Face parts (`parts` of them: the
// experts of a merged tensor, else one), stored in its type once the last part is in.
struct Pending {
  std::string name;
  Shape shape;
  std::vector<float> values;
  std::int64_t parts = 1, filled = 0;
};

}  // namespace

GgufMix parse_gguf_mix(const std::string& text) {
  for (GgufMix mix : {GgufMix::Q4_K_M, GgufMix::Q5_K_M}) {
    std::string name = gguf_mix_name(mix);
    if (text == name) return mix;
    name[0] = 'Q';  // llama-quantize's spelling
    if (text == name) return mix;
  }
  throw Error(ErrorCode::InvalidArgument,
              fmt::format("unknown GGUF recipe '{}' (q4_K_M or q5_K_M)", text));
}

std::string gguf_mix_name(GgufMix mix) {
  switch (mix) {
    case GgufMix::Q4_K_M: return "q4_K_M";
    case GgufMix::Q5_K_M: return "q5_K_M";
    case GgufMix::None: break;
  }
  return "none";
}

Metadata gguf_metadata(const ModelConfig& c, const GgufExportOptions& options) {
  const std::string a = detail::gguf_architecture(c);
  Metadata m;
  m.emplace_back("general.architecture", Value::str(a));
  m.emplace_back("general.name", Value::str(fmt::format("porta {}", c.model_type)));
  // llama.cpp's llama_ftype values, which its loader prints as the file's type.
  if (options.mix != GgufMix::None)
    m.emplace_back("general.file_type", u32(options.mix == GgufMix::Q4_K_M ? 15 : 17));
  m.emplace_back(a + ".vocab_size", u32(c.vocab_size));
  m.emplace_back(a + ".context_length", u32(c.max_position_embeddings));
  m.emplace_back(a + ".embedding_length", u32(c.hidden_size));
  m.emplace_back(a + ".block_count", u32(c.num_layers));
  m.emplace_back(a + ".feed_forward_length", u32(c.intermediate_size));
  m.emplace_back(a + ".attention.head_count", u32(c.num_heads));
  m.emplace_back(a + ".attention.layer_norm_rms_epsilon", f32(c.rms_norm_eps));
  m.emplace_back(a + ".rope.freq_base", f32(c.rope.theta));
  rope_metadata(c, a, m);
  if (c.mla) {
    mla_metadata(c, a, options, m);
    return m;
  }
  m.emplace_back(a + ".attention.head_count_kv", u32(c.num_kv_heads));
  m.emplace_back(a + ".expert_count", u32(c.num_experts));
  m.emplace_back(a + ".expert_used_count", u32(c.top_k));
  if (c.family == Family::Mixtral) {
    m.emplace_back(a + ".rope.dimension_count", u32(c.head_dim));
    return m;
  }
  m.emplace_back(a + ".attention.key_length", u32(c.head_dim));
  m.emplace_back(a + ".attention.value_length", u32(c.head_dim));
  m.emplace_back(a + ".expert_feed_forward_length", u32(c.moe_intermediate_size));
  m.emplace_back(a + ".expert_weights_norm", Value::boolean_value(c.router.renormalize));
  if (c.family == Family::Qwen2Moe)
    m.emplace_back(a + ".expert_shared_feed_forward_length", u32(c.shared_intermediate_size));
  return m;
}

namespace {

// gguf_from_hf over Hugging Face tensors handed over one at a time by `each` (which calls its
// argument once per tensor, in checkpoint order).
std::vector<gguf::TensorToWrite> gguf_from_parts(
    const ModelConfig& c,
    const std::function<void(const std::function<void(const std::string&, const Tensor&)>&)>& each,
    const GgufExportOptions& options) {
  // A deque: references to its elements survive later insertions (k_b's and v_b's are held
  // together).
  // Each tensor is stored in its type as soon as its last part is in, and its f32 values freed:
  // holding every tensor in f32 until the end took 4 bytes a parameter beside the input.
  std::deque<Pending> pending;
  std::vector<std::optional<gguf::TensorToWrite>> stored;
  std::map<std::string, std::size_t> index;
  const auto store = [&](std::size_t i) {
    Pending& p = pending[i];
    std::vector<std::uint64_t> dims;
    for (int axis = p.shape.rank() - 1; axis >= 0; --axis)
      dims.push_back(static_cast<std::uint64_t>(p.shape[axis]));
    stored[i] =
        gguf::make_tensor(p.name, p.shape, storage_type(p.name, dims, c, options), p.values);
    std::vector<float>().swap(p.values);
  };
  auto slot = [&](const std::string& name, const Shape& shape,
                  std::int64_t parts = 1) -> std::size_t {
    const auto [it, inserted] = index.emplace(name, pending.size());
    if (inserted) {
      pending.push_back(
          {name, shape, std::vector<float>(static_cast<std::size_t>(shape.numel())), parts});
      stored.emplace_back();
    }
    if (stored[it->second])  // all its parts were in already: a Hugging Face tensor given twice
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("GGUF tensor '{}' is given more parts than its {}", name,
                              pending[it->second].parts));
    return it->second;
  };
  // One more part of tensor i is in.
  const auto filled = [&](std::size_t i) {
    if (++pending[i].filled == pending[i].parts) store(i);
  };
  // The shapes the config implies: a part of another shape would be copied out of bounds of the
  // tensor it goes into (an expert slice, kv_b's heads).
  std::map<std::string, Shape> implied;
  for (auto& [name, shape] : expected_tensors(c)) implied.emplace(std::move(name), shape);
  each([&](const std::string& name, const Tensor& t) {
    if (const auto it = implied.find(name); it != implied.end() && it->second != t.shape())
      throw Error(ErrorCode::ShapeMismatch,
                  fmt::format("Hugging Face tensor '{}' is {}, but the config implies {}", name,
                              t.shape().to_string(), it->second.to_string()));
    const detail::GgufName n = detail::gguf_name_of(name, c);
    const std::vector<float> values = t.to_f32();
    switch (n.layout) {
      case detail::GgufLayout::Same: {
        const std::size_t i = slot(n.gguf, t.shape());
        pending[i].values = values;
        filled(i);
        break;
      }
      case detail::GgufLayout::PermutedRows: {
        const std::size_t i = slot(n.gguf, t.shape());
        detail::permute_rows(reinterpret_cast<const std::byte*>(values.data()),
                             reinterpret_cast<std::byte*>(pending[i].values.data()), n.heads,
                             t.shape()[0], static_cast<std::size_t>(t.shape()[1]) * sizeof(float),
                             false);
        filled(i);
        break;
      }
      case detail::GgufLayout::ExpertSlice: {
        const std::size_t i =
            slot(n.gguf, {c.num_experts, t.shape()[0], t.shape()[1]}, c.num_experts);
        std::copy(values.begin(), values.end(),
                  pending[i].values.begin() + n.expert * static_cast<std::int64_t>(values.size()));
        filled(i);
        break;
      }
      case detail::GgufLayout::KvB: {
        if (!options.split_kv_b) {
          const std::size_t i = slot(n.gguf, t.shape());
          pending[i].values = values;
          filled(i);
          break;
        }
        const auto heads = c.num_heads, nope = c.qk_nope_head_dim, vd = c.v_head_dim,
                   r = c.kv_lora_rank;
        const std::string blk = fmt::format("blk.{}.", n.layer);
        const std::size_t ki = slot(blk + "attn_k_b.weight", {heads, r, nope});
        const std::size_t vi = slot(blk + "attn_v_b.weight", {heads, vd, r});
        Pending& k = pending[ki];
        Pending& v = pending[vi];
        for (std::int64_t h = 0; h < heads; ++h) {
          const float* head = values.data() + h * (nope + vd) * r;
          for (std::int64_t i = 0; i < nope; ++i)
            for (std::int64_t j = 0; j < r; ++j)
              k.values[static_cast<std::size_t>((h * r + j) * nope + i)] = head[i * r + j];
          std::copy(head + nope * r, head + (nope + vd) * r, v.values.begin() + h * vd * r);
        }
        filled(ki);
        filled(vi);
        break;
      }
    }
  });
  // Tensors whose parts were not all given (an expert missing) keep zeros there, as before.
  std::vector<gguf::TensorToWrite> out;
  out.reserve(pending.size());
  for (std::size_t i = 0; i < pending.size(); ++i) {
    if (!stored[i]) store(i);
    out.push_back(std::move(*stored[i]));
  }
  return out;
}

}  // namespace

std::vector<gguf::TensorToWrite> gguf_from_hf(const ModelConfig& c,
                                              const std::vector<std::pair<std::string, Tensor>>& hf,
                                              const GgufExportOptions& options) {
  return gguf_from_parts(
      c,
      [&](const auto& add) {
        for (const auto& [name, t] : hf) add(name, t);
      },
      options);
}

namespace {

std::vector<std::pair<std::string, gguf::Value>> full_metadata(const ModelConfig& config,
                                                               const GgufExportOptions& options) {
  auto metadata = gguf_metadata(config, options);
  if (!options.tokenizer_dir.empty())
    for (auto& kv : gguf::tokenizer_metadata_from_hf(options.tokenizer_dir, config.vocab_size))
      metadata.push_back(std::move(kv));
  return metadata;
}

}  // namespace

void write_gguf_model(const std::string& path, const ModelConfig& config,
                      const std::vector<std::pair<std::string, Tensor>>& hf,
                      const GgufExportOptions& options) {
  gguf::write_gguf(path, full_metadata(config, options), gguf_from_hf(config, hf, options));
}

void write_gguf_model(const std::string& path, const ModelConfig& config, const HfTensorMaker& make,
                      const GgufExportOptions& options) {
  const auto metadata = full_metadata(config, options);
  const auto tensors = gguf_from_parts(
      config,
      [&](const auto& add) {
        for (const auto& [name, shape] : expected_tensors(config)) add(name, make(name, shape));
      },
      options);
  gguf::write_gguf(path, metadata, tensors);
}

}  // namespace porta::model
