// The op catalogue's rules (internal): for each op, its arity and the shape/dtype rule that runs
// when a node is added, plus its cost (FLOPs and bytes) for profiles and roofline estimates.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "graph/graph_state.hpp"

namespace porta::detail {

struct OutputSpec {
  Shape shape;
  DType dtype;
};

// Checks `inputs` and `attrs` for `op` and returns the outputs' shapes and dtypes. Throws
// porta::Error naming the op, `node_name` and the operands' shapes when they do not fit.
std::vector<OutputSpec> infer_outputs(const GraphState& g, OpKind op,
                                      const std::vector<ValueId>& inputs, const OpAttrs& attrs,
                                      const std::string& node_name);

struct OpCost {
  double flops = 0;
  double bytes = 0;  // bytes read (inputs) plus written (outputs)
};
OpCost op_cost(const GraphState& g, const Node& n);

// The op list's cost column for `op` ("matmul", "normalization", "elementwise", ...): which kind
// of computation it is, for costs and numerical tolerances.
std::string_view op_cost_family(OpKind op);

// Broadcast two shapes NumPy-style; false when they do not broadcast.
bool broadcast_shapes(const Shape& a, const Shape& b, Shape& out);

}  // namespace porta::detail
