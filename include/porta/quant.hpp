// Quantized weights: int8, int4 (two per byte) and FP8 e4m3 matrices with per-channel, per-group
// or 2-D block scales, ggml's (GGUF's) block formats kept as stored, and the activation modes of
// the matmul-like ops that read them.
//
// A quantized weight is the logical matrix W[..., N, K] (nn.Linear layout, an optional leading
// expert dimension) held as up to three ordinary Tensors: the codes, the scales and, when
// asymmetric, the zero points. Every loader converts its format to this one layout and every
// kernel reads it; docs/quantization.md gives the layout and the exact numerics that every
// backend matches.
#pragma once

#include <porta/config.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <porta/dtype.hpp>
#include <porta/ggml_quants.hpp>
#include <porta/shape.hpp>
#include <porta/tensor.hpp>

PORTA_API_BEGIN
namespace porta {

// GgmlBlocks: the weight rows are ggml blocks exactly as a GGUF file stores them (the block type
// in QuantScheme::ggml_type): data is I8 [..., N, row_bytes(type, K)] holding the blocks, whose
// scales live inside them, so the scale tensor is empty ([..., N, 0]); weight-only (activation
// mode None, or GgmlQ8 for llama.cpp's numerics), K a whole number of blocks (docs/gguf.md).
enum class QuantFormat : std::uint8_t { Int8, Int4, F8E4M3, GgmlBlocks };

// How activations meet the weight inside matmul-like ops.
enum class ActivationQuant : std::uint8_t {
  None,         // weight-only (W8A16, W4A16, FP8): dequantize inside the kernel, f32 accumulation
  DynamicInt8,  // W8A8: per-token symmetric int8 activations, int32 accumulation
  StaticInt8,   // W8A8 static (msModelSlim): one activation scale + offset per tensor
  // ggml blocks only: activations rounded to llama.cpp's 8-bit blocks for the weight's type
  // (gguf::q8_activation_blocks: Q8_0 or Q8_K) before the product, as llama.cpp multiplies
  // GGUF weights; the product of the rounded activations with the exact weights in f32.
  GgmlQ8,
};

struct QuantScheme {
  QuantFormat format = QuantFormat::Int8;
  std::int64_t group_k = 0;  // along K; 0 means K (one group per row = per output channel)
  std::int64_t block_n = 1;  // along N; 128 for DeepSeek FP8 blocks
  bool zero_point = false;   // asymmetric (Int8/Int4)
  DType scale_dtype = DType::F32;
  // GgmlBlocks only: the block type (one of gguf::kDequantizableTypes' block types).
  gguf::GgmlType ggml_type = gguf::GgmlType::F32;
  friend bool operator==(const QuantScheme&, const QuantScheme&) = default;
};

// The scheme of a weight stored as ggml blocks of `type` (Q8_0, Q4_K, ...): group_k is the
// type's block size, scales f16 inside the blocks. Throws porta::Error (InvalidArgument) for
// a type that is not a dequantizable block type.
QuantScheme ggml_scheme(gguf::GgmlType type);

// The static activation quantization of ActivationQuant::StaticInt8: q = clamp(round(x / scale)
// + offset, -128, 127); offset is an integer value.
struct QuantActivationParams {
  float scale = 1.0f;
  float offset = 0.0f;
  friend bool operator==(const QuantActivationParams&, const QuantActivationParams&) = default;
};

// "int4 g128 asym (bf16 scales)", "int8 per-channel (f32 scales)", "f8_e4m3 block 128x128
// (f32 scales)": for `porta inspect` and messages.
std::string describe(const QuantScheme& scheme);
std::string_view to_string(QuantFormat format) noexcept;  // "int8", "int4", "f8_e4m3", "ggml"
std::string_view to_string(ActivationQuant mode) noexcept;  // "none", "dynamic_int8", ...
// Throws porta::Error listing the accepted names.
QuantFormat parse_quant_format(std::string_view name);
ActivationQuant parse_activation_quant(std::string_view name);

struct QuantizedTensor {
  Tensor data, scale, zero;  // zero undefined unless scheme.zero_point
  QuantScheme scheme;
  Shape shape;                 // logical [..., N, K]
  std::size_t nbytes() const;  // bytes of data + scale + zero (what decode streams)
};

// The shapes the layout requires for a logical [..., N, K] under `scheme`.
Shape quant_data_shape(const Shape& logical, const QuantScheme& scheme);  // K/2 for int4
Shape quant_scale_shape(const Shape& logical, const QuantScheme& scheme);  // [..., ⌈N/bn⌉, ⌈K/g⌉]
// The element dtype of the data tensor: I8 for Int8 and Int4, F8E4M3 for F8E4M3.
DType quant_data_dtype(QuantFormat format) noexcept;

// Throws porta::Error naming `name` and the field (data/scale/zero/group) when inconsistent.
void validate(const QuantizedTensor& w, std::string_view name);

// The reference numerics (docs/quantization.md): exact element values in f32.
Tensor dequantize(const QuantizedTensor& w);  // -> F32 [..., N, K]

// Round-to-nearest-even quantization of a float weight [..., N, K] (any float dtype).
QuantizedTensor quantize(const Tensor& w, const QuantScheme& scheme);

// The dynamic per-token activation quantization (W8A8): for each row of x [rows, K],
// s = max|x_row| / 127 (s = 1 for an all-zero row) and q = round_half_even(x / s) clamped to
// [-127, 127], both in f32. Defined once, used everywhere. `q` holds rows·K bytes, `scales` rows.
void quantize_activations_per_token(const float* x, std::int64_t rows, std::int64_t k,
                                    std::int8_t* q, float* scales);

}  // namespace porta
PORTA_API_END
