// The reference numerics of quantized weights (internal), written once and used by dequantize(),
// the reference backend's quantized ops and every backend's scalar fallback. The formulas are
// docs/quantization.md's; a backend's fast kernel is tested against these functions.
#pragma once

#include <cmath>
#include <cstdint>

#include <porta/quant.hpp>

namespace porta::detail {

// One [N, K] matrix of a quantized weight (one expert of a stack), by address.
struct QuantMatrix {
  const void* data = nullptr;         // I8 [N, K] or [N, K/2] (int4), or F8E4M3 [N, K]
  const void* scale = nullptr;        // scale_dtype [ceil(N/bn), groups]
  const std::int8_t* zero = nullptr;  // I8, the scale's shape; null when symmetric
  QuantScheme scheme;
  std::int64_t n = 0, k = 0;

  std::int64_t group() const noexcept { return scheme.group_k <= 0 ? k : scheme.group_k; }
  std::int64_t groups() const noexcept { return k == 0 ? 1 : (k + group() - 1) / group(); }
  // The scale and zero of row `row`, group `g`, widened.
  float scale_at(std::int64_t row, std::int64_t g) const noexcept;
  std::int32_t zero_at(std::int64_t row, std::int64_t g) const noexcept;
  // All groups' scales of row `row`, widened into out[groups()] (one call per row).
  void scale_row(std::int64_t row, float* out) const;
  // The integer code q of (row, col) in the data's unsigned domain for int4 (0..15), signed for
  // int8 (-128..127); not for FP8.
  std::int32_t code(std::int64_t row, std::int64_t col) const noexcept;
};

// Round to nearest, ties to even (the default floating-point environment's nearbyint).
inline float round_half_even(float x) noexcept { return std::nearbyint(x); }

// Row `row` of W in f32, exactly as docs/quantization.md defines each element:
// int: (float)(q - z) · s; f8: f8(q) · s (one f32 rounding each).
void dequantize_row(const QuantMatrix& w, std::int64_t row, float* out);

// Row `row` of (q - z) as integers (int8 and int4 only): the integer side of W8A8.
void centred_codes_row(const QuantMatrix& w, std::int64_t row, std::int32_t* out);

// The static per-tensor activation quantization: q = clamp(round(x / scale) + offset, -128, 127);
// a NaN quantizes to the offset.
void quantize_activations_static(const float* x, std::int64_t count, QuantActivationParams p,
                                 std::int8_t* q);

// The reference quantized linear layer: out[m, n] = Σ_k x[m, k] · W[n, k] for x [rows, K] f32,
// out [rows, N] f32, under the activation mode (docs/quantization.md, "Ops"):
// - None: W dequantized exactly (dequantize_row), products summed in double, rounded once;
// - DynamicInt8 / StaticInt8: exact integer sums per group, then per docs the f32 scaling
//   y = (Σ_g (float)acc_g · s[n, g]) · s_x, the groups summed in ascending order in f32.
void quant_linear_reference(const float* x, std::int64_t rows, const QuantMatrix& w,
                            ActivationQuant mode, QuantActivationParams params, float* out);

// The f32 scaling of one int8 output from its per-group integer sums (the function above uses
// it; a fast backend must produce the same float from the same integers). Out of line on
// purpose: inlined into a kernel compiled for an FMA target, GCC would contract y += a · s into
// a fused multiply-add and change the rounding.
float int8_output(const std::int64_t* acc, const QuantMatrix& w, std::int64_t row,
                  float x_scale) noexcept;

}  // namespace porta::detail
