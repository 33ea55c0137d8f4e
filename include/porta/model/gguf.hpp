// Models from GGUF files: llama.cpp's deepseek2, llama-with-experts (Mixtral), qwen2moe and
// qwen3moe architectures mapped onto porta's ModelConfig and Hugging Face weight names, so that
// a GGUF loads through the same Model::from_tensors path as a safetensors checkpoint.
//
// gguf_config() reads `<arch>.*` metadata into the config.json porta's parse_config() takes;
// gguf_hf_tensors() produces every tensor the config implies under its Hugging Face name and
// shape: GGUF's merged expert tensors are sliced per expert, llama's permuted q/k rows put back,
// deepseek2's split attn_k_b/attn_v_b recombined into kv_b_proj (or, when blocks are kept, handed
// over as the two halves the absorbed attention multiplies by). f32/f16/bf16 tensors whose
// layout needs no change stay views of the mapping; matrices in a block type (every one porta
// reads has cpu kernels) stay packed as views of the mapping too (ggml-block quantized weights,
// include/porta/quant.hpp), the embedding table included. The export direction (gguf_from_hf)
// writes a porta model as a GGUF the way llama.cpp's converter lays it out.
#pragma once

#include <porta/config.hpp>

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <porta/gguf.hpp>
#include <porta/model/model.hpp>
#include <porta/quant.hpp>

