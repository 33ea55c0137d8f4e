// dequantize(), quantize() and the per-token activation quantizer: the public faces of the
// reference numerics (quant_math.hpp), over whole (possibly stacked) tensors.
#include <algorithm>
#include <cmath>
#include <vector>

#include <fmt/format.h>

#include <porta/error.hpp>
#include <porta/quant.hpp>

#include "quant/quant_layout.hpp"
#include "quant/quant_math.hpp"

namespace porta {

namespace {

// Matrix `i` of the flattened leading dimensions. Stacked tensors (expert stacks) are addressed
// part by part, so their views are never gathered.
struct MatrixWalker {
  Tensor data, scale, zero;
  QuantScheme scheme;
  std::int64_t n = 0, k = 0, count = 1;

  explicit MatrixWalker(const QuantizedTensor& w) : scheme(w.scheme) {
    n = w.shape[-2];
    k = w.shape[-1];
    for (int a = 0; a + 2 < w.shape.rank(); ++a) count *= w.shape[a];
    // part(i) addresses dimension 0 only: deeper stacks are gathered once.
    const bool by_part = w.shape.rank() == 3;
    data = by_part ? w.data : w.data.contiguous();
    scale = by_part ? w.scale : w.scale.contiguous();
    if (w.scheme.zero_point) zero = by_part ? w.zero : w.zero.contiguous();
  }
  static const void* at(const Tensor& t, std::int64_t i, std::int64_t count) {
    if (t.shape().rank() == 3) return t.part(i);
    return static_cast<const char*>(t.data()) +
           static_cast<std::size_t>(i) * (t.nbytes() / static_cast<std::size_t>(count));
  }
  detail::QuantMatrix matrix(std::int64_t i) const {
    detail::QuantMatrix m;
    m.data = at(data, i, count);
    m.scale = at(scale, i, count);
    m.zero = scheme.zero_point ? static_cast<const std::int8_t*>(at(zero, i, count)) : nullptr;
    m.scheme = scheme;
    m.n = n;
    m.k = k;
    return m;
  }
};

void check_finite(const std::vector<float>& values) {
  for (std::size_t i = 0; i < values.size(); ++i)
    if (!std::isfinite(values[i]))
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("quantize: element {} is {}; only finite weights can be quantized", i,
                              values[i]));
}

// The scale as stored (rounded into the scale dtype) so that codes are computed against the
// very scale a kernel will read.
float stored(float s, DType t) {
  std::uint64_t narrow = 0;
  store_from_f32(&narrow, t, 0, s);
  return load_as_f32(&narrow, t, 0);
}

std::int8_t clamp_to_i8(float v, float lo, float hi) {
  return static_cast<std::int8_t>(std::clamp(v, lo, hi));
}

// ggml blocks: each row through the format's own round-to-nearest quantizer (gguf::quantize).
QuantizedTensor quantize_ggml(const Shape& shape, const std::vector<float>& values,
                              const QuantScheme& scheme) {
  QuantizedTensor q;
  q.scheme = scheme;
  q.shape = shape;
  q.data = Tensor::zeros(quant_data_shape(shape, scheme), DType::I8);
  q.scale = Tensor::zeros(quant_scale_shape(shape, scheme), scheme.scale_dtype);
  const auto k = static_cast<std::size_t>(shape[-1]);
  const std::size_t bytes = gguf::row_bytes(scheme.ggml_type, k);
  auto* data = static_cast<std::byte*>(q.data.data());
  for (std::size_t r = 0; k > 0 && r < values.size() / k; ++r)
    gguf::quantize(scheme.ggml_type, {values.data() + r * k, k}, {data + r * bytes, bytes});
  return q;
}

}  // namespace

Tensor dequantize(const QuantizedTensor& w) {
  validate(w, "dequantize");
  Tensor out = Tensor::zeros(w.shape, DType::F32);
  const MatrixWalker walk(w);
  auto* dst = static_cast<float*>(out.data());
  for (std::int64_t i = 0; i < walk.count; ++i) {
    const auto m = walk.matrix(i);
    for (std::int64_t r = 0; r < walk.n; ++r)
      detail::dequantize_row(m, r, dst + (i * walk.n + r) * walk.k);
  }
  return out;
}

