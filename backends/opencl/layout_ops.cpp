// Lowerings of the layout ops: reshape (a buffer copy), permute, slice and concat (strided copies
// of the bytes, exact for every dtype) and cast between the float dtypes.
#include <fmt/format.h>

#include <porta/ops.hpp>

#include "opencl_lowering.hpp"

namespace porta::detail::opencl {

namespace {

constexpr std::size_t kLocal = 64;

std::vector<cl_long> copy_table(const std::vector<cl_long>& dims, const std::vector<cl_long>& src,
                                const std::vector<cl_long>& dst) {
  std::vector<cl_long> table{static_cast<cl_long>(dims.size())};
  table.insert(table.end(), dims.begin(), dims.end());
  table.insert(table.end(), src.begin(), src.end());
  table.insert(table.end(), dst.begin(), dst.end());
  if (dims.empty()) table = {1, 1, 0, 0};  // a scalar: one element
  return table;
}

// One strided copy of `count` elements: src and dst offsets in bytes relative to the values.
struct StridedCopy {
  const ClBuffer* table;
  cl_kernel kernel;
  ValueId src, dst;
  cl_ulong src_bytes, dst_bytes;
  cl_int size;
  cl_long count;
};

void add_strided_copy(Device& device, LoweredOp& op, std::vector<StridedCopy>& copies,
                      const std::vector<cl_long>& table, ValueId src, ValueId dst,
                      cl_ulong src_bytes, cl_ulong dst_bytes, std::size_t element, cl_long count) {
  op.buffers.push_back(upload_buffer(device, table.data(), table.size() * sizeof(cl_long)));
  op.kernels.push_back(device.kernel("strided_copy"));
  copies.push_back({op.buffers.back().get(), op.kernels.back().get(), src, dst, src_bytes,
                    dst_bytes, static_cast<cl_int>(element), count});
}

void run_copies(const std::vector<StridedCopy>& copies, const Bindings& b, Enqueuer& q) {
  for (const auto& c : copies) {
    DeviceArg from = b.at(c.src), to = b.at(c.dst);
    from.offset += c.src_bytes;
    to.offset += c.dst_bytes;
    set_args(c.kernel, from, to, c.size, c.table->mem(), c.count);
    q.launch(c.kernel, {static_cast<std::size_t>(c.count)}, {kLocal}, "strided_copy");
  }
}

}  // namespace

SupportResult layout_supports(const Device&, const GraphState& g, const Node& n) {
  if (n.outputs.size() != 1 || n.inputs.empty())
    return SupportResult::no(fmt::format("{} with {} outputs", label(n), n.outputs.size()));
  const std::size_t element = dtype_size(g.input_of(n, 0).dtype);
  if (element != 1 && element != 2 && element != 4 && element != 8)
    return SupportResult::no(fmt::format("{}: elements of {} bytes", label(n), element));
  if (n.op == OpKind::Reshape) {
    return SupportResult::yes();
  } else if (n.op == OpKind::Permute) {
    if (!std::holds_alternative<PermuteAttrs>(n.attrs))
      return SupportResult::no(fmt::format("{} without PermuteAttrs", label(n)));
    return SupportResult::yes();
  } else if (n.op == OpKind::Slice) {
    if (!std::holds_alternative<SliceAttrs>(n.attrs))
      return SupportResult::no(fmt::format("{} without SliceAttrs", label(n)));
    if (std::get<SliceAttrs>(n.attrs).step < 1)
      return SupportResult::no(fmt::format("{}: step below 1", label(n)));
    return SupportResult::yes();
  } else if (n.op == OpKind::Concat) {
    if (!std::holds_alternative<AxisAttrs>(n.attrs))
      return SupportResult::no(fmt::format("{} without AxisAttrs", label(n)));
    for (std::size_t i = 0; i < n.inputs.size(); ++i)
      if (g.input_of(n, i).dtype != g.output_of(n, 0).dtype)
        return SupportResult::no(fmt::format("{}: inputs of different dtypes", label(n)));
    return SupportResult::yes();
  } else if (n.op == OpKind::Cast) {
    const DType from = g.input_of(n, 0).dtype, to = g.output_of(n, 0).dtype;
    if (from == to || (is_float_storage(from) && is_float_storage(to))) return SupportResult::yes();
    return SupportResult::no(
        fmt::format("{} from {} to {}: the opencl kernels convert between f32, f16 and bf16 only",
                    label(n), dtype_name(from), dtype_name(to)));
  }
  return SupportResult::no(fmt::format("{} is not a layout op", label(n)));
}

void layout_lower(Device& device, const GraphState& g, const Node& n, LoweredOp& op) {
  const ValueInfo& in = g.input_of(n, 0);
  const ValueInfo& out = g.output_of(n, 0);
  const ValueId x = n.inputs[0], y = n.outputs[0];
  const std::size_t element = dtype_size(in.dtype);
  const auto bytes = static_cast<std::size_t>(out.shape.numel()) * dtype_size(out.dtype);

  if (n.op == OpKind::Reshape || (n.op == OpKind::Cast && in.dtype == out.dtype)) {
    op.run = [=](const Bindings& b, Enqueuer& q) {
      if (bytes == 0) return;
      const DeviceArg from = b.at(x), to = b.at(y);
      check_cl(clEnqueueCopyBuffer(q.queue(), from.mem, to.mem, from.offset, to.offset, bytes, 0,
                                   nullptr, q.event_slot()),
               "copying a reshaped value");
    };
    return;
  }
  if (n.op == OpKind::Cast) {
    op.kernels.push_back(device.kernel("convert"));
    const cl_kernel k = op.kernels.back().get();
    const cl_int from = dtype_code(in.dtype), to = dtype_code(out.dtype);
    const auto count = static_cast<cl_long>(out.shape.numel());
    op.run = [=](const Bindings& b, Enqueuer& q) {
      set_args(k, b.at(x), from, b.at(y), to, count);
      q.launch(k, {static_cast<std::size_t>(count)}, {kLocal}, "convert");
    };
    return;
  }

  auto copies = std::make_shared<std::vector<StridedCopy>>();
  const auto in_strides = contiguous_strides(in.shape);
  const auto out_strides = contiguous_strides(out.shape);
  const std::vector<cl_long> out_dims(out.shape.dims().begin(), out.shape.dims().end());
  if (n.op == OpKind::Permute) {
    const auto& perm = std::get<PermuteAttrs>(n.attrs).perm;
    std::vector<cl_long> src(perm.size());
    for (std::size_t i = 0; i < perm.size(); ++i)
      src[i] = in_strides[static_cast<std::size_t>(perm[i])];
    add_strided_copy(device, op, *copies, copy_table(out_dims, src, out_strides), x, y, 0, 0,
                     element, out.shape.numel());
  } else if (n.op == OpKind::Slice) {
    const auto& s = std::get<SliceAttrs>(n.attrs);
    const int axis = in.shape.normalize_axis(s.axis);
    const std::int64_t length = in.shape[axis];
    // The output's shape already holds the clamped extent; the start is clamped the same way.
    std::int64_t start = s.start < 0 ? s.start + length : s.start;
    start = std::clamp<std::int64_t>(start, 0, length);
    std::vector<cl_long> src = in_strides;
    src[static_cast<std::size_t>(axis)] *= s.step;
    add_strided_copy(
        device, op, *copies, copy_table(out_dims, src, out_strides), x, y,
        static_cast<cl_ulong>(start * in_strides[static_cast<std::size_t>(axis)]) * element, 0,
        element, out.shape.numel());
  } else {  // concat
    const int axis = out.shape.normalize_axis(std::get<AxisAttrs>(n.attrs).axis);
    std::int64_t at = 0;
    for (std::size_t i = 0; i < n.inputs.size(); ++i) {
      const Shape& part = g.input_of(n, i).shape;
      const std::vector<cl_long> dims(part.dims().begin(), part.dims().end());
      add_strided_copy(
          device, op, *copies, copy_table(dims, contiguous_strides(part), out_strides), n.inputs[i],
          y, 0, static_cast<cl_ulong>(at * out_strides[static_cast<std::size_t>(axis)]) * element,
          element, part.numel());
      at += part[axis];
    }
  }
  op.run = [copies](const Bindings& b, Enqueuer& q) { run_copies(*copies, b, q); };
}

}  // namespace porta::detail::opencl
