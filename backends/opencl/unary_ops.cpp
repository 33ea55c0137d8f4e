// Lowering of the unary activations: one `unary` kernel whose cases come from
// kernels/unary_ops.def, which is also this file's table of the ops it runs.
#include <algorithm>

#include <fmt/format.h>

#include <porta/ops.hpp>

#include "opencl_lowering.hpp"

namespace porta::detail::opencl {

namespace {

constexpr std::size_t kUnaryLocal = 64;

#define PORTA_CL_UNARY(kind, expr) OpKind::kind,
constexpr OpKind kUnaryOps[] = {
#include "kernels/unary_ops.def"
};
#undef PORTA_CL_UNARY

// The attribute variant the kernel's expression reads: gelu's approximation, 0 for the rest.
cl_int unary_variant(const Node& n) {
  if (const auto* gelu = std::get_if<GeluAttrs>(&n.attrs))
    return gelu->approximation == GeluApproximation::Tanh ? 1 : 0;
  return 0;
}

}  // namespace

bool is_unary_op(OpKind op) {
  return std::find(std::begin(kUnaryOps), std::end(kUnaryOps), op) != std::end(kUnaryOps);
}

SupportResult unary_supports(const Device&, const GraphState& g, const Node& n) {
  if (!is_unary_op(n.op))
    return SupportResult::no(fmt::format("{} has no opencl unary kernel", label(n)));
  if (n.inputs.size() != 1 || n.outputs.size() != 1)
    return SupportResult::no(fmt::format("{} with {} inputs", label(n), n.inputs.size()));
  if (n.op == OpKind::Gelu && !std::holds_alternative<GeluAttrs>(n.attrs))
    return SupportResult::no(fmt::format("{} without GeluAttrs", label(n)));
  if (auto r = need_float_storage(g, n, 0, 1); !r.supported) return r;
  if (!is_float_storage(g.output_of(n, 0).dtype))
    return SupportResult::no(
        fmt::format("{} output is {}", label(n), dtype_name(g.output_of(n, 0).dtype)));
  return SupportResult::yes();
}

void unary_lower(Device& device, const GraphState& g, const Node& n, LoweredOp& op) {
  const ValueInfo& out = g.output_of(n, 0);
  const auto count = static_cast<cl_long>(out.shape.numel());
  op.kernels.push_back(device.kernel("unary"));
  const cl_kernel k = op.kernels.back().get();
  const cl_int code = static_cast<cl_int>(n.op), variant = unary_variant(n);
  const cl_int xd = dtype_code(g.input_of(n, 0).dtype), od = dtype_code(out.dtype);
  const ValueId x = n.inputs[0], y = n.outputs[0];
  op.run = [=](const Bindings& b, Enqueuer& q) {
    set_args(k, code, variant, b.at(x), xd, b.at(y), od, count);
    q.launch(k, {static_cast<std::size_t>(count)}, {kUnaryLocal}, "unary");
  };
}

}  // namespace porta::detail::opencl
