// Model: a Hugging Face Mixture-of-Experts checkpoint loaded for porta, and the transformer
// built from it as a porta Graph.
//
// Model::load() reads config.json and the safetensors weights (one file, or shards through
// model.safetensors.index.json) under their exact Hugging Face names, checks every tensor's
// presence and shape against the config, dequantises FP8 (e4m3 with block weight_scale_inv)
// weights, and stacks each MoE layer's per-expert matrices into the [E, I, H] tensors moe_experts
// takes as tables of views (Tensor::stack_views). bf16/f16/f32 matrices stay views into the
// mapping. Model::build() then describes the
// forward pass for T new tokens, optionally reading a KV cache of S positions, as a graph any
// backend can compile. Sessions (generate.hpp) drive prefill and decode with it.
#pragma once

#include <porta/expert_parallel.hpp>
#include <porta/config.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <porta/graph.hpp>
#include <porta/model/config.hpp>
#include <porta/quant.hpp>
#include <porta/tensor.hpp>

PORTA_API_BEGIN
namespace porta::model {

struct LoadOptions {
  // Quantized checkpoints (DeepSeek FP8, compressed-tensors, msModelSlim) keep their weights
  // quantized in memory (views of the mapping, computed with the quantized ops). With
  // `dequantize` they are dequantised at load into fp8_dtype instead (bf16: half the memory of
  // f32), as porta did before it had quantized ops.
  bool dequantize = false;
  DType fp8_dtype = DType::BF16;
  // When set, every floating-point weight is converted to this dtype at load (a copy), for
  // backends whose kernels want one dtype. Unset: weights keep the checkpoint's dtype and are
  // used from the mapping without a copy.
  std::optional<DType> weight_dtype;
  // Expert parallelism: this process is rank `ep_rank` and loads, for each MoE layer, only the
  // experts `ep_placement` gives it (in slot order), so it maps its share of the experts; the
  // graph's MoE layers become moe_experts_ep. Every MoE layer needs a placement.
  std::optional<ep::ModelPlacement> ep_placement;
  std::int64_t ep_rank = 0;
  // Map every weight's pages into the page tables at load (reading the file where the page cache
  // lacks them), so that the first forward pass does not page-fault through the mapping: on a
  // 9 GB checkpoint in the page cache this adds about 0.4 s to load and takes it off the first
  // prefill. Only the weights this process uses are touched (an expert-parallel rank: its share).
  bool prefault = true;
};

// What loading cost: bytes used straight from the mapping, bytes copied (dtype conversion, the
// MLA absorption split, biases widened to f32), each with its reason, and bytes produced by FP8
// dequantisation. Expert weights are not copied: they are stacked as tables of views.
struct LoadStats {
  std::size_t tensors = 0;
  std::uint64_t mapped_bytes = 0;
  std::uint64_t copied_bytes = 0;
  std::map<std::string, std::uint64_t> copies;  // reason -> bytes; they sum to copied_bytes
  std::uint64_t dequantized_bytes = 0;
  std::size_t quantized_tensors = 0;  // weights kept quantized (counted in `tensors` too)
  std::uint64_t quantized_bytes = 0;  // their data + scales + zero points
  std::uint64_t prefaulted_bytes = 0;  // weight bytes mapped into the page tables at load
  double seconds = 0;                  // wall time of Model::load, prefaulting included
};

// w[N, K] in f8_e4m3 times its block scales scale_inv[ceil(N / bn), ceil(K / bk)] (f32 or bf16),
// in f32, rounded once into `to` (bf16 or f32). `name` appears in error messages.
Tensor dequantize_fp8(const Tensor& weight, const Tensor& scale_inv,
                      std::pair<std::int64_t, std::int64_t> block, DType to,
                      const std::string& name = "weight");

// A weight the checkpoint stores quantized, in the canonical layout of include/porta/quant.hpp,
// with the activation mode its format asks for (W8A8: int8 activations; weight-only: none).
struct QuantizedWeight {
  QuantizedTensor weight;
  ActivationQuant activation = ActivationQuant::None;
  QuantActivationParams input;  // ActivationQuant::StaticInt8 only
};

// The shape of a graph Model::build() describes.
struct GraphSpec {
  std::int64_t tokens = 1;          // T new tokens (ids and positions inputs of shape [T])
  std::int64_t cache_capacity = 0;  // S: cache inputs of S positions and a cache_len input; 0: none
  bool all_logits = true;           // logits [T, V]; false: only the last position's, [1, V]
  // Also output each layer's attention and MLP/MoE block results, "layer.<l>.attention" and
  // "layer.<l>.mlp" [T, H] (before their residual add), for layer-by-layer comparisons.
  bool block_outputs = false;
  // Also output each MoE layer's router counts, "layer.<l>.expert_counts" [E] (i32): the tokens
  // routed to each expert (`porta run --record-expert-load`).
  bool expert_counts = false;
};

// One tensor of a layer's KV cache: graph input "cache.<layer>.<name>" of shape [S, heads, dim]
// and graph output "new.<layer>.<name>" of shape [T, heads, dim] (the rows for the new tokens).
// MLA caches one "latent" tensor (heads 1, dim kv_lora_rank + qk_rope_head_dim: the normalised
// c_kv and the rotated k_pe); standard attention caches "k" and "v".
struct CacheSlot {
  std::string name;
  std::int64_t heads = 0;
  std::int64_t dim = 0;
};

inline constexpr const char* kIdsInput = "ids";
inline constexpr const char* kPositionsInput = "positions";
inline constexpr const char* kCacheLenInput = "cache_len";
inline constexpr const char* kLogitsOutput = "logits";
std::string cache_input_name(std::int64_t layer, const std::string& slot);
std::string cache_output_name(std::int64_t layer, const std::string& slot);

class Model {
 public:
  // DIR holds config.json and model.safetensors or model.safetensors.index.json with its shards.
  static Model load(const std::string& dir, const LoadOptions& options = {});
  // From tensors under their Hugging Face names (a generated model, a test's).
  static Model from_tensors(ModelConfig config, const std::map<std::string, Tensor>& tensors,
                            const LoadOptions& options = {});

