// Post-op fusion: within one segment, a matmul followed by nodes oneDNN can apply to its result
// before storing it (bias or residual add, sub, mul, div by an operand that broadcasts into the
// product; silu, gelu, sigmoid, exp) becomes one primitive with post-ops.
//
// A node joins the chain only when it comes right after the previous one in the segment, reads
// the previous result as its only consumer, and that result is not a graph output; so the
// intermediates are never needed and the nodes in between cannot touch the operands. The
// fused-away nodes run nothing: the profile records them at 0 µs with the metric "fused_into"
// (the NodeId of the matmul whose kernel computed them), and the matmul with "fused_ops".
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <vector>

#include "matmul.hpp"

namespace porta::detail::cpu {

struct FusedChain {
  std::size_t length = 1;  // the matmul and the nodes fused after it, consecutive in the segment
  MatmulEpilogue epilogue;
};

// How many consumers each value has among the graph's nodes, and whether it is a graph output
// (an output counts as a consumer): the facts fusion needs about intermediates.
std::vector<int> value_uses(const GraphState& g);

// gate = x·Wg, up = x·Wu, swiglu(gate, up), consecutive in the segment, with gate and up read
// by the swiglu only: the second matmul absorbs the swiglu as a binary mul by the first one's
// result, and silu goes onto whichever of the two is the gate (an eltwise post-op). Both run in
// their own order; the swiglu node runs nothing.
struct SwigluFusion {
  MatmulEpilogue first;   // for nodes[start]: silu when it is the gate, else nothing
  MatmulEpilogue second;  // for nodes[start + 1]: [silu,] mul by the first's result -> swiglu out
};
std::optional<SwigluFusion> find_swiglu_fusion(const GraphState& g, std::span<const NodeId> nodes,
                                               std::size_t start, const std::vector<int>& uses);

// The chain starting at nodes[start] (a matmul that accepts post-ops), or length 1 and no
// post-ops when nothing follows that can fuse.
FusedChain find_matmul_chain(const GraphState& g, std::span<const NodeId> nodes, std::size_t start,
                             const std::vector<int>& uses);

}  // namespace porta::detail::cpu
