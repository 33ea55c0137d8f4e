// FLOPs and bytes of each op, for profiles, GFLOP/s and GB/s figures and roofline estimates.
// Counts follow the usual conventions: a multiply-add is 2 FLOPs; elementwise ops count one FLOP
// per output element (transcendentals included); bytes are every input read once plus every
// output written once.
#include "graph/catalogue.hpp"

namespace porta::detail {

namespace {

double bytes_of(const ValueInfo& v) {
  return static_cast<double>(v.shape.numel()) * static_cast<double>(dtype_size(v.dtype));
}

}  // namespace

OpCost op_cost(const GraphState& g, const Node& n) {
  OpCost cost;
  for (auto id : n.inputs) cost.bytes += bytes_of(g.values[id]);
  for (auto id : n.outputs) cost.bytes += bytes_of(g.values[id]);
  const auto out_elems = static_cast<double>(g.values[n.outputs[0]].shape.numel());
  switch (n.op) {
    case OpKind::Matmul: {
      const auto& a = std::get<MatmulAttrs>(n.attrs);
      const Shape& sa = g.input_of(n, 0).shape;
      const double k = static_cast<double>(a.transpose_a ? sa[-2] : sa[-1]);
      cost.flops = 2.0 * out_elems * k;
      break;
    }
    case OpKind::GroupedMatmul: {
      const Shape& rows = g.input_of(n, 0).shape;
      cost.flops = 2.0 * out_elems * static_cast<double>(rows[1]);
      break;
    }
    case OpKind::Attention: {
      const Shape& q = g.input_of(n, 0).shape;
      const Shape& k = g.input_of(n, 1).shape;
      const Shape& v = g.input_of(n, 2).shape;
      const auto& a = std::get<AttentionAttrs>(n.attrs);
      // Without knowing the run-time cache length, count the new keys plus a full cache.
      const double keys = static_cast<double>(k[0] + (a.kv_cache ? g.input_of(n, 3).shape[0] : 0));
      cost.flops = 2.0 * static_cast<double>(q[0] * q[1]) * keys * static_cast<double>(q[2] + v[2]);
      break;
    }
    case OpKind::MoeExperts: {
      const Shape& x = g.input_of(n, 0).shape;
      const Shape& w = g.input_of(n, 1).shape;
      const Shape& gate = g.input_of(n, 5).shape;
      const double rows = static_cast<double>(w[0] * w[1]);
      cost.flops = 2.0 * rows * static_cast<double>(x[1]) * static_cast<double>(gate[1]) * 3.0;
      if (n.inputs.size() > 8)
        cost.flops += 2.0 * static_cast<double>(x[0] * x[1]) *
                      static_cast<double>(g.input_of(n, 8).shape[0]) * 3.0;
      // Routed expert weights are read only for experts that receive tokens; count them all.
      break;
    }
    case OpKind::Softmax:
    case OpKind::RmsNorm:
    case OpKind::LayerNorm:
    case OpKind::Rope: cost.flops = 4.0 * out_elems; break;
    case OpKind::Reshape:
    case OpKind::Permute:
    case OpKind::Slice:
    case OpKind::Concat:
    case OpKind::Cast:
    case OpKind::Embedding:
    case OpKind::MoePermute: cost.flops = 0; break;
    default: cost.flops = out_elems; break;
  }
  return cost;
}

}  // namespace porta::detail