  const ModelConfig& config() const;
  const LoadStats& stats() const;
  std::vector<CacheSlot> cache_slots() const;  // the same for every layer

  // The forward pass for spec.tokens tokens: inputs ids [T] and positions [T] (i32) and, with a
  // cache, cache_len [1] (i32) and the cache inputs; outputs logits (f32) and the new cache rows.
  Graph build(const GraphSpec& spec) const;

  // Bytes of all prepared weights, and of those one decode step reads (everything but the
  // embedding table and the routed experts, plus one embedding row and top_k experts per MoE
  // layer): the numerator of decode's memory-bandwidth bound.
  std::uint64_t weight_bytes() const;
  std::uint64_t decode_bytes_per_token() const;

  // A prepared weight by its name (Hugging Face names; the experts of a MoE layer are
  // "model.layers.N.moe.experts.{gate,up,down}", [E, ...] tensors stacked from views of the
  // mapping: Tensor::part(e)). Throws NotFound.
  const Tensor& weight(const std::string& name) const;
  // The same names for the weights kept quantized: nullptr when `name` is not one of them.
  const QuantizedWeight* quantized_weight(const std::string& name) const;
  std::vector<std::string> quantized_weight_names() const;
  // The checkpoint's quantized format ("compressed-tensors ...", "msModelSlim W8A8_DYNAMIC",
  // "fp8 e4m3 128x128 blocks"); empty when it has none.
  const std::string& quant_format() const;

  struct Impl;

 private:
  std::shared_ptr<const Impl> impl_;
};

}  // namespace porta::model
PORTA_API_END
