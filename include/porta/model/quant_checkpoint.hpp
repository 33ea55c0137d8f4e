// Writing quantized checkpoints in the formats porta reads: compressed-tensors (int-quantized
// W8A8 / W8A16, pack-quantized W4A16 symmetric or asymmetric), msModelSlim (W8A8 static,
// W8A8_DYNAMIC) and DeepSeek-V3 FP8. The test suite writes its quantized checkpoints with these,
// `porta gen-checkpoint --format` and `porta quantize` are built on them. The on-disk layouts,
// and where each is documented, are in docs/quantized-checkpoints.md.
#pragma once

#include <porta/config.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <porta/io.hpp>
#include <porta/quant.hpp>
#include <porta/tensor.hpp>

PORTA_API_BEGIN
namespace porta::model {

struct QuantizedFormat {
  enum class Family : std::uint8_t { CompressedTensors, MsModelSlim, Fp8 };
  Family family = Family::CompressedTensors;
  QuantScheme scheme;                                   // how each linear weight is quantized
  ActivationQuant activation = ActivationQuant::None;  // what the format tells the runtime
};

// "compressed-tensors-w8a8", "compressed-tensors-w8a16", "compressed-tensors-w4a16",
// "compressed-tensors-w4a16-asym", "msmodelslim-w8a8", "msmodelslim-w8a8-dynamic", "fp8".
// `group` is the int4 group along K (compressed-tensors-w4a16*). Throws listing the names.
std::vector<std::string> quantized_format_names();
QuantizedFormat parse_quantized_format(std::string_view name, std::int64_t group = 128);

// Whether porta's writers quantize the checkpoint tensor `name`: the linear projections
// (attention, dense MLP, experts and shared experts), not embeddings, lm_head, norms or routers.
bool is_quantized_linear(const std::string& name);

// The tensors (name, value) that store the float weight `name` [N, K] in `format`:
// "X.weight" + "X.weight_scale" (+ zero points, packing, msModelSlim's static parameters).
std::vector<std::pair<std::string, Tensor>> encode_linear(const std::string& name, const Tensor& w,
                                                          const QuantizedFormat& format);

// The (name, dtype, shape) of what encode_linear() writes for a [N, K] weight, in its order,
// without encoding (compressed-tensors formats: the streaming quantizer's output header).
std::vector<io::TensorSpec> quantized_tensor_specs(const std::string& name, const Shape& shape,
                                                   const QuantizedFormat& format);

// config.json with the format's quantization_config added (compressed-tensors, fp8), or as it is.
std::string quantized_config_json(const std::string& config_json, const QuantizedFormat& format);
// msModelSlim's quant_model_description.json for these tensor names (others: "FLOAT").
std::string msmodelslim_description(const std::vector<std::string>& tensor_names,
                                    const QuantizedFormat& format);

// All of a checkpoint's float tensors re-encoded: quantized linears replaced by their format's
// tensors, the rest as they are. Writes nothing.
std::vector<std::pair<std::string, Tensor>> encode_checkpoint(
    const std::vector<std::pair<std::string, Tensor>>& tensors, const QuantizedFormat& format);

// Writes config.json (with quantization_config), the tensors and, for msModelSlim,
// quant_model_description.json into `dir`.
void write_quantized_checkpoint(const std::string& dir, const std::string& config_json,
                                const std::vector<std::pair<std::string, Tensor>>& float_tensors,
                                const QuantizedFormat& format);

// `porta quantize`: reads the float checkpoint in `in_dir` and writes it quantized into
// `out_dir`, streaming tensor by tensor (memory: one tensor and its encoding; the source pages
// are released from the mapping after use), copying config.json (with quantization_config) and
// the tokenizer files. Returns the bytes written.
struct QuantizeStats {
  std::uint64_t bytes_in = 0, bytes_out = 0;
  std::size_t quantized = 0, copied = 0;  // tensors
  double seconds = 0;
};
QuantizeStats quantize_checkpoint(const std::string& in_dir, const std::string& out_dir,
                                  const QuantizedFormat& format);

}  // namespace porta::model
PORTA_API_END
