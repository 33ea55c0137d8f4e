// Lowerings of softmax, rms_norm, layer_norm and top_k. The row kernels use one work-group per
// row with a local-memory tree reduction; the group size comes from the device's limits.
#include <fmt/format.h>

#include <porta/ops.hpp>

#include "opencl_lowering.hpp"

namespace porta::detail::opencl {

namespace {

std::int64_t dims_product(const Shape& s, int begin, int end) {
  std::int64_t n = 1;
  for (int axis = begin; axis < end; ++axis) n *= s[axis];
  return n;
}

}  // namespace

SupportResult reduction_supports(const Device&, const GraphState& g, const Node& n) {
  if (n.op == OpKind::Softmax) {
    if (!std::holds_alternative<AxisAttrs>(n.attrs) || n.inputs.size() != 1)
      return SupportResult::no(fmt::format("{} without AxisAttrs", label(n)));
    return need_float_storage(g, n, 0, 1);
  } else if (n.op == OpKind::RmsNorm || n.op == OpKind::LayerNorm) {
    if (!std::holds_alternative<NormAttrs>(n.attrs))
      return SupportResult::no(fmt::format("{} without NormAttrs", label(n)));
    if (auto r = need_float_storage(g, n, 0, n.inputs.size()); !r.supported) return r;
    const std::int64_t hidden = g.input_of(n, 0).shape.rank() == 0 ? 1 : g.input_of(n, 0).shape[-1];
    for (std::size_t i = 1; i < n.inputs.size(); ++i) {
      if (g.input_of(n, i).shape.numel() != hidden)
        return SupportResult::no(
            fmt::format("{}: input {} does not hold one value per channel", label(n), i));
      if (g.input_of(n, i).dtype != g.input_of(n, 1).dtype)
        return SupportResult::no(fmt::format("{}: weight and bias dtypes differ", label(n)));
    }
    return SupportResult::yes();
  } else if (n.op == OpKind::TopK) {
    if (!std::holds_alternative<TopKAttrs>(n.attrs))
      return SupportResult::no(fmt::format("{} without TopKAttrs", label(n)));
    if (auto r = need_float_storage(g, n, 0, 1); !r.supported) {
      r.reason += " (integer top_k stays on the host backends)";
      return r;
    }
    const Shape& s = g.input_of(n, 0).shape;
    const std::int64_t length = s.rank() == 0 ? 1 : s[-1];
    const std::int64_t k = std::get<TopKAttrs>(n.attrs).k;
    if (k < 0 || k > length)
      return SupportResult::no(fmt::format("{}: k = {} is outside [0, {}]", label(n), k, length));
    if (g.output_of(n, 1).dtype != DType::I32)
      return SupportResult::no(fmt::format("{}: indices must be i32", label(n)));
    return SupportResult::yes();
  }
  return SupportResult::no(fmt::format("{} is not a reduction", label(n)));
}

void reduction_lower(Device& device, const GraphState& g, const Node& n, LoweredOp& op) {
  const ValueInfo& x = g.input_of(n, 0);
  const Shape& shape = x.shape;
  const ValueId in = n.inputs[0], y = n.outputs[0];
  const std::int64_t hidden = shape.rank() == 0 ? 1 : shape[-1];
  const std::int64_t rows = hidden == 0 ? 0 : shape.numel() / hidden;

  if (n.op == OpKind::Softmax) {
    const int axis =
        shape.rank() == 0 ? 0 : shape.normalize_axis(std::get<AxisAttrs>(n.attrs).axis);
    const std::int64_t outer = dims_product(shape, 0, axis);
    const std::int64_t length = shape.rank() == 0 ? 1 : shape[axis];
    const std::int64_t inner = shape.rank() == 0 ? 1 : dims_product(shape, axis + 1, shape.rank());
    const cl_int dtype = dtype_code(x.dtype);
    if (inner == 1) {
      op.kernels.push_back(device.kernel("softmax_rows"));
      const cl_kernel k = op.kernels.back().get();
      const std::size_t local = device.work_group_size(k);
      const auto groups = static_cast<std::size_t>(length == 0 ? 0 : outer);
      op.run = [=](const Bindings& b, Enqueuer& q) {
        set_args(k, b.at(in), b.at(y), dtype, cl_long{length}, LocalBytes{local * sizeof(float)});
        q.launch(k, {groups * local}, {local}, "softmax_rows");
      };
    } else {
      op.kernels.push_back(device.kernel("softmax_columns"));
      const cl_kernel k = op.kernels.back().get();
      const auto items = static_cast<std::size_t>(length == 0 ? 0 : outer * inner);
      op.run = [=](const Bindings& b, Enqueuer& q) {
        set_args(k, b.at(in), b.at(y), dtype, cl_long{outer}, cl_long{length}, cl_long{inner});
        q.launch(k, {items}, {64}, "softmax_columns");
      };
    }
    return;
  }
  if (n.op == OpKind::RmsNorm || n.op == OpKind::LayerNorm) {
    const bool rms = n.op == OpKind::RmsNorm;
    op.kernels.push_back(device.kernel(rms ? "rms_norm_rows" : "layer_norm_rows"));
    const cl_kernel k = op.kernels.back().get();
    const std::size_t local = device.work_group_size(k);
    const float eps = std::get<NormAttrs>(n.attrs).eps;
    const cl_int xd = dtype_code(x.dtype), wd = dtype_code(g.input_of(n, 1).dtype),
                 od = dtype_code(g.output_of(n, 0).dtype);
    const ValueId w = n.inputs[1];
    const bool has_bias = n.inputs.size() > 2;
    const ValueId bias = has_bias ? n.inputs[2] : w;
    const auto groups = static_cast<std::size_t>(rows);
    op.run = [=](const Bindings& b, Enqueuer& q) {
      if (rms)
        set_args(k, b.at(in), xd, b.at(w), wd, b.at(y), od, cl_long{hidden}, eps,
                 LocalBytes{local * sizeof(float)});
      else
        set_args(k, b.at(in), xd, b.at(w), wd, b.at(bias), cl_int{has_bias}, b.at(y), od,
                 cl_long{hidden}, eps, LocalBytes{local * sizeof(float)});
      q.launch(k, {groups * local}, {local}, rms ? "rms_norm_rows" : "layer_norm_rows");
    };
    return;
  }
  // top_k
  const auto& attrs = std::get<TopKAttrs>(n.attrs);
  op.kernels.push_back(device.kernel("top_k_rows"));
  const cl_kernel k = op.kernels.back().get();
  const cl_int dtype = dtype_code(x.dtype), element = static_cast<cl_int>(dtype_size(x.dtype));
  const ValueId indices = n.outputs[1];
  const cl_long kk = attrs.k;
  const cl_int largest = attrs.largest ? 1 : 0;
  const auto items = static_cast<std::size_t>(kk == 0 ? 0 : rows);
  op.run = [=](const Bindings& b, Enqueuer& q) {
    set_args(k, b.at(in), dtype, element, b.at(y), b.at(indices), cl_long{rows}, cl_long{hidden},
             kk, largest);
    q.launch(k, {items}, {64}, "top_k_rows");
  };
}

}  // namespace porta::detail::opencl
