// The reference backend's MoE kernels (moe_router, moe_permute, grouped_matmul, moe_experts,
// moe_combine), kept apart from the dense kernels because their semantics are specified
// separately (docs/moe-router.md). The reference backend dispatches MoE nodes here.
#pragma once

#include "graph/graph_state.hpp"
#include "runtime/backend.hpp"

namespace porta::detail::reference {
// Each returns the support verdict / runs the op for one node, like your own kernels.
SupportResult moe_supports(const GraphState& g, const Node& n);
void run_moe_op(const GraphState& g, const Node& n, const ExecContext& ctx);
}  // namespace porta::detail::reference
