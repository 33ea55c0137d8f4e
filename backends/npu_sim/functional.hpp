// Functional execution with the device's numerics. Cube ops (matmul, grouped_matmul and the GEMMs
// inside moe_experts) take fp16/bf16 (or f32) operands, accumulate in f32 and round once at
// FixPipe into the output dtype; a fused op rounds at every kernel boundary the device has (the
// gate/up GEMM output, the SwiGLU output, the down GEMM output, the combine). Everything else the
// vector cores compute in f32 (Ascend's kernels upcast fp16 for transcendentals and reductions)
// and round once into the output dtype: that is exactly the reference kernels' numerics, so those
// ops run the reference kernels (docs/npu-sim.md, "Numerics").
#pragma once

#include <cstdint>
#include <vector>

#include "graph/graph_state.hpp"
#include "runtime/backend.hpp"

namespace porta::detail::npu_sim {

void run_matmul(const GraphState& g, const Node& n, const ExecContext& ctx);
void run_grouped_matmul(const GraphState& g, const Node& n, const ExecContext& ctx);
void run_moe_experts(const GraphState& g, const Node& n, const ExecContext& ctx);
// The quantized ops (docs/npu-sim.md, "Quantized weights"): W8A8 on the int8 cube (int32 sums,
// exact), weight-only int8/int4 antiquantized to the activation dtype on the vector cores, then
// the cube's f32-accumulating GEMM. No FP8: the 910B has no fp8 data type.
void run_quant_matmul(const GraphState& g, const Node& n, const ExecContext& ctx);
void run_quant_grouped_matmul(const GraphState& g, const Node& n, const ExecContext& ctx);
void run_quant_moe_experts(const GraphState& g, const Node& n, const ExecContext& ctx);

// The rows each expert received (offsets[e + 1] - offsets[e]) from a grouped_matmul or
// moe_experts node's offsets input at run time; for moe_experts_ep, the rows each of the rank's
// slots receives; empty for other ops.
std::vector<std::int64_t> expert_rows(const GraphState& g, const Node& n, const ExecContext& ctx);

float round_to(float value, DType dtype);

}  // namespace porta::detail::npu_sim
