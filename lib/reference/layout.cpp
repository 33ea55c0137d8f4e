// Data movement: reshape, permute, slice, concat, cast. These move element bytes unchanged
// (cast and a mixed-dtype concat convert them with porta::convert), so they are exact.

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <porta/error.hpp>

#include "reference/kernel_util.hpp"
#include "reference/kernels.hpp"

namespace porta::detail::reference {

namespace {

const std::byte* bytes_in(const TensorRef& t) {
  return static_cast<const std::byte*>(input_bytes(t));
}
std::byte* bytes_out(const TensorRef& t) { return static_cast<std::byte*>(output_bytes(t)); }

// Python's slice-bound rule: negative counts from the end, then clamp into [0, dim].
std::int64_t normalize_bound(std::int64_t bound, std::int64_t dim) {
  if (bound < 0) bound += dim;
  return std::clamp<std::int64_t>(bound, 0, dim);
}

}  // namespace

void run_reshape(const GraphState&, const Node& n, const ExecContext& ctx) {
  const TensorRef& x = ctx.input(n, 0);
  const TensorRef& out = ctx.output(n, 0);
  if (x.nbytes() != out.nbytes() || x.dtype() != out.dtype())
    throw Error(ErrorCode::Internal,
                fmt::format("{}: input {}{} and output {}{} differ in size", node_label(n),
                            dtype_name(x.dtype()), x.shape().to_string(), dtype_name(out.dtype()),
                            out.shape().to_string()));
  if (out.nbytes() == 0) return;
  // The runtime may hand us the same memory for both (an in-place reshape).
  if (bytes_in(x) != bytes_out(out)) std::memmove(bytes_out(out), bytes_in(x), out.nbytes());
}

void run_permute(const GraphState&, const Node& n, const ExecContext& ctx) {
  const auto& perm = std::get<PermuteAttrs>(n.attrs).perm;
  const TensorRef& x = ctx.input(n, 0);
  const TensorRef& out = ctx.output(n, 0);
  const Shape& in_shape = x.shape();
  const Shape& out_shape = out.shape();
  const auto rank = static_cast<std::size_t>(in_shape.rank());
  if (perm.size() != rank || out_shape.rank() != in_shape.rank())
    throw Error(ErrorCode::ShapeMismatch,
                fmt::format("{}: perm [{}] does not fit the input {}", node_label(n),
                            fmt::join(perm, ", "), in_shape.to_string()));
  if (out_shape.numel() == 0) return;

  // Stride in the input of a step along each output axis.
  const auto in_strides = in_shape.strides();
  std::vector<std::int64_t> strides(rank);
  for (std::size_t axis = 0; axis < rank; ++axis)
    strides[axis] = in_strides[static_cast<std::size_t>(in_shape.normalize_axis(perm[axis]))];

  const std::size_t element = dtype_size(x.dtype());
  const std::byte* src = bytes_in(x);
  std::byte* dst = bytes_out(out);
  std::vector<std::int64_t> counter(rank, 0);
  std::int64_t offset = 0;
  for (std::int64_t i = 0; i < out_shape.numel(); ++i) {
    std::memcpy(dst + static_cast<std::size_t>(i) * element,
                src + static_cast<std::size_t>(offset) * element, element);
    for (std::size_t axis = rank; axis-- > 0;) {
      ++counter[axis];
      offset += strides[axis];
      if (counter[axis] < out_shape.dims()[axis]) break;
      offset -= strides[axis] * counter[axis];
      counter[axis] = 0;
    }
  }
}

void run_slice(const GraphState&, const Node& n, const ExecContext& ctx) {
  const auto& attrs = std::get<SliceAttrs>(n.attrs);
  const TensorRef& x = ctx.input(n, 0);
  const TensorRef& out = ctx.output(n, 0);
  const Shape& shape = x.shape();
  const int axis = shape.normalize_axis(attrs.axis);
  if (attrs.step < 1)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{}: step {} must be at least 1", node_label(n), attrs.step));
  const std::int64_t dim = shape[axis];
  const std::int64_t start = normalize_bound(attrs.start, dim);
  const std::int64_t end = normalize_bound(attrs.end, dim);
  const std::int64_t count = end > start ? (end - start + attrs.step - 1) / attrs.step : 0;
  if (out.shape().rank() != shape.rank() || out.shape()[axis] != count)
    throw Error(ErrorCode::Internal,
                fmt::format("{}: slice [{}:{}:{}] of axis {} ({}) gives {} elements, but the "
                            "output is {}",
                            node_label(n), attrs.start, attrs.end, attrs.step, axis,
                            shape.to_string(), count, out.shape().to_string()));
  if (out.shape().numel() == 0) return;

  const std::size_t inner =
      static_cast<std::size_t>(dims_product(shape, axis + 1, shape.rank())) * dtype_size(x.dtype());
  const std::int64_t outer = dims_product(shape, 0, axis);
  const std::byte* src = bytes_in(x);
  std::byte* dst = bytes_out(out);
  for (std::int64_t o = 0; o < outer; ++o)
    for (std::int64_t c = 0; c < count; ++c)
      std::memcpy(dst + static_cast<std::size_t>(o * count + c) * inner,
                  src + static_cast<std::size_t>(o * dim + start + c * attrs.step) * inner, inner);
}

void run_concat(const GraphState&, const Node& n, const ExecContext& ctx) {
  const TensorRef& out = ctx.output(n, 0);
  const Shape& out_shape = out.shape();
  const int axis = out_shape.normalize_axis(std::get<AxisAttrs>(n.attrs).axis);
  if (out_shape.numel() == 0) return;
  const std::int64_t outer = dims_product(out_shape, 0, axis);
  const std::int64_t inner = dims_product(out_shape, axis + 1, out_shape.rank());
  const std::size_t out_element = dtype_size(out.dtype());
  std::byte* dst = bytes_out(out);

  // Each outer block of the output is the inputs' blocks one after another.
  std::int64_t axis_offset = 0;
  for (std::size_t k = 0; k < n.inputs.size(); ++k) {
    const TensorRef& x = ctx.input(n, k);
    const std::int64_t part = x.shape()[axis];
    if (x.shape().numel() != outer * part * inner || axis_offset + part > out_shape[axis])
      throw Error(
          ErrorCode::ShapeMismatch,
          fmt::format("{}: input {} {} does not fit the output {} along axis {}", node_label(n), k,
                      x.shape().to_string(), out_shape.to_string(), axis));
    if (part > 0) {
      const std::byte* src = bytes_in(x);
      const std::size_t block = static_cast<std::size_t>(part * inner);
      for (std::int64_t o = 0; o < outer; ++o)
        convert(src + static_cast<std::size_t>(o) * block * dtype_size(x.dtype()), x.dtype(),
                dst + static_cast<std::size_t>(o * out_shape[axis] + axis_offset) *
                          static_cast<std::size_t>(inner) * out_element,
                out.dtype(), block);
    }
    axis_offset += part;
  }
}

void run_cast(const GraphState&, const Node& n, const ExecContext& ctx) {
  const TensorRef& x = ctx.input(n, 0);
  const TensorRef& out = ctx.output(n, 0);
  const auto count = static_cast<std::size_t>(out.shape().numel());
  if (static_cast<std::size_t>(x.shape().numel()) != count)
    throw Error(ErrorCode::Internal,
                fmt::format("{}: input {} and output {} differ in size", node_label(n),
                            x.shape().to_string(), out.shape().to_string()));
  if (count == 0) return;
  convert(bytes_in(x), x.dtype(), bytes_out(out), out.dtype(), count);
}

}  // namespace porta::detail::reference
