// Lowering of each catalogue op to the kernels a real Ascend implementation launches, each timed
// by the engine (timing.hpp): cube GEMMs for matmul, grouped_matmul and the expert FFNs; vector
// kernels for elementwise ops, norms, softmax, rope, casts, top-k and the router; MTE-bound
// gathers for permutes, slices, concats, embeddings and the MoE permute/combine; a roofline
// estimate for attention (no FlashAttention tile model yet); reshape is a view.
#pragma once

#include <cstdint>
#include <vector>

#include "graph/graph_state.hpp"
#include "timing.hpp"

namespace porta::detail::npu_sim {

// The kernels of one node. `rows_per_expert` (grouped_matmul, moe_experts): the rows each expert
// received at run time; empty means balanced (rows / experts each).
std::vector<KernelResult> lower_node(const DeviceProfile& p, const GraphState& g, const Node& n,
                                     const std::vector<std::int64_t>& rows_per_expert,
                                     SpanSink* sink);

// The node's report: lower_node composed (launch overheads included).
OpReport time_node(const DeviceProfile& p, const GraphState& g, const Node& n,
                   const std::vector<std::int64_t>& rows_per_expert, SpanSink* sink);

}  // namespace porta::detail::npu_sim
