// FP8 block dequantisation: DeepSeek-V3 stores linear weights as e4m3 with one f32 scale per
// 128 x 128 block (weight_scale_inv; "inv" because the quantiser divided by it). The product is
// formed in f32 as the reference code does, then rounded once into the target dtype.
#include <cmath>

#include <fmt/format.h>

#include <porta/model/model.hpp>

namespace porta::model {

Tensor dequantize_fp8(const Tensor& weight, const Tensor& scale_inv,
                      std::pair<std::int64_t, std::int64_t> block, DType to,
                      const std::string& name) {
  if (weight.dtype() != DType::F8E4M3 || weight.shape().rank() != 2)
    throw Error(ErrorCode::DTypeMismatch,
                fmt::format("'{}' must be a 2-D f8_e4m3 matrix to dequantise, not {}", name,
                            weight.description()));
  if (to != DType::BF16 && to != DType::F32)
    throw Error(
        ErrorCode::InvalidArgument,
        fmt::format("'{}': FP8 weights dequantise to bf16 or f32, not {}", name, dtype_name(to)));
  const auto [bn, bk] = block;
  if (bn < 1 || bk < 1)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("'{}': the FP8 block size must be positive", name));
  const auto n = weight.shape()[0];
  const auto k = weight.shape()[1];
  const Shape expected{(n + bn - 1) / bn, (k + bk - 1) / bk};
  if (!is_floating(scale_inv.dtype()) || scale_inv.dtype() == DType::F8E4M3 ||
      scale_inv.shape() != expected)
    throw Error(ErrorCode::ShapeMismatch,
                fmt::format("'{}_scale_inv' must be f32/bf16/f16 {} for a {} weight in {}x{} "
                            "blocks, not {}",
                            name, expected.to_string(), weight.shape().to_string(), bn, bk,
                            scale_inv.description()));
  const std::vector<float> scales = scale_inv.to_f32();
  for (std::size_t i = 0; i < scales.size(); ++i)
    if (!std::isfinite(scales[i]))
      throw Error(ErrorCode::CorruptFile,
                  fmt::format("'{}_scale_inv' holds a non-finite scale at block {}", name, i));
  const auto* bits = static_cast<const std::uint8_t*>(weight.data());
  const auto blocks_per_row = expected[1];
  Tensor out = Tensor::zeros(weight.shape(), to);
  float* out_f32 = to == DType::F32 ? static_cast<float*>(out.data()) : nullptr;
  auto* out_bf16 = to == DType::BF16 ? static_cast<BFloat16*>(out.data()) : nullptr;
  for (std::int64_t r = 0; r < n; ++r) {
    const float* row_scales = scales.data() + (r / bn) * blocks_per_row;
    for (std::int64_t c = 0; c < k; ++c) {
      const std::uint8_t b = bits[r * k + c];
      if ((b & 0x7fu) == 0x7fu)
        throw Error(ErrorCode::CorruptFile,
                    fmt::format("'{}' holds an FP8 NaN at [{}, {}]", name, r, c));
      const float v = f8e4m3_bits_to_f32(b) * row_scales[c / bk];
      if (out_f32)
        out_f32[r * k + c] = v;
      else
        out_bf16[r * k + c] = BFloat16::from_float(v);
    }
  }
  return out;
}

}  // namespace porta::model
