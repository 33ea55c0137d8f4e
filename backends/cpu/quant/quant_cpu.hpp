// The cpu backend's quantized-weight kernels (internal): the row loops of quant_matmul,
// quant_grouped_matmul and quant_moe_experts, one implementation per instruction set, chosen at
// run time (the best this CPU has, or the one PORTA_CPU_QUANT_ISA names; tests force each).
//
// W8A8: activations are quantized once per call by the library's own quantizers (so codes and
// token scales are the reference's) and kept as int8 codes with their sums per weight group.
// Decode-sized blocks stream each weight row once for all their rows: VNNI (AVX-512 or AVX-VNNI)
// multiplies the weights made unsigned (q + 128, one xor) by the signed activation codes with
// vpdpbusd and takes 128 · Σ codes off again; AVX2 multiplies |q| by the codes carrying q's sign
// (vpmaddubsw, whose int16 pair sums cannot saturate while codes stay in [-127, 127]); other
// cases widen both to int16 (vpmaddwd). Larger blocks on VNNI CPUs are oneDNN's s8s8s32 GEMM.
// Every integer sum is exact and the float scaling is lib/quant's int8_output (or the same two
// operations), so results equal the reference's bit for bit.
// Weight-only: int4 rows are decoded by a 16-entry table per group (vpermps), int8 and FP8 rows
// dequantized in AVX-512 registers, each weight used for up to 8 activation rows at once; more
// rows dequantize a block of rows to exact f32 in L1 and run the decode dot loop of
// moe/dot_rows.cpp. Weights are read once per call, at their quantized size.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <porta/quant.hpp>

#include "quant/quant_math.hpp"

