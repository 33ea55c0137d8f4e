// The quantized checkpoint formats porta reads, each converted to the canonical QuantizedTensor
// of include/porta/quant.hpp: DeepSeek-V3 FP8 (e4m3 + 128x128 weight_scale_inv), compressed-tensors
// (int-quantized W8A8 / W8A16, pack-quantized W4A16, symmetric or with zero points) and
// msModelSlim (quant_model_description.json: W8A8, W8A8_DYNAMIC, W8A16). The layouts and their
// sources are in docs/quantized-checkpoints.md.
//
// Tensors stay views of the mapping wherever the format's bytes already are the canonical bytes;
// anything repacked is reported with its byte count and reason, as LoadStats does for copies.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <porta/model/model.hpp>
#include <porta/quant.hpp>

namespace porta::model {

// Where a loader's tensors come from (a checkpoint, a test's map); `where` names it in messages.
struct TensorSource {
  std::string where;
  std::function<bool(const std::string&)> contains;
  std::function<Tensor(const std::string&)> get;
};

using QuantLinear = QuantizedWeight;

// A copy made while converting to the canonical layout: bytes and why.
using CopyReport = std::function<void(const std::string& why, std::uint64_t bytes)>;

// A checkpoint's quantization, detected from config.json's quantization_config or from
// quant_model_description.json next to it.
class QuantFormatReader {
 public:
  virtual ~QuantFormatReader() = default;
  // "compressed-tensors pack-quantized", "msModelSlim W8A8_DYNAMIC", "fp8 128x128 blocks".
  virtual std::string name() const = 0;
  // The weight `weight_name` (".../q_proj.weight") of logical shape [N, K] in the canonical
  // layout, or nullopt when the checkpoint stores it unquantized. Throws porta::Error naming
  // the tensor and the field when the format's tensors or description are inconsistent.
  virtual std::optional<QuantLinear> linear(const TensorSource& src, const std::string& weight_name,
                                            const Shape& logical, const CopyReport& copied) const = 0;
  // The embedding table [vocab, hidden] when the format keeps it quantized (a GGUF's token_embd
  // in its blocks, gathered by quant_embedding), else nullopt: the formats that quantize linear
  // layers only store it unquantized.
  // Whether the reader holds `weight_name` where the tensor source does not list it (a GGUF's
  // matrices kept in their blocks), so that the loader can ask for tensors a source may lack.
  virtual bool holds(const std::string& /*weight_name*/) const { return false; }
  virtual std::optional<QuantLinear> embedding_table(const TensorSource&, const std::string&,
                                                     const Shape&, const CopyReport&) const {
    return std::nullopt;
  }
};

// nullptr when the checkpoint is not quantized. `dir` is empty for in-memory sources (then only
// config.json's quantization_config is looked at).
std::unique_ptr<QuantFormatReader> open_quant_format(const std::string& dir,
                                                     const ModelConfig& config);

std::unique_ptr<QuantFormatReader> make_fp8_reader(std::pair<std::int64_t, std::int64_t> block);
std::unique_ptr<QuantFormatReader> make_compressed_tensors_reader(const std::string& config_json,
                                                                  const std::string& source);
std::unique_ptr<QuantFormatReader> make_msmodelslim_reader(const std::string& description_path);

// Shared by the readers: `name` must be present, with this dtype set and shape.
Tensor fetch_exact(const TensorSource& src, const std::string& name, std::initializer_list<DType> dtypes,
                   const std::optional<Shape>& shape, const std::string& field);

}  // namespace porta::model
