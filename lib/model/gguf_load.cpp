// load_gguf(): a GGUF model through the loader every checkpoint takes (lib/model/loader.cpp),
// with the matrices kept as ggml blocks handed over as quantized weights (a QuantFormatReader
// over gguf_hf_tensors' blocks), and the load statistics and `porta run`'s summary saying which
// bytes are views of the mapping, which were dequantized and which were copied.
#include <porta/model/gguf.hpp>

#include <algorithm>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <porta/error.hpp>

#include "model/model_impl.hpp"

namespace porta::model {

namespace {

// The ggml-block matrices of a GGUF as the loader's quantized weights (weight-only).
class GgufBlockReader final : public QuantFormatReader {
 public:
  GgufBlockReader(const GgufTensors& t, ActivationQuant activations)
      : t_(t), activations_(activations) {
    std::set<std::string> types;
    for (const auto& [name, type] : t.packed) types.insert(type);
    name_ = fmt::format("gguf blocks ({})", fmt::join(types, ", "));
  }
  std::string name() const override { return name_; }
  std::optional<QuantLinear> embedding_table(const TensorSource& src, const std::string& name,
                                             const Shape& logical,
                                             const CopyReport& copied) const override {
    // The activation mode is the lm_head's when the table is tied to it; quant_embedding has
    // none of its own.
    return linear(src, name, logical, copied);
  }
  bool holds(const std::string& weight_name) const override {
    return t_.blocks.count(weight_name) != 0;
  }
  std::optional<QuantLinear> linear(const TensorSource&, const std::string& weight_name,
                                    const Shape& logical, const CopyReport& copied) const override {
    const auto it = t_.blocks.find(weight_name);
    if (it == t_.blocks.end()) return std::nullopt;
    if (it->second.shape != logical)
      throw Error(ErrorCode::ShapeMismatch,
                  fmt::format("GGUF tensor '{}' (Hugging Face '{}') is {} but the model needs {}",
                              t_.block_sources.at(weight_name), weight_name,
                              it->second.shape.to_string(), logical.to_string()));
    if (const auto made = t_.made.find(weight_name); made != t_.made.end())
      copied(made->second, it->second.data.nbytes());
    return QuantLinear{it->second, activations_, {}};
  }

 private:
  const GgufTensors& t_;
  ActivationQuant activations_;
  std::string name_;
};

// "q8_0: token_embd.weight, blk.*.attn_q.weight; q6_K: output.weight": the dequantized tensors
// by type, with layer numbers folded so that a 60-layer model still gives one line.
std::string dequantized_list(const std::vector<std::pair<std::string, std::string>>& tensors) {
  std::vector<std::pair<std::string, std::vector<std::string>>> by_type;
  for (const auto& [name, type] : tensors) {
    std::string pattern = name;
    if (pattern.starts_with("blk.")) {
      const std::size_t dot = pattern.find('.', 4);
      if (dot != std::string::npos) pattern = "blk.*" + pattern.substr(dot);
    }
    auto it = std::find_if(by_type.begin(), by_type.end(),
                           [&](const auto& entry) { return entry.first == type; });
    if (it == by_type.end()) it = by_type.insert(by_type.end(), {type, {}});
    if (std::find(it->second.begin(), it->second.end(), pattern) == it->second.end())
      it->second.push_back(pattern);
  }
  std::vector<std::string> parts;
  for (const auto& [type, patterns] : by_type)
    parts.push_back(fmt::format("{}: {}", type, fmt::join(patterns, ", ")));
  return fmt::format("{}", fmt::join(parts, "; "));
}

}  // namespace

Model load_gguf(const std::string& path, const GgufLoadOptions& options, GgufLoadReport* report) {
  const gguf::GgufFile file = gguf::GgufFile::open(path);
  const ModelConfig config = gguf_config(file);
  const GgufTensors tensors =
      gguf_hf_tensors(file, config, options.dequantize_to, options.keep_blocks);
  // The loader counts every float tensor it takes from the source as mapped; the ones made at
  // load are moved to the dequantized and copied counts.
  std::uint64_t dequantized = 0;
  std::map<std::string, std::uint64_t> copies;
  const TensorSource source{
      fmt::format("GGUF '{}'", path),
      [&](const std::string& name) { return tensors.tensors.count(name) != 0; },
      [&](const std::string& name) {
        const Tensor& t = tensors.tensors.at(name);
        if (const auto made = tensors.made.find(name); made != tensors.made.end()) {
          if (made->second == kGgufDequantized)
            dequantized += t.nbytes();
          else
            copies[made->second] += t.nbytes();
        }
        return t;
      }};
  if (options.activations != ActivationQuant::None &&
      options.activations != ActivationQuant::GgmlQ8)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("GGUF activations: {} (none or ggml_q8 only: ggml blocks are "
                            "weight-only or meet llama.cpp's 8-bit blocks)",
                            to_string(options.activations)));
  const GgufBlockReader reader(tensors, options.activations);
  // What the loader dequantizes (--dequantize, MLA's kv_b key halves) goes to dequantize_to too.
  LoadOptions load = options.load;
  load.fp8_dtype = options.dequantize_to;
  Model model = Model::Impl::from_source(
      config, source, load, tensors.blocks.empty() ? nullptr : &reader, [&](LoadStats& s) {
        std::uint64_t moved = dequantized;
        for (const auto& [why, bytes] : copies) moved += bytes;
        s.mapped_bytes -= std::min(s.mapped_bytes, moved);
        s.dequantized_bytes += dequantized;
        for (const auto& [why, bytes] : copies) {
          s.copied_bytes += bytes;
          s.copies[why] += bytes;
        }
      });
  if (report != nullptr) {
    report->dequantized_tensors = tensors.dequantized.size();
    report->packed_tensors = options.load.dequantize ? 0 : tensors.packed.size();
    std::vector<std::string> lines;
    if (report->packed_tensors > 0)
      lines.push_back(fmt::format(
          "gguf: kept {} block-quantized tensors packed, computed on in place ({}); {}",
          tensors.packed.size(), dequantized_list(tensors.packed),
          options.activations == ActivationQuant::GgmlQ8
              ? "activations rounded to llama.cpp's 8-bit blocks (ggml_q8)"
              : "f32 activations, exact products"));
    else if (!tensors.packed.empty())
      lines.push_back(fmt::format("gguf: dequantized {} block-quantized tensors at load "
                                  "(--dequantize) ({})",
                                  tensors.packed.size(), dequantized_list(tensors.packed)));
    const bool packed_kv_b =
        std::any_of(tensors.blocks.begin(), tensors.blocks.end(),
                    [](const auto& b) { return b.first.ends_with("self_attn.kv_b_proj.weight"); });
    if (packed_kv_b && !options.load.dequantize)
      lines.push_back(fmt::format(
          "gguf: MLA's attn_kv_b: value halves kept packed, key halves dequantized to {} at load "
          "(the absorbed attention multiplies by their columns; files with attn_k_b and "
          "attn_v_b keep both packed)",
          dtype_name(load.weight_dtype.value_or(options.dequantize_to))));
    if (!tensors.dequantized.empty())
      lines.push_back(fmt::format(
          "gguf: dequantized {} block-quantized tensors to {} at load ({}); the other matrices "
          "stay packed",
          tensors.dequantized.size(), dtype_name(options.dequantize_to),
          dequantized_list(tensors.dequantized)));
    report->summary = fmt::format("{}", fmt::join(lines, "\n"));
  }
  return model;
}

}  // namespace porta::model
