#include "fusion.hpp"

#include <algorithm>
#include <optional>

#include "op_algorithms.hpp"

namespace porta::detail::cpu {

namespace {

std::optional<MatmulPostOp> eltwise_post_op(const Node& n) {
  const auto eltwise = eltwise_algorithm(n);
  if (!eltwise) return std::nullopt;
  MatmulPostOp op;
  op.algorithm = eltwise->algorithm;
  op.alpha = eltwise->alpha;
  return op;
}

// `n` applied to `product` (the chain's result so far) as a binary post-op, when its other
// operand broadcasts into the product without changing its shape.
std::optional<MatmulPostOp> binary_post_op(const GraphState& g, const Node& n, ValueId product) {
  const auto binary = binary_algorithm(n.op);
  if (!binary) return std::nullopt;
  const bool commutative = binary->commutative;
  MatmulPostOp op;
  op.binary = true;
  op.algorithm = binary->algorithm;
  if (n.inputs[0] == product && n.inputs[1] != product)
    op.operand = n.inputs[1];
  else if (commutative && n.inputs[1] == product && n.inputs[0] != product)
    op.operand = n.inputs[0];
  else
    return std::nullopt;
  const ValueInfo& operand = g.value(op.operand);
  if (g.output_of(n, 0).shape != g.value(product).shape) return std::nullopt;
  if (operand.shape.rank() > g.value(product).shape.rank()) return std::nullopt;
  if (operand.dtype != DType::F32 && operand.dtype != DType::BF16) return std::nullopt;
  return op;
}

}  // namespace

std::vector<int> value_uses(const GraphState& g) {
  std::vector<int> uses(g.values.size(), 0);
  for (const Node& n : g.nodes)
    for (ValueId v : n.inputs) ++uses[v];
  for (const auto& [name, v] : g.outputs) ++uses[v];
  return uses;
}

std::optional<SwigluFusion> find_swiglu_fusion(const GraphState& g, std::span<const NodeId> nodes,
                                               std::size_t start, const std::vector<int>& uses) {
  if (start + 2 >= nodes.size()) return std::nullopt;
  const Node& first = g.nodes[nodes[start]];
  const Node& second = g.nodes[nodes[start + 1]];
  const Node& swiglu = g.nodes[nodes[start + 2]];
  if (first.op != OpKind::Matmul || second.op != OpKind::Matmul || swiglu.op != OpKind::Swiglu)
    return std::nullopt;
  const ValueId a = first.outputs[0], b = second.outputs[0];
  const ValueId gate = swiglu.inputs[0], up = swiglu.inputs[1];
  if (!((gate == a && up == b) || (gate == b && up == a))) return std::nullopt;
  if (uses[a] != 1 || uses[b] != 1) return std::nullopt;
  if (!matmul_accepts_post_ops(g, first) || !matmul_accepts_post_ops(g, second))
    return std::nullopt;
  MatmulPostOp silu;
  silu.algorithm = dnnl::algorithm::eltwise_swish;
  silu.alpha = 1.0f;
  MatmulPostOp mul;
  mul.binary = true;
  mul.algorithm = dnnl::algorithm::binary_mul;
  mul.operand = a;
  SwigluFusion f;
  f.first.output = a;
  if (gate == a) f.first.ops.push_back(silu);
  if (gate == b) f.second.ops.push_back(silu);
  f.second.ops.push_back(mul);
  f.second.output = swiglu.outputs[0];
  return f;
}

FusedChain find_matmul_chain(const GraphState& g, std::span<const NodeId> nodes, std::size_t start,
                             const std::vector<int>& uses) {
  FusedChain chain;
  const Node& matmul = g.nodes[nodes[start]];
  ValueId product = matmul.outputs[0];
  const DType dtype = g.value(product).dtype;
  for (std::size_t i = start + 1; i < nodes.size(); ++i) {
    const Node& next = g.nodes[nodes[i]];
    if (uses[product] != 1) break;
    const bool reads_product =
        std::find(next.inputs.begin(), next.inputs.end(), product) != next.inputs.end();
    if (!reads_product || g.output_of(next, 0).dtype != dtype || next.outputs.size() != 1) break;
    std::optional<MatmulPostOp> op =
        next.inputs.size() == 1 ? eltwise_post_op(next) : binary_post_op(g, next, product);
    if (!op) break;
    chain.epilogue.ops.push_back(*op);
    product = next.outputs[0];
    ++chain.length;
  }
  chain.epilogue.output = product;
  return chain;
}

}  // namespace porta::detail::cpu
