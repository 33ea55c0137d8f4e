// Lowerings of the elementwise binary ops: add/sub/mul/div with broadcasting, swiglu.
#include <fmt/format.h>

#include <porta/ops.hpp>

#include "opencl_lowering.hpp"

namespace porta::detail::opencl {

namespace {

constexpr std::size_t kLocal = 64;

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

// add, sub, mul, div and swiglu (the unary activations are unary_ops.cpp's).
SupportResult elementwise_supports(const Device&, const GraphState& g, const Node& n) {
  const bool arithmetic =
      n.op == OpKind::Add || n.op == OpKind::Sub || n.op == OpKind::Mul || n.op == OpKind::Div;
  if (!arithmetic && n.op != OpKind::Swiglu)
    return SupportResult::no(fmt::format("{} is not an elementwise binary op", label(n)));
  const std::size_t arity = 2;
  if (n.inputs.size() != arity || n.outputs.size() != 1)
    return SupportResult::no(fmt::format("{} with {} inputs", label(n), n.inputs.size()));
  if (auto r = need_float_storage(g, n, 0, arity); !r.supported) {
    if (arithmetic) r.reason += " (integer arithmetic stays on the host backends)";
    return r;
  }
  if (!is_float_storage(g.output_of(n, 0).dtype))
    return SupportResult::no(
        fmt::format("{} output is {}", label(n), dtype_name(g.output_of(n, 0).dtype)));
  if (n.op == OpKind::Swiglu && g.input_of(n, 0).shape != g.input_of(n, 1).shape)
    return SupportResult::no(fmt::format("{}: gate and up differ in shape", label(n)));
  if (g.output_of(n, 0).shape.rank() > 16)
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
  const ValueInfo& a = g.input_of(n, 0);
  const ValueInfo& bv = g.input_of(n, 1);
  const auto table = broadcast_table(a.shape, bv.shape, out.shape);
  op.buffers.push_back(upload_buffer(device, table.data(), table.size() * sizeof(cl_long)));
  const ClBuffer* shape = op.buffers.back().get();
  op.kernels.push_back(device.kernel("binary_broadcast"));
  const cl_kernel k = op.kernels.back().get();
  // The kernel's op code is the OpKind value (PORTA_OP_<Kind> in the program's prelude).
  const cl_int code = static_cast<cl_int>(n.op), ad = dtype_code(a.dtype),
               bd = dtype_code(bv.dtype), od = dtype_code(out.dtype);
  const ValueId x0 = n.inputs[0], x1 = n.inputs[1];
  op.run = [=](const Bindings& b, Enqueuer& q) {
    set_args(k, code, b.at(x0), ad, b.at(x1), bd, b.at(y), od, shape->mem(), count);
    q.launch(k, {static_cast<std::size_t>(count)}, {kLocal}, "binary_broadcast");
  };
}

}  // namespace porta::detail::opencl
