// Lowerings of the elementwise ops: add/sub/mul/div with broadcasting, the activations, swiglu.
#include <fmt/format.h>

#include <porta/ops.hpp>

#include "opencl_lowering.hpp"

namespace porta::detail::opencl {

namespace {

constexpr std::size_t kLocal = 64;

cl_int binary_code(OpKind op) {
  switch (op) {
    case OpKind::Add: return 0;
    case OpKind::Sub: return 1;
    case OpKind::Mul: return 2;
    default: return 3;
  }
}

// Merges adjacent axes that every operand walks contiguously, so the common same-shape case
// needs one division per element at most.
std::vector<cl_long> broadcast_table(const Shape& a, const Shape& b, const Shape& out) {
  std::vector<cl_long> dims(out.dims().begin(), out.dims().end());
  std::vector<cl_long> sa = broadcast_strides(a, out), sb = broadcast_strides(b, out);
  std::vector<cl_long> md, ma, mb;
  for (std::size_t d = 0; d < dims.size(); ++d) {
    if (!md.empty() && ma.back() == sa[d] * dims[d] && mb.back() == sb[d] * dims[d]) {
      md.back() *= dims[d];
      ma.back() = sa[d];
      mb.back() = sb[d];
      continue;
    }
    md.push_back(dims[d]);
    ma.push_back(sa[d]);
    mb.push_back(sb[d]);
  }
  if (md.empty()) md = {1}, ma = {0}, mb = {0};
  std::vector<cl_long> table{static_cast<cl_long>(md.size())};
  table.insert(table.end(), md.begin(), md.end());
  table.insert(table.end(), ma.begin(), ma.end());
  table.insert(table.end(), mb.begin(), mb.end());
  return table;
}

}  // namespace

SupportResult elementwise_supports(const Device&, const GraphState& g, const Node& n) {
  const std::size_t arity = (n.op == OpKind::Add || n.op == OpKind::Sub || n.op == OpKind::Mul ||
                             n.op == OpKind::Div || n.op == OpKind::Swiglu)
                                ? 2
                                : 1;
  if (n.inputs.size() != arity || n.outputs.size() != 1)
    return SupportResult::no(fmt::format("{} with {} inputs", label(n), n.inputs.size()));
  if (n.op == OpKind::Gelu && !std::holds_alternative<GeluAttrs>(n.attrs))
    return SupportResult::no(fmt::format("{} without GeluAttrs", label(n)));
  if (auto r = need_float_storage(g, n, 0, arity); !r.supported) {
    if (arity == 2 && n.op != OpKind::Swiglu)
      r.reason += " (integer arithmetic stays on the host backends)";
    return r;
  }
  if (!is_float_storage(g.output_of(n, 0).dtype))
    return SupportResult::no(
        fmt::format("{} output is {}", label(n), dtype_name(g.output_of(n, 0).dtype)));
  if (n.op == OpKind::Swiglu && g.input_of(n, 0).shape != g.input_of(n, 1).shape)
    return SupportResult::no(fmt::format("{}: gate and up differ in shape", label(n)));
  if (arity == 2 && g.output_of(n, 0).shape.rank() > 16)
    return SupportResult::no(fmt::format("{}: rank above 16", label(n)));
  return SupportResult::yes();
}

void elementwise_lower(Device& device, const GraphState& g, const Node& n, LoweredOp& op) {
  const ValueInfo& out = g.output_of(n, 0);
  const auto count = static_cast<cl_long>(out.shape.numel());
  const ValueId y = n.outputs[0];
  if (n.op == OpKind::Swiglu) {
    op.kernels.push_back(device.kernel("swiglu"));
    const cl_kernel k = op.kernels.back().get();
    const ValueId gate = n.inputs[0], up = n.inputs[1];
    const cl_int dtype = dtype_code(out.dtype);
    op.run = [=](const Bindings& b, Enqueuer& q) {
      set_args(k, b.at(gate), b.at(up), dtype, b.at(y), count);
      q.launch(k, {static_cast<std::size_t>(count)}, {kLocal}, "swiglu");
    };
    return;
  }
  if (n.inputs.size() == 2) {
    const ValueInfo& a = g.input_of(n, 0);
    const ValueInfo& bv = g.input_of(n, 1);
    const auto table = broadcast_table(a.shape, bv.shape, out.shape);
    op.buffers.push_back(upload_buffer(device, table.data(), table.size() * sizeof(cl_long)));
    const ClBuffer* shape = op.buffers.back().get();
    op.kernels.push_back(device.kernel("binary_broadcast"));
    const cl_kernel k = op.kernels.back().get();
    const cl_int code = binary_code(n.op), ad = dtype_code(a.dtype), bd = dtype_code(bv.dtype),
                 od = dtype_code(out.dtype);
    const ValueId x0 = n.inputs[0], x1 = n.inputs[1];
    op.run = [=](const Bindings& b, Enqueuer& q) {
      set_args(k, code, b.at(x0), ad, b.at(x1), bd, b.at(y), od, shape->mem(), count);
      q.launch(k, {static_cast<std::size_t>(count)}, {kLocal}, "binary_broadcast");
    };
    return;
  }
  cl_int code = 0;
  switch (n.op) {
    case OpKind::Silu: code = 0; break;
    case OpKind::Gelu:
      code = std::get<GeluAttrs>(n.attrs).approximation == GeluApproximation::Tanh ? 2 : 1;
      break;
    case OpKind::Sigmoid: code = 3; break;
    default: code = 4; break;
  }
  op.kernels.push_back(device.kernel("unary"));
  const cl_kernel k = op.kernels.back().get();
  const cl_int xd = dtype_code(g.input_of(n, 0).dtype), od = dtype_code(out.dtype);
  const ValueId x = n.inputs[0];
  op.run = [=](const Bindings& b, Enqueuer& q) {
    set_args(k, code, b.at(x), xd, b.at(y), od, count);
    q.launch(k, {static_cast<std::size_t>(count)}, {kLocal}, "unary");
  };
}

}  // namespace porta::detail::opencl
