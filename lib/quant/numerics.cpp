// The reference numerics of quantized weights: element values, the activation quantizers and the
// quantized linear layer, exactly as docs/quantization.md writes them.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include <porta/dtype.hpp>

#include "quant/quant_math.hpp"

namespace porta::detail {

float QuantMatrix::scale_at(std::int64_t row, std::int64_t g) const noexcept {
  const std::int64_t bn = scheme.block_n < 1 ? 1 : scheme.block_n;
  return load_as_f32(scale, scheme.scale_dtype,
                     static_cast<std::size_t>((row / bn) * groups() + g));
}

void QuantMatrix::scale_row(std::int64_t row, float* out) const {
  const std::int64_t bn = scheme.block_n < 1 ? 1 : scheme.block_n;
  const auto* base =
      static_cast<const char*>(scale) +
      static_cast<std::size_t>((row / bn) * groups()) * dtype_size(scheme.scale_dtype);
  convert(base, scheme.scale_dtype, out, DType::F32, static_cast<std::size_t>(groups()));
}

std::int32_t QuantMatrix::zero_at(std::int64_t row, std::int64_t g) const noexcept {
  if (zero == nullptr) return scheme.format == QuantFormat::Int4 ? 8 : 0;
  const std::int64_t bn = scheme.block_n < 1 ? 1 : scheme.block_n;
  return zero[(row / bn) * groups() + g];
}

std::int32_t QuantMatrix::code(std::int64_t row, std::int64_t col) const noexcept {
  const auto* bytes = static_cast<const std::uint8_t*>(data);
  if (scheme.format == QuantFormat::Int4) {
    const std::uint8_t b = bytes[row * (k / 2) + col / 2];
    return (col % 2 == 0) ? (b & 0x0f) : (b >> 4);
  }
  return static_cast<std::int8_t>(bytes[row * k + col]);
}

void dequantize_row(const QuantMatrix& w, std::int64_t row, float* out) {
  if (w.scheme.format == QuantFormat::GgmlBlocks) {  // the format's own definition, block by block
    const std::size_t bytes = gguf::row_bytes(w.scheme.ggml_type, static_cast<std::uint64_t>(w.k));
    gguf::dequantize(w.scheme.ggml_type,
                     {static_cast<const std::byte*>(w.data) + static_cast<std::size_t>(row) * bytes,
                      bytes},
                     {out, static_cast<std::size_t>(w.k)});
    return;
  }
  const std::int64_t group = w.group();
  const auto* bytes = static_cast<const std::uint8_t*>(w.data);
  for (std::int64_t g = 0; g * group < w.k; ++g) {
    const float s = w.scale_at(row, g);
    const std::int32_t z = w.zero_at(row, g);
    const std::int64_t end = std::min(w.k, (g + 1) * group);
    for (std::int64_t c = g * group; c < end; ++c) {
      if (w.scheme.format == QuantFormat::F8E4M3)
        out[c] = f8e4m3_bits_to_f32(bytes[row * w.k + c]) * s;
      else
        out[c] = static_cast<float>(w.code(row, c) - z) * s;
    }
  }
}

void centred_codes_row(const QuantMatrix& w, std::int64_t row, std::int32_t* out) {
  const std::int64_t group = w.group();
  for (std::int64_t g = 0; g * group < w.k; ++g) {
    const std::int32_t z = w.zero_at(row, g);
    const std::int64_t end = std::min(w.k, (g + 1) * group);
    for (std::int64_t c = g * group; c < end; ++c) out[c] = w.code(row, c) - z;
  }
}

void quantize_activations_static(const float* x, std::int64_t count, QuantActivationParams p,
                                 std::int8_t* q) {
  for (std::int64_t i = 0; i < count; ++i) {
    float v = round_half_even(x[i] / p.scale);
    if (std::isnan(v)) v = 0.0f;
    v = std::clamp(v + p.offset, -128.0f, 127.0f);
    q[i] = static_cast<std::int8_t>(v);
  }
}

float int8_output(const std::int64_t* acc, const QuantMatrix& w, std::int64_t row,
                  float x_scale) noexcept {
  float y = 0.0f;
  for (std::int64_t g = 0; g < w.groups(); ++g)
    y += static_cast<float>(acc[g]) * w.scale_at(row, g);
  return y * x_scale;
}

void quant_linear_reference(const float* x, std::int64_t rows, const QuantMatrix& w,
                            ActivationQuant mode, QuantActivationParams params, float* out) {
  const auto k = static_cast<std::size_t>(w.k);
  const auto n = static_cast<std::size_t>(w.n);
  if (mode == ActivationQuant::GgmlQ8) {  // the exact product of the rounded activations
    const gguf::Q8Blocks blocks = gguf::q8_activation_blocks(w.scheme.ggml_type);
    std::vector<float> rounded(static_cast<std::size_t>(rows) * k);
    for (std::int64_t m = 0; m < rows; ++m)
      gguf::round_q8_activations(blocks, x + m * w.k, w.k, rounded.data() + m * w.k);
    return quant_linear_reference(rounded.data(), rows, w, ActivationQuant::None, params, out);
  }
  if (mode == ActivationQuant::None) {
    std::vector<float> row(k);
    for (std::size_t j = 0; j < n; ++j) {
      dequantize_row(w, static_cast<std::int64_t>(j), row.data());
      for (std::size_t m = 0; m < static_cast<std::size_t>(rows); ++m) {
        double acc = 0;
        for (std::size_t c = 0; c < k; ++c)
          acc += static_cast<double>(x[m * k + c]) * static_cast<double>(row[c]);
        out[m * n + j] = static_cast<float>(acc);
      }
    }
    return;
  }
  std::vector<std::int8_t> q(static_cast<std::size_t>(rows) * k);
  std::vector<float> x_scale(static_cast<std::size_t>(rows), params.scale);
  std::int32_t offset = 0;
  if (mode == ActivationQuant::DynamicInt8) {
    quantize_activations_per_token(x, rows, w.k, q.data(), x_scale.data());
  } else {
    quantize_activations_static(x, rows * w.k, params, q.data());
    offset = static_cast<std::int32_t>(params.offset);
  }
  const std::int64_t group = w.group();
  std::vector<std::int32_t> codes(k);
  std::vector<std::int64_t> acc(static_cast<std::size_t>(w.groups()));
  for (std::size_t j = 0; j < n; ++j) {
    centred_codes_row(w, static_cast<std::int64_t>(j), codes.data());
    for (std::size_t m = 0; m < static_cast<std::size_t>(rows); ++m) {
      std::fill(acc.begin(), acc.end(), 0);
      for (std::size_t c = 0; c < k; ++c)
        acc[c / static_cast<std::size_t>(group)] +=
            static_cast<std::int64_t>(q[m * k + c] - offset) * codes[c];
      out[m * n + j] = int8_output(acc.data(), w, static_cast<std::int64_t>(j), x_scale[m]);
    }
  }
}

}  // namespace porta::detail
