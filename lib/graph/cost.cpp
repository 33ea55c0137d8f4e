// FLOPs and bytes of each op, for profiles, GFLOP/s and GB/s figures and roofline estimates.
// Counts follow the usual conventions: a multiply-add is 2 FLOPs; elementwise ops count one FLOP
// per output element (transcendentals included); bytes are every input read once plus every
// output written once.
#include "graph/catalogue.hpp"

#include <fmt/format.h>

#include <porta/error.hpp>

namespace porta::detail {

namespace {

double bytes_of(const ValueInfo& v) {
  return static_cast<double>(v.shape.numel()) * static_cast<double>(dtype_size(v.dtype));
}

double out_elements(const GraphState& g, const Node& n) {
  return static_cast<double>(g.values[n.outputs[0]].shape.numel());
}

// One FLOP per output element, transcendentals included.
double elementwise_flops(const GraphState& g, const Node& n) { return out_elements(g, n); }

// Reductions and rotations: about four FLOPs per element (sum, scale, and the op's own).
double normalization_flops(const GraphState& g, const Node& n) { return 4.0 * out_elements(g, n); }

double data_movement_flops(const GraphState&, const Node&) { return 0; }

double matmul_flops(const GraphState& g, const Node& n) {
  const auto& a = std::get<MatmulAttrs>(n.attrs);
  const Shape& sa = g.input_of(n, 0).shape;
  const double k = static_cast<double>(a.transpose_a ? sa[-2] : sa[-1]);
  return 2.0 * out_elements(g, n) * k;
}

double grouped_matmul_flops(const GraphState& g, const Node& n) {
  const Shape& rows = g.input_of(n, 0).shape;
  return 2.0 * out_elements(g, n) * static_cast<double>(rows[1]);
}

double attention_flops(const GraphState& g, const Node& n) {
  const Shape& q = g.input_of(n, 0).shape;
  const Shape& k = g.input_of(n, 1).shape;
  const Shape& v = g.input_of(n, 2).shape;
  const auto& a = std::get<AttentionAttrs>(n.attrs);
  // Without knowing the run-time cache length, count the new keys plus a full cache.
  const double keys = static_cast<double>(k[0] + (a.kv_cache ? g.input_of(n, 3).shape[0] : 0));
  return 2.0 * static_cast<double>(q[0] * q[1]) * keys * static_cast<double>(q[2] + v[2]);
}

double moe_experts_flops(const GraphState& g, const Node& n) {
  const Shape& x = g.input_of(n, 0).shape;
  const Shape& w = g.input_of(n, 1).shape;
  const Shape& gate = g.input_of(n, 5).shape;
  const double rows = static_cast<double>(w[0] * w[1]);
  double flops = 2.0 * rows * static_cast<double>(x[1]) * static_cast<double>(gate[1]) * 3.0;
  if (n.inputs.size() > 8)
    flops += 2.0 * static_cast<double>(x[0] * x[1]) *
             static_cast<double>(g.input_of(n, 8).shape[0]) * 3.0;
  // Routed expert weights are read only for experts that receive tokens; count them all.
  return flops;
}

// x[..., K] against W[N, K]: K from x, whatever the weight's packing.
double quant_matmul_flops(const GraphState& g, const Node& n) {
  return 2.0 * out_elements(g, n) * static_cast<double>(g.input_of(n, 0).shape[-1]);
}

// The routed experts only (quantized moe_experts has no shared experts): 3 linears per row.
double quant_moe_experts_flops(const GraphState& g, const Node& n) {
  const Shape& x = g.input_of(n, 0).shape;
  const Shape& w = g.input_of(n, 1).shape;
  const double inner = static_cast<double>(g.input_of(n, 5).shape[1]);
  return 2.0 * static_cast<double>(w[0] * w[1]) * static_cast<double>(x[1]) * inner * 3.0;
}

}  // namespace

std::string_view op_cost_family(OpKind op) {
  switch (op) {
#define PORTA_OP_COST_FAMILY(kind, name, min_inputs, max_inputs, roles, Attrs, rule, cost_family, \
                             summary)                                                            \
  case OpKind::kind: return #cost_family;
    PORTA_OP_LIST(PORTA_OP_COST_FAMILY)
#undef PORTA_OP_COST_FAMILY
  }
  throw Error(ErrorCode::Internal,
              fmt::format("op_cost_family: unknown op kind {}", static_cast<int>(op)));
}

OpCost op_cost(const GraphState& g, const Node& n) {
  OpCost cost;
  for (auto id : n.inputs) cost.bytes += bytes_of(g.values[id]);
  for (auto id : n.outputs) cost.bytes += bytes_of(g.values[id]);
  switch (n.op) {
#define PORTA_OP_COST(kind, name, min_inputs, max_inputs, roles, Attrs, rule, cost_family, \
                      summary)                                                             \
  case OpKind::kind: cost.flops = cost_family##_flops(g, n); return cost;
    PORTA_OP_LIST(PORTA_OP_COST)
#undef PORTA_OP_COST
  }
  throw Error(ErrorCode::Internal,
              fmt::format("op_cost: unknown op kind {}", static_cast<int>(n.op)));
}

}  // namespace porta::detail
