// The reference backend's MoE kernels (moe_router, moe_permute, grouped_matmul, moe_experts,
// moe_combine), kept apart from the dense kernels because their semantics are specified
// separately (docs/moe-router.md).
#pragma once

#include "graph/graph_state.hpp"
#include "runtime/backend.hpp"

namespace porta::detail::reference {
// The support verdict of each MoE op for one node (their kernels are declared in kernels.hpp).
SupportResult moe_router_supports(const GraphState& g, const Node& n);
SupportResult moe_permute_supports(const GraphState& g, const Node& n);
SupportResult grouped_matmul_supports(const GraphState& g, const Node& n);
SupportResult moe_experts_supports(const GraphState& g, const Node& n);
SupportResult moe_combine_supports(const GraphState& g, const Node& n);
// The quantized ops (quant_ops.cpp): every scheme and activation mode the rules accept.
SupportResult quant_ops_supports(const GraphState& g, const Node& n);
}  // namespace porta::detail::reference
