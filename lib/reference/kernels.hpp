// The reference kernels: one function per dense op of the catalogue (include/porta/ops.hpp).
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

// elementwise.cpp
void run_binary(const GraphState& g, const Node& n, const ExecContext& ctx);  // add sub mul div
void run_unary(const GraphState& g, const Node& n,
               const ExecContext& ctx);  // silu gelu sigmoid exp
void run_swiglu(const GraphState& g, const Node& n, const ExecContext& ctx);

// matmul.cpp
void run_matmul(const GraphState& g, const Node& n, const ExecContext& ctx);

// normalization.cpp
void run_softmax(const GraphState& g, const Node& n, const ExecContext& ctx);
void run_rms_norm(const GraphState& g, const Node& n, const ExecContext& ctx);
void run_layer_norm(const GraphState& g, const Node& n, const ExecContext& ctx);

// rope.cpp
void run_rope(const GraphState& g, const Node& n, const ExecContext& ctx);

// attention.cpp
void run_attention(const GraphState& g, const Node& n, const ExecContext& ctx);

// layout.cpp
void run_reshape(const GraphState& g, const Node& n, const ExecContext& ctx);
void run_permute(const GraphState& g, const Node& n, const ExecContext& ctx);
void run_slice(const GraphState& g, const Node& n, const ExecContext& ctx);
void run_concat(const GraphState& g, const Node& n, const ExecContext& ctx);
void run_cast(const GraphState& g, const Node& n, const ExecContext& ctx);

// embedding.cpp
void run_embedding(const GraphState& g, const Node& n, const ExecContext& ctx);

// topk.cpp
void run_top_k(const GraphState& g, const Node& n, const ExecContext& ctx);

}  // namespace porta::detail::reference
