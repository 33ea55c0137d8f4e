// The reference kernels: one function per op of the catalogue (include/porta/ops.hpp).
//
// Each reads its inputs and writes its outputs through ctx.values (host memory), takes shapes
// and dtypes from the graph's ValueInfo (already inferred and checked by the shape rules), and
// throws porta::Error naming the op, the node and the value for data-dependent failures (an id
// out of range, a cache length beyond the cache). Numerics: inputs widened to f32, f32 math with
// double accumulators, one rounding into the output dtype.
#pragma once

#include "graph/graph_state.hpp"
#include "runtime/backend.hpp"

namespace porta::detail::reference {

// run_<name> for every op of the list (include/porta/ops.hpp): the reference backend's dispatch
// table is generated from the same list, so an op without its kernel does not link.
#define PORTA_REFERENCE_KERNEL(kind, name, ...) \
  void run_##name(const GraphState& g, const Node& n, const ExecContext& ctx);
PORTA_OP_LIST(PORTA_REFERENCE_KERNEL)
#undef PORTA_REFERENCE_KERNEL

// The scalar function of each attribute-free unary op (PORTA_UNARY_OP_LIST): f32 in, f32 out.
#define PORTA_REFERENCE_UNARY(X, kind, name, summary) float unary_##name(float x);
PORTA_UNARY_OP_LIST(unused, PORTA_REFERENCE_UNARY)
#undef PORTA_REFERENCE_UNARY

}  // namespace porta::detail::reference
