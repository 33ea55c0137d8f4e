// The quantized ops' path for weights kept as ggml blocks (QuantFormat::GgmlBlocks, a GGUF's
// tensors used from the mapping): the linear layer and its per-expert form on the block kernels
// of block_dot.hpp (every block type; up to 11 rows of activations), from 12 rows on exactly
// dequantized f32 panels of weight rows through a GEMM; f32 activations and accumulation
// (ActivationQuant::None). With ActivationQuant::GgmlQ8, llama.cpp's numerics: the activations
// rounded to 8-bit blocks, multiplied by the integer kernels of q8_kernels.hpp where the CPU and
// the block type have them, else rounded and taken through the f32 kernels.
#pragma once

#include <cstdint>
#include <span>

#include "quant/quant_cpu.hpp"
#include "quant/quant_math.hpp"

namespace porta::detail::cpu::ggml {

// y[m, n] = Σ_k x[m, k] · W[n, k] for x [rows, w.k] f32 and y [rows, w.n] f32.
void blocks_linear(const float* x, std::int64_t rows, const QuantMatrix& w, float* y,
                   ActivationQuant act = ActivationQuant::None);

// The experts of a ragged grouped matmul: x [rows, k], y [rows, out_features] (rows outside every
// block are left as they are). Blocks of up to 11 rows (decode's top-k experts of one token, a
// short prompt's) share one parallel loop over all their weight rows, so each projection pays
// for one OpenMP region; larger blocks (prefill) share another, over (expert, panel of weight
// rows) items, each panel dequantized exactly and multiplied through a GEMM.
// Each block: rows [first, first + count) of x through its expert's matrix.
void blocks_linear_experts(const float* x, std::int64_t k,
                           std::span<const quant::QuantBlock> experts, std::int64_t out_features,
                           float* y, ActivationQuant act = ActivationQuant::None);

}  // namespace porta::detail::cpu::ggml
