// The quantized ops' path for weights kept as ggml blocks (QuantFormat::GgmlBlocks, a GGUF's
// Q8_0/Q4_0/Q4_K/Q6_K tensors used from the mapping): the linear layer and its per-expert form on
// the block kernels of block_dot.hpp, weight-only, f32 activations and accumulation.
#pragma once

#include <cstdint>
#include <span>

#include "quant/quant_math.hpp"

namespace porta::detail::cpu::ggml {

// True when `scheme` is ggml blocks of a type with a kernel here.
bool has_blocks_kernel(const QuantScheme& scheme);

// y[m, n] = Σ_k x[m, k] · W[n, k] for x [rows, w.k] f32 and y [rows, w.n] f32.
void blocks_linear(const float* x, std::int64_t rows, const QuantMatrix& w, float* y);

// Rows [first, first + count) of x through expert matrix w.
struct ExpertRows {
  QuantMatrix w;
  std::int64_t first = 0, count = 0;
};
// The experts of a ragged grouped matmul: x [rows, k], y [rows, out_features] (rows outside every
// block are left as they are). Decode-sized blocks (a few rows each, the common case: top-k
// experts of one token) share one parallel loop over all their weight rows, so each projection
// pays for one OpenMP region; larger blocks run the prefill path one expert at a time.
void blocks_linear_experts(const float* x, std::int64_t k, std::span<const ExpertRows> experts,
                           std::int64_t out_features, float* y);

}  // namespace porta::detail::cpu::ggml