PORTA_API_BEGIN
namespace porta::model {

// True when `path` is a regular file starting with the GGUF magic.
bool is_gguf_file(const std::string& path);

// The Hugging Face config.json (as JSON text) a GGUF's metadata implies; errors name the GGUF
// key. gguf_config parses it with parse_config().
std::string gguf_config_json(const gguf::GgufFile& file);
ModelConfig gguf_config(const gguf::GgufFile& file);

struct GgufTensors {
  std::map<std::string, Tensor> tensors;  // Hugging Face names
  // Matrices kept as ggml blocks (keep_blocks): views of the mapping under their Hugging Face
  // names, never also in `tensors`; `block_sources` names the GGUF tensor of each.
  std::map<std::string, QuantizedTensor> blocks;
  std::map<std::string, std::string> block_sources;
  // GGUF tensors that were dequantized, with their ggml type names, in file order.
  std::vector<std::pair<std::string, std::string>> dequantized;
  // GGUF tensors kept packed, with their ggml type names, in file order.
  std::vector<std::pair<std::string, std::string>> packed;
  std::uint64_t mapped_bytes = 0;  // bytes used as views of the mapping (float and blocks)
  // The Hugging Face names (of `tensors` and `blocks`) that are not views of the mapping, and
  // why: "dequantized", or what the copy was made for.
  std::map<std::string, std::string> made;
};
inline constexpr const char* kGgufDequantized = "dequantized";
// The block types whose matrices gguf_hf_tensors keeps packed: those with cpu block kernels.
bool gguf_keeps_packed(gguf::GgmlType type) noexcept;
// Every tensor `config` implies, from `file`. Block types are dequantized into `dequantize_to`
// (f32 or bf16), except, with `keep_blocks`, the matrices (every rank-2 weight) of a type
// gguf_keeps_packed(), which go into `blocks`. With `keep_blocks`, a deepseek2 file's split
// attn_k_b [H, r, nope] and attn_v_b [H, v, r] are given as they are (in `blocks` or `tensors`)
// under "model.layers.<l>.self_attn.k_b_proj.weight" and ".v_b_proj.weight" instead of
// kv_b_proj, which the loader takes as the absorbed attention's per-head weights.
// Missing tensors, wrong shapes and types porta cannot dequantize are errors naming the GGUF
// tensor (and the Hugging Face name it stands for).
GgufTensors gguf_hf_tensors(const gguf::GgufFile& file, const ModelConfig& config,
                            DType dequantize_to = DType::BF16, bool keep_blocks = false);

struct GgufLoadOptions {
  LoadOptions load;
  // What is dequantized at load: block types without kernels, the matrices under
  // LoadOptions::dequantize, and the key halves of MLA's attn_kv_b (multiplied by columns).
  DType dequantize_to = DType::BF16;
  // Matrices in block types stay packed and are computed on in place (quant_matmul and
  // quant_moe_experts over ggml blocks); false dequantizes them at load to `dequantize_to`, as
  // LoadOptions::dequantize = true does.
  bool keep_blocks = true;
  // How the packed matrices meet their activations. GgmlQ8, the default, rounds them to
  // llama.cpp's 8-bit blocks first: the arithmetic llama.cpp defines for these types, and its
  // integer dot products where the cpu has them. None multiplies the f32 activations by the
  // exact weights: slower, and the backends agree within 1e-5 on whole models, where with
  // GgmlQ8 a rounding boundary an ulp away can move a product by a step of its block
  // (docs/gguf.md, "Which numerics a GGUF gets").
  ActivationQuant activations = ActivationQuant::GgmlQ8;
};
struct GgufLoadReport {
  std::size_t dequantized_tensors = 0;
  std::size_t packed_tensors = 0;  // GGUF tensors kept as ggml blocks
  std::string summary;  // lines for `porta run`, empty when nothing was dequantized or packed
};
Model load_gguf(const std::string& path, const GgufLoadOptions& options = {},
                GgufLoadReport* report = nullptr);

// ---- export ------------------------------------------------------------------------------------
// llama-quantize's per-tensor recipes on top of one matrix type: Q4_K_M and Q5_K_M, the files
// most GGUF users hold, store the output head, the value projections of the outer and every
// third layer and the down projections (experts' too) of the same layers in q6_K; 8-expert
// models (Mixtral) also get q8_0 keys and values, and Q4_K_M q5_K attention outputs.
enum class GgufMix { None, Q4_K_M, Q5_K_M };
// "q4_K_M" / "Q4_K_M" and "q5_K_M"; InvalidArgument naming the text otherwise.
GgufMix parse_gguf_mix(const std::string& text);
std::string gguf_mix_name(GgufMix mix);

struct GgufExportOptions {
  // Type of the matrices (embedding, projections, experts). A row length the type's block does
  // not divide falls back as llama.cpp's quantizer does (q2_K, q3_K, iq4_xs to iq4_nl; q4_K to
  // q5_0; q5_K to q5_1; q6_K to q8_0), then to f16. Norms, biases and the router stay f32.
  gguf::GgmlType matrix_type = gguf::GgmlType::BF16;
  // A recipe instead of one type: its base type (q4_K, q5_K) replaces matrix_type, and
  // general.file_type is written as llama-quantize writes it.
  GgufMix mix = GgufMix::None;
  // deepseek2: write kv_b_proj as llama.cpp's current converter does (attn_k_b, transposed, and
  // attn_v_b) instead of one attn_kv_b.
  bool split_kv_b = false;
  // When set, the Hugging Face tokenizer in this folder is written as tokenizer.ggml.* keys.
  std::string tokenizer_dir;
};
// GGUF metadata for `config` (general.architecture, `<arch>.*`). InvalidArgument for configs
// GGUF cannot express (DeepSeek moe_layer_freq > 1, YaRN mscale != mscale_all_dim).
std::vector<std::pair<std::string, gguf::Value>> gguf_metadata(
    const ModelConfig& config, const GgufExportOptions& options = {});
// The GGUF tensors for Hugging Face tensors `hf` of a model of `config`.
std::vector<gguf::TensorToWrite> gguf_from_hf(const ModelConfig& config,
                                              const std::vector<std::pair<std::string, Tensor>>& hf,
                                              const GgufExportOptions& options = {});
void write_gguf_model(const std::string& path, const ModelConfig& config,
                      const std::vector<std::pair<std::string, Tensor>>& hf,
                      const GgufExportOptions& options = {});
// The same with the Hugging Face tensors made one at a time: `make` is called once per
// tensor of expected_tensors(config), in that order, and each is released once the GGUF tensor
// it goes into is stored, so the model is never whole in memory beside the file's bytes (for
// models larger than the memory, e.g. random_weight() at a real model's shapes).
using HfTensorMaker = std::function<Tensor(const std::string& name, const Shape& shape)>;
void write_gguf_model(const std::string& path, const ModelConfig& config, const HfTensorMaker& make,
                      const GgufExportOptions& options = {});

}  // namespace porta::model
PORTA_API_END