QuantizedTensor quantize(const Tensor& w, const QuantScheme& scheme) {
  if (!is_floating(w.dtype()) || w.shape().rank() < 2)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("quantize: the weight must be a float tensor [..., N, K], not {}",
                            w.description()));
  if (auto problem = detail::quant_scheme_problem(scheme, w.shape()[-1]))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("quantize to {}: {}", describe(scheme), *problem));
  const auto values = w.to_f32();
  check_finite(values);
  if (scheme.format == QuantFormat::GgmlBlocks) return quantize_ggml(w.shape(), values, scheme);
  QuantizedTensor q;
  q.scheme = scheme;
  q.shape = w.shape();
  const Shape scale_shape = quant_scale_shape(w.shape(), scheme);
  q.data = Tensor::zeros(quant_data_shape(w.shape(), scheme), quant_data_dtype(scheme.format));
  q.scale = Tensor::zeros(scale_shape, scheme.scale_dtype);
  if (scheme.zero_point) q.zero = Tensor::zeros(scale_shape, DType::I8);

  const std::int64_t n = w.shape()[-2], k = w.shape()[-1];
  const std::int64_t bn = scheme.block_n, group = detail::quant_group(scheme, k);
  const std::int64_t row_blocks = scale_shape[-2], groups = scale_shape[-1];
  const std::int64_t count = w.shape().numel() / std::max<std::int64_t>(n * k, 1);
  auto* data = static_cast<std::uint8_t*>(q.data.data());
  const std::int64_t data_row = quant_data_shape(w.shape(), scheme)[-1];
  for (std::int64_t mat = 0; mat < count; ++mat)
    for (std::int64_t rb = 0; rb < row_blocks; ++rb)
      for (std::int64_t g = 0; g < groups; ++g) {
        const std::int64_t r0 = rb * bn, r1 = std::min(n, r0 + bn);
        const std::int64_t c0 = g * group, c1 = std::min(k, c0 + group);
        auto value = [&](std::int64_t r, std::int64_t c) {
          return values[static_cast<std::size_t>((mat * n + r) * k + c)];
        };
        float lo = 0.0f, hi = 0.0f;  // the range always includes 0, so 0 is exact
        for (std::int64_t r = r0; r < r1; ++r)
          for (std::int64_t c = c0; c < c1; ++c) {
            lo = std::min(lo, value(r, c));
            hi = std::max(hi, value(r, c));
          }
        const float amax = std::max(-lo, hi);
        float s = 0.0f;
        std::int32_t z = 0;
        switch (scheme.format) {
          case QuantFormat::Int8: s = scheme.zero_point ? (hi - lo) / 255.0f : amax / 127.0f; break;
          case QuantFormat::Int4: s = scheme.zero_point ? (hi - lo) / 15.0f : amax / 7.0f; break;
          case QuantFormat::F8E4M3: s = amax / 448.0f; break;
          case QuantFormat::GgmlBlocks: break;  // quantize_ggml
        }
        s = stored(s == 0.0f ? 1.0f : s, scheme.scale_dtype);
        if (s == 0.0f || !std::isfinite(s)) s = 1.0f;  // a scale the dtype cannot hold
        if (scheme.zero_point) {
          if (scheme.format == QuantFormat::Int8)
            z = static_cast<std::int32_t>(
                std::clamp(detail::round_half_even(-lo / s) - 128.0f, -128.0f, 127.0f));
          else
            z = static_cast<std::int32_t>(
                std::clamp(detail::round_half_even(-lo / s), 0.0f, 15.0f));
        }
        const std::int64_t slot = (mat * row_blocks + rb) * groups + g;
        store_from_f32(q.scale.data(), scheme.scale_dtype, static_cast<std::size_t>(slot), s);
        if (scheme.zero_point)
          static_cast<std::int8_t*>(q.zero.data())[slot] = static_cast<std::int8_t>(z);
        for (std::int64_t r = r0; r < r1; ++r)
          for (std::int64_t c = c0; c < c1; ++c) {
            const float t = detail::round_half_even(value(r, c) / s);
            const std::int64_t row = mat * n + r;
            switch (scheme.format) {
              case QuantFormat::Int8:
                data[row * k + c] = static_cast<std::uint8_t>(
                    scheme.zero_point ? clamp_to_i8(t + static_cast<float>(z), -128.0f, 127.0f)
                                      : clamp_to_i8(t, -127.0f, 127.0f));
                break;
              case QuantFormat::Int4: {
                const float u = scheme.zero_point
                                    ? std::clamp(t + static_cast<float>(z), 0.0f, 15.0f)
                                    : std::clamp(t, -8.0f, 7.0f) + 8.0f;
                auto& byte = data[row * data_row + c / 2];
                const auto nibble = static_cast<std::uint8_t>(u);
                byte = (c % 2 == 0) ? static_cast<std::uint8_t>((byte & 0xf0) | nibble)
                                    : static_cast<std::uint8_t>((byte & 0x0f) | (nibble << 4));
                break;
              }
              case QuantFormat::F8E4M3:
                data[row * k + c] =
                    f32_to_f8e4m3_bits(std::clamp(value(r, c) / s, -448.0f, 448.0f));
                break;
              case QuantFormat::GgmlBlocks: break;
            }
          }
      }
  return q;
}

void quantize_activations_per_token(const float* x, std::int64_t rows, std::int64_t k,
                                    std::int8_t* q, float* scales) {
  for (std::int64_t m = 0; m < rows; ++m) {
    const float* row = x + m * k;
    float amax = 0.0f;
    bool finite = true;
    for (std::int64_t c = 0; c < k; ++c) {
      finite = finite && std::isfinite(row[c]);
      amax = std::max(amax, std::fabs(row[c]));
    }
    // A non-finite row has no int8 image: its scale is NaN and its codes 0, so the output row
    // is NaN, as an unquantized matmul's would be.
    if (!finite) {
      scales[m] = std::numeric_limits<float>::quiet_NaN();
      std::fill(q + m * k, q + (m + 1) * k, std::int8_t{0});
      continue;
    }
    const float s = amax == 0.0f ? 1.0f : amax / 127.0f;
    scales[m] = s;
    for (std::int64_t c = 0; c < k; ++c)
      q[m * k + c] = clamp_to_i8(detail::round_half_even(row[c] / s), -127.0f, 127.0f);
  }
}

}  // namespace porta
