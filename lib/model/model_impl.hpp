// The loaded model as the builder sees it: the config and the prepared weights by name.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>

#include <porta/model/model.hpp>

#include "model/quant_formats.hpp"

namespace porta::model {

// Names of the prepared tensors that are not single Hugging Face tensors.
struct PreparedNames {
  static std::string layer(std::int64_t l) { return "model.layers." + std::to_string(l) + "."; }
  // MLA's kv_b_proj split per head into its key part [H, r, nope] (each head's transposed) and
  // value part [H, v, r]: the two batched products of the absorbed attention.
  static std::string k_absorb(std::int64_t l) { return layer(l) + "self_attn.kv_b_proj.k_absorb"; }
  static std::string v_absorb(std::int64_t l) { return layer(l) + "self_attn.kv_b_proj.v_absorb"; }
  // A source that stores kv_b_proj already split that way (a GGUF's attn_k_b and attn_v_b) gives
  // the halves under these names instead of kv_b_proj; the loader takes them as they are.
  static std::string kv_b_key_half(std::int64_t l) {
    return layer(l) + "self_attn.k_b_proj.weight";
  }
  static std::string kv_b_value_half(std::int64_t l) {
    return layer(l) + "self_attn.v_b_proj.weight";
  }
  // A MoE layer, whatever the family calls it: router weight [E, H], selection bias [E] (f32),
  // stacked experts [E, I, H] / [E, I, H] / [E, H, I], shared experts and their gate [1, H].
  static std::string moe(std::int64_t l, const std::string& part) {
    return layer(l) + "moe." + part;
  }
};

struct Model::Impl {
  ModelConfig config;
  std::map<std::string, Tensor> weights;
  std::map<std::string, QuantizedWeight> quantized;  // same names; never also in `weights`
  std::string quant_format;
  LoadStats stats;
  std::string lm_head_name;  // lm_head.weight, or the embedding table when tied
  std::optional<ep::ModelPlacement> ep_placement;  // LoadOptions'; set: MoE layers are EP
  std::int64_t ep_rank = 0;

  const Tensor& get(const std::string& name) const;

  // Model::from_tensors with `reader` for the quantized weights instead of the one the config
  // names (the GGUF loader's ggml blocks); `stats` adjusts the load statistics afterwards.
  static Model from_source(ModelConfig config, const TensorSource& source,
                           const LoadOptions& options, const QuantFormatReader* reader,
                           const std::function<void(LoadStats&)>& stats = {});
};

// LoadOptions::prefault: every weight's bytes (stacked parts, quantized codes and scales
// included; the embedding table only when it is the lm_head too) mapped into the page tables;
// adds them to stats.prefaulted_bytes.
void prefault_weights(Model::Impl& model);

Graph build_graph(const Model::Impl& model, const GraphSpec& spec);

}  // namespace porta::model