namespace porta::detail::cpu::quant {

// Ordered from least to most capable (a CPU with AVX-VNNI but no AVX-512 lists it last).
enum class QuantIsa { Plain, Avx2, AvxVnni, Avx512, Avx512Vnni };

// The paths this CPU can run, Plain first.
std::vector<QuantIsa> available_quant_isas();
// The path in use: PORTA_CPU_QUANT_ISA (plain, avx2, avx_vnni, avx512, avx512_vnni) when set and
// available (porta::Error otherwise), else the best available; set_quant_isa() overrides both
// (tests).
QuantIsa active_quant_isa();
void set_quant_isa(std::optional<QuantIsa> isa);
const char* quant_isa_name(QuantIsa isa);
// For `porta devices`: the path in use and what it does (or why PORTA_CPU_QUANT_ISA is refused).
std::string quant_kernels_description();

// Activations of one call, quantized: int8 codes q [rows, ld] (ld = k rounded up to 64, zero
// padded, so whole-vector loads never leave a row), the per-row scale, the offset o (static
// activations; 0 for dynamic), and the sums Σ q over each weight group [rows, groups], which
// turn Σ q·w into the centred Σ (q − o)(w − z). `wide` holds (q − o) as int16 [rows, k] for the
// int16 paths only (widen_codes fills it).
struct QuantizedRows {
  std::vector<std::int8_t> codes;
  std::vector<std::int32_t> sums;
  std::vector<float> scales;
  std::vector<std::int16_t> wide;
  std::int32_t offset = 0;
  bool has_min_code = false;  // some code is -128 (static activations only)
  std::int64_t rows = 0, k = 0, ld = 0, group = 0, groups = 0;
  const std::int8_t* row(std::int64_t m) const { return codes.data() + m * ld; }
  std::int32_t sum(std::int64_t m, std::int64_t g) const {
    return sums[static_cast<std::size_t>(m * groups + g)];
  }
};
// x [rows, k] f32 (row stride ldx) under DynamicInt8 (per row) or StaticInt8 (params), with the
// sums for weight groups of `group` columns; rows are quantized on the backend's threads, by the
// library's quantizers or (vector, AVX-512 only) their 16-lane copy, which gives the same codes
// and scales (quant_activations.cpp).
QuantizedRows quantize_rows(const float* x, std::int64_t ldx, std::int64_t rows, std::int64_t k,
                            ActivationQuant mode, QuantActivationParams params, std::int64_t group,
                            bool vector);
// Whether `isa` may use the 16-lane quantizer.
bool vector_quantizer(QuantIsa isa);
// Whether int8_rows on `isa` reads QuantizedRows::wide for these activations, and filling it.
bool needs_wide_codes(QuantIsa isa, bool has_min_code);
void widen_codes(QuantizedRows& a);

// y[m, n] for n in [n_begin, n_end) and rows m in [first, first + rows) of `a` (y indexed as a):
// W8A8 with int8 weights `w`, on the decode row kernels (the caller widens codes when asked).
void int8_rows(QuantIsa isa, const QuantizedRows& a, std::int64_t first, std::int64_t rows,
               const QuantMatrix& w, std::int64_t n_begin, std::int64_t n_end, float* y,
               std::int64_t ldy);

// The zero points of weight row n ([groups]), or null when symmetric: read directly in the
// kernels, since zero_at's index arithmetic (two divisions a call) costs more than a group.
inline const std::int8_t* zero_row(const QuantMatrix& w, std::int64_t n) {
  if (w.zero == nullptr) return nullptr;
  const std::int64_t bn = w.scheme.block_n < 1 ? 1 : w.scheme.block_n;
  return w.zero + (n / bn) * w.groups();
}

// The scales of weight row n ([groups]) widened into out, and one of them: QuantMatrix's
// scale_row and scale_at inline (those convert element by element through an out-of-line
// switch, which decode paid once per group).
inline void widen_scales(const QuantMatrix& w, std::int64_t n, float* out) {
  const std::int64_t bn = w.scheme.block_n < 1 ? 1 : w.scheme.block_n;
  const std::int64_t groups = w.groups(), first = (n / bn) * groups;
  const DType t = w.scheme.scale_dtype;
  if (t == DType::F32) {
    std::copy_n(static_cast<const float*>(w.scale) + first, groups, out);
  } else if (t == DType::BF16) {
    for (std::int64_t g = 0; g < groups; ++g)
      out[g] = bf16_bits_to_f32(static_cast<const std::uint16_t*>(w.scale)[first + g]);
  } else if (t == DType::F16) {
    for (std::int64_t g = 0; g < groups; ++g)
      out[g] = f16_bits_to_f32(static_cast<const std::uint16_t*>(w.scale)[first + g]);
  } else {
    w.scale_row(n, out);
  }
}

// y = (0 + f32(acc) · s) · s_x: int8_output for a single group, inline. A compiler contracting
// the first step into fma(f32(acc), s, 0) gets the same float (adding an exact zero rounds
// nothing), so unlike int8_output's sum over groups this is safe on FMA targets.
inline float int8_output_one_group(std::int64_t acc, float s, float x_scale) {
  const float scaled = 0.0f + static_cast<float>(acc) * s;
  return scaled * x_scale;
}

// The exact integer sum acc_g = Σ_{k ∈ g} (q − o)(w − z) of activation row m and a weight row
// with zero point z from p = Σ_{k ∈ g} q·w and, when o ≠ 0, wsum = Σ_{k ∈ g} w
// (docs/quantization.md, "W8A8").
inline std::int64_t centred_sum(const QuantizedRows& a, std::int64_t m, std::int64_t g,
                                std::int64_t z, std::int64_t p, std::int64_t wsum) {
  const std::int64_t o = a.offset;
  const std::int64_t len = std::min(a.k, (g + 1) * a.group) - g * a.group;
  return p - z * a.sum(m, g) - o * wsum + o * z * len;
}

// The decode row kernels of each SIMD path (quant_int8_*.cpp): rows [m0, m0 + count) of `a`,
// count ≤ 8, against weight rows [n_begin, n_end). The AVX2 one needs codes in [-127, 127].
void int8_rows_avx512_vnni(const QuantizedRows& a, std::int64_t m0, std::int64_t count,
                           const QuantMatrix& w, std::int64_t n_begin, std::int64_t n_end, float* y,
                           std::int64_t ldy);
void int8_rows_avx_vnni(const QuantizedRows& a, std::int64_t m0, std::int64_t count,
                        const QuantMatrix& w, std::int64_t n_begin, std::int64_t n_end, float* y,
                        std::int64_t ldy);
void int8_rows_avx2(const QuantizedRows& a, std::int64_t m0, std::int64_t count,
                    const QuantMatrix& w, std::int64_t n_begin, std::int64_t n_end, float* y,
                    std::int64_t ldy);

// Prefill-sized W8A8 blocks through oneDNN's s8s8s32 GEMM (quant_int8_gemm.cpp): whether it can
// take this weight on this path (per-channel int8, a VNNI CPU so that oneDNN never saturates),
// and rows [m0, m0 + count) of `a` against weight rows [n_begin, n_end) on the calling thread.
bool onednn_int8_fits(QuantIsa isa, const QuantMatrix& w);
void onednn_int8_rows(const QuantizedRows& a, std::int64_t m0, std::int64_t count,
                      const QuantMatrix& w, std::int64_t n_begin, std::int64_t n_end, float* y,
                      std::int64_t ldy);

// Weight-only int4 rows on AVX-512 by table lookup (quant_int4_rows.cpp), up to 8 rows of x
// after deinterleave_int4_rows; false (nothing done) when the layout does not fit (groups not
// a multiple of 32 columns).
bool int4_lut_fits(const QuantMatrix& w);
// x [rows, k] reordered per 32 columns: the 16 even columns, then the 16 odd ones (the order of
// the low and high nibbles of 16 packed bytes); a tail of k % 32 columns is copied as it is.
std::vector<float> deinterleave_int4_rows(const float* x, std::int64_t ldx, std::int64_t rows,
                                          std::int64_t k);
void int4_rows_avx512(const float* xd, std::int64_t rows, const QuantMatrix& w,
                      std::int64_t n_begin, std::int64_t n_end, float* y, std::int64_t ldy);

// y[m, n] = Σ_k x[m, k] · w(n, k) for n in [n_begin, n_end): weight-only, any format.
void weight_only_rows(QuantIsa isa, const float* x, std::int64_t ldx, std::int64_t rows,
                      const QuantMatrix& w, std::int64_t n_begin, std::int64_t n_end, float* y,
                      std::int64_t ldy);

// Dequantizes rows [n_begin, n_end) of w into out ([rows, k], exact values); exposed for tests.
void dequantize_rows(QuantIsa isa, const QuantMatrix& w, std::int64_t n_begin, std::int64_t n_end,
                     float* out);

// Rows [first, first + count) of the activations through matrix w (one expert's block).
struct QuantBlock {
  QuantMatrix w;
  std::int64_t first = 0, count = 0;
};
// Several blocks (the experts of a ragged grouped matmul) in one parallel region over the output
// columns, so decode pays for one OpenMP region per projection rather than one per expert.
// x [rows, k] f32, y [rows, out_features] f32 (rows outside every block are left as they are).
void quant_linear_blocks(const float* x, std::int64_t k, const std::vector<QuantBlock>& blocks,
                         std::int64_t out_features, ActivationQuant mode,
                         QuantActivationParams params, float* y);

// The whole linear layer of one matrix: quantizes activations when asked, then runs the row
// loops over the output columns on the cpu backend's threads. x [rows, k] f32, y [rows, n] f32.
void quant_linear(const float* x, std::int64_t rows, const QuantMatrix& w, ActivationQuant mode,
                  QuantActivationParams params, float* y);

}  // namespace porta::detail::cpu::quant
