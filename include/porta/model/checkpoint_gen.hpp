// Random checkpoints in the exact Hugging Face layout (config.json + model.safetensors, or
// shards with model.safetensors.index.json), for tests, demos and benchmarks.
//
// The tiny presets are small enough to run on any backend in milliseconds yet exercise every
// code path of their family: the DeepSeek-V3-like one has hidden 64, 4 layers (the first dense),
// 16 routed experts in 4 groups with top-4 noaux_tc routing, 1 shared expert, MLA with q_lora_rank
// 32 and kv_lora_rank 16, YaRN rope and vocab 256. Weights are uniform with the std of a
// 1/sqrt(fan_in) initialisation, from a seeded stream: the same seed gives the same bytes.
#pragma once

#include <porta/config.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <porta/model/config.hpp>
#include <porta/tensor.hpp>

PORTA_API_BEGIN
namespace porta::model {

// "deepseek_v3", "deepseek_v2", "mixtral", "qwen2_moe", "qwen3_moe"
std::vector<std::string> tiny_kinds();
// The config.json text of a tiny preset; throws InvalidArgument listing the kinds. With `fp8`
// it carries DeepSeek-V3's quantization_config (e4m3, 128 x 128 blocks); `layers` > 0 sets the
// layer count (llama.cpp, for one, tells DeepSeek-V2-Lite from V2 by its 27 layers).
std::string tiny_config_json(std::string_view kind, bool fp8 = false, std::int64_t layers = 0);

// Every tensor a config implies, under its Hugging Face name, in checkpoint order (FP8 scales
// not included).
std::vector<std::pair<std::string, Shape>> expected_tensors(const ModelConfig& config);

struct RandomWeightsOptions {
  std::uint64_t seed = 0;
  DType dtype = DType::BF16;  // f32, bf16 or f16
  // Store the linear projections as f8_e4m3 with per-block weight_scale_inv (the config must
  // carry quantization_config.weight_block_size), as DeepSeek-V3's release does.
  bool fp8 = false;
  // write_random_checkpoint only: a quantized format name (quantized_format_names() in
  // quant_checkpoint.hpp) whose int8 per-channel codes and scales are drawn directly, so a
  // real-size quantized checkpoint is written at disk speed without a float copy. Empty: float.
  std::string format;
};

std::vector<std::pair<std::string, Tensor>> random_weights(const ModelConfig& config,
                                                           const RandomWeightsOptions& options);
// One of random_weights()'s tensors (not FP8: options.fp8 is ignored), the same values: for
// writers that make a model's tensors one at a time (write_gguf_model's HfTensorMaker).
Tensor random_weight(const std::string& name, const Shape& shape,
                     const RandomWeightsOptions& options);

// Writes config.json and the weights into `dir` (created if needed): model.safetensors, or
// `shards` files model-0000i-of-0000n.safetensors with model.safetensors.index.json.
void write_checkpoint(const std::string& dir, const std::string& config_json,
                      const std::vector<std::pair<std::string, Tensor>>& tensors, int shards = 1);

// Real-shape presets: "deepseek-v2-lite", "deepseek-v3", "mixtral-8x7b", "qwen3-30b-a3b".
std::vector<std::string> real_presets();
// The published config.json of a preset; `layers` > 0 keeps only the first N layers, `vocab` > 0
// shrinks the vocabulary (0: as published). Throws InvalidArgument naming an unknown preset.
std::string real_config_json(std::string_view preset, std::int64_t layers = 0,
                             std::int64_t vocab = 0);
// Writes config.json and random weights for every tensor the config implies straight to disk,
// shard by shard (shards of at most shard_bytes, with an index when there are several), never
// holding more than two 8 MiB chunks: a real-size model at disk speed. Values follow the tiny
// presets' laws (norms ~1, matrices 1/sqrt(fan_in)) from a xoshiro256** stream per chunk, so the
// same seed gives the same bytes (not the same values as random_weights()). Returns the bytes of
// tensor data written. options.fp8 is not supported here.
std::uint64_t write_random_checkpoint(const std::string& dir, const std::string& config_json,
                                      const RandomWeightsOptions& options,
                                      std::uint64_t shard_bytes = 4ull << 30);

// Block-quantises w [N, K] to e4m3 with scales [ceil(N / bn), ceil(K / bk)] (f32): each block's
// scale maps its largest magnitude to 448. Returns {weight, weight_scale_inv}.
std::pair<Tensor, Tensor> quantize_fp8(const Tensor& weight,
                                       std::pair<std::int64_t, std::int64_t> block);

}  // namespace porta::model
PORTA_API_END
