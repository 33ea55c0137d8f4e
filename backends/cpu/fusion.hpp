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

// The chain starting at nodes[start] (a matmul that accepts post-ops), or length 1 and no
// post-ops when nothing follows that can fuse.
FusedChain find_matmul_chain(const GraphState& g, std::span<const NodeId> nodes, std::size_t start,
                             const std::vector<int>& uses);

}  // namespace porta::detail::cpu
