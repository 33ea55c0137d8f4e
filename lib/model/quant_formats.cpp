// Which quantized format a checkpoint uses, DeepSeek-V3's FP8 blocks, and the checks the format
// readers share.
#include <filesystem>

#include <fmt/format.h>

#include "model/quant_formats.hpp"

namespace porta::model {

namespace {

// DeepSeek-V3: `weight` f8_e4m3 [N, K] and `weight_scale_inv` [ceil(N / bn), ceil(K / bk)],
// value = f8(q) · scale_inv (the quantizer divided by it, hence the name): the canonical F8E4M3
// layout with block_n = bn and group_k = bk, both views of the mapping.
class Fp8Reader final : public QuantFormatReader {
 public:
  explicit Fp8Reader(std::pair<std::int64_t, std::int64_t> block) : block_(block) {}
  std::string name() const override {
    return fmt::format("fp8 e4m3 {}x{} blocks", block_.first, block_.second);
  }
  std::optional<QuantLinear> linear(const TensorSource& src, const std::string& weight_name,
                                    const Shape& logical, const CopyReport&) const override {
    if (!src.contains(weight_name) || src.get(weight_name).dtype() != DType::F8E4M3)
      return std::nullopt;
    QuantLinear out;
    QuantizedTensor& w = out.weight;
    w.shape = logical;
    w.scheme.format = QuantFormat::F8E4M3;
    w.scheme.block_n = block_.first;
    w.scheme.group_k = block_.second;
    w.data = fetch_exact(src, weight_name, {DType::F8E4M3}, logical, "weight");
    w.scale = fetch_exact(src, weight_name + "_scale_inv", {DType::F32, DType::BF16, DType::F16},
                          quant_scale_shape(logical, w.scheme), "weight_scale_inv");
    w.scheme.scale_dtype = w.scale.dtype();
    validate(w, weight_name);
    return out;
  }

 private:
  std::pair<std::int64_t, std::int64_t> block_;
};

}  // namespace

Tensor fetch_exact(const TensorSource& src, const std::string& name,
                   std::initializer_list<DType> dtypes, const std::optional<Shape>& shape,
                   const std::string& field) {
  if (!src.contains(name))
    throw Error(ErrorCode::NotFound,
                fmt::format("{}: tensor '{}' is missing (the quantized weight's {})", src.where,
                            name, field));
  Tensor t = src.get(name);
  if (std::find(dtypes.begin(), dtypes.end(), t.dtype()) == dtypes.end()) {
    std::vector<std::string> names;
    for (DType d : dtypes) names.emplace_back(dtype_name(d));
    throw Error(ErrorCode::DTypeMismatch,
                fmt::format("{}: tensor '{}' ({}) is {}; its format wants {}", src.where, name,
                            field, dtype_name(t.dtype()), fmt::join(names, " or ")));
  }
  if (shape && t.shape() != *shape)
    throw Error(ErrorCode::ShapeMismatch,
                fmt::format("{}: tensor '{}' ({}) has shape {} but the weight's shape implies {}",
                            src.where, name, field, t.shape().to_string(), shape->to_string()));
  return t;
}

std::unique_ptr<QuantFormatReader> make_fp8_reader(std::pair<std::int64_t, std::int64_t> block) {
  return std::make_unique<Fp8Reader>(block);
}

std::unique_ptr<QuantFormatReader> open_quant_format(const std::string& dir,
                                                     const ModelConfig& config) {
  if (config.quant_method == "fp8" && config.fp8_block) return make_fp8_reader(*config.fp8_block);
  if (config.quant_method == "compressed-tensors")
    return make_compressed_tensors_reader(config.quantization_config,
                                          dir.empty() ? "config.json" : dir + "/config.json");
  if (!dir.empty()) {
    const auto description = std::filesystem::path(dir) / "quant_model_description.json";
    if (std::filesystem::is_regular_file(description))
      return make_msmodelslim_reader(description.string());
  }
  return nullptr;
}

}  // namespace porta::model
