// The cpu backend's quantized-weight kernels (internal): the row loops of quant_matmul,
// quant_grouped_matmul and quant_moe_experts, one implementation per instruction set, chosen at
// run time (the best this CPU has, or the one PORTA_CPU_QUANT_ISA names; tests force each).
//
// W8A8: activations are quantized once per call by the library's own quantizers (so codes and
// token scales are the reference's), widened to int16, and meet each weight row's centred codes
// (q − z, int16) in exact int32 sums per group (AVX2/AVX-512BW vpmaddwd, AVX512-VNNI vpdpwssd);
// the float scaling is lib/quant's int8_output, so results equal the reference's bit for bit.
// Weight-only: a block of weight rows is dequantized to exact f32 values in L1 (AVX-512: int8 and
// int4 unpacked in registers) and multiplied by all activation rows with the decode dot loop of
// moe/dot_rows.cpp; weights are read once per call, at their quantized size.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <porta/quant.hpp>

#include "quant/quant_math.hpp"

namespace porta::detail::cpu::quant {

enum class QuantIsa { Plain, Avx2, Avx512, Avx512Vnni };

// The paths this CPU can run, Plain first.
std::vector<QuantIsa> available_quant_isas();
// The path in use: PORTA_CPU_QUANT_ISA (plain, avx2, avx512, avx512_vnni) when set and available
// (porta::Error otherwise), else the best available; set_quant_isa() overrides both (tests).
QuantIsa active_quant_isa();
void set_quant_isa(std::optional<QuantIsa> isa);
const char* quant_isa_name(QuantIsa isa);
// For `porta devices`: the path in use and what it does (or why PORTA_CPU_QUANT_ISA is refused).
std::string quant_kernels_description();

// Activations of one call, quantized: int16 codes (q − o) [rows, k] and the per-row scale.
struct QuantizedRows {
  std::vector<std::int16_t> codes;
  std::vector<float> scales;
  std::int64_t rows = 0, k = 0;
};
// x [rows, k] f32 (row stride ldx) under DynamicInt8 (per row) or StaticInt8 (params).
QuantizedRows quantize_rows(const float* x, std::int64_t ldx, std::int64_t rows, std::int64_t k,
                            ActivationQuant mode, QuantActivationParams params);

// y[m, n] for n in [n_begin, n_end), all rows m of `a`: W8A8 with int8 weights `w`.
void int8_rows(QuantIsa isa, const QuantizedRows& a, const QuantMatrix& w, std::int64_t n_begin,
               std::int64_t n_end, float* y, std::int64_t ldy);

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
