// Lowerings of rope and embedding. rope's frequency table (with linear or YaRN scaling applied)
// is computed once on the host in double, exactly as the reference does, and kept on the device.
#include <algorithm>
#include <cmath>
#include <numbers>

#include <fmt/format.h>

#include <porta/ops.hpp>

#include "opencl_lowering.hpp"
#include "reference/rope_tables.hpp"

namespace porta::detail::opencl {

SupportResult position_supports(const Device& device, const GraphState& g, const Node& n) {
  if (n.op == OpKind::Rope) {
    if (!std::holds_alternative<RopeAttrs>(n.attrs) || n.inputs.size() != 2)
      return SupportResult::no(fmt::format("{} without RopeAttrs", label(n)));
    if (!device.has_fp64())
      return SupportResult::no(fmt::format(
          "{}: the device has no cl_khr_fp64, and rope angles need double precision to match the "
          "reference",
          label(n)));
    if (auto r = need_float_storage(g, n, 0, 1); !r.supported) return r;
    if (!is_index(g.input_of(n, 1).dtype))
      return SupportResult::no(fmt::format("{}: positions must be i32 or i64", label(n)));
    const Shape& s = g.input_of(n, 0).shape;
    if (s.rank() != 2 && s.rank() != 3)
      return SupportResult::no(fmt::format("{}: x must be [T, H, D] or [T, D]", label(n)));
    const auto& a = std::get<RopeAttrs>(n.attrs);
    const std::int64_t rotary = a.rotary_dim == 0 ? s[-1] : a.rotary_dim;
    if (rotary < 0 || rotary > s[-1] || rotary % 2 != 0)
      return SupportResult::no(
          fmt::format("{}: rotary_dim {} must be even and at most {}", label(n), rotary, s[-1]));
    if (s[-1] % 2 != 0)
      return SupportResult::no(fmt::format("{}: an odd head dim {}", label(n), s[-1]));
    if (g.input_of(n, 1).shape.numel() != s[0])
      return SupportResult::no(fmt::format("{}: one position per token is needed", label(n)));
    return SupportResult::yes();
  }
  if (n.op == OpKind::Embedding) {
    if (n.inputs.size() != 2 || g.input_of(n, 0).shape.rank() != 2)
      return SupportResult::no(fmt::format("{}: the table must be [V, H]", label(n)));
    if (!is_index(g.input_of(n, 1).dtype))
      return SupportResult::no(fmt::format("{}: ids must be i32 or i64", label(n)));
    const std::size_t element = dtype_size(g.input_of(n, 0).dtype);
    if (element != 1 && element != 2 && element != 4 && element != 8)
      return SupportResult::no(fmt::format("{}: elements of {} bytes", label(n), element));
    return SupportResult::yes();
  }
  return SupportResult::no(fmt::format("{} is not a position op", label(n)));
}

void position_lower(Device& device, const GraphState& g, const Node& n, LoweredOp& op) {
  const ValueId x = n.inputs[0], second = n.inputs[1], y = n.outputs[0];
  if (n.op == OpKind::Embedding) {
    const ValueInfo& table = g.input_of(n, 0);
    op.kernels.push_back(device.kernel("embedding_gather"));
    const cl_kernel k = op.kernels.back().get();
    const cl_int element = static_cast<cl_int>(dtype_size(table.dtype));
    const cl_int ids_dtype = dtype_code(g.input_of(n, 1).dtype);
    const cl_long count = g.input_of(n, 1).shape.numel(), hidden = table.shape[1],
                  vocabulary = table.shape[0];
    const IndexCheckLaunch check = add_index_check(
        device, op, g.input_of(n, 1).dtype, count, false, 0, vocabulary,
        [where = label(n), ids = g.input_of(n, 1).name, vocabulary](const CheckRecord& r) {
          return fmt::format(
              "{}: id {} (at flat index {} of ids '{}') is out of range for a table of {} rows",
              where, r.value, r.position, ids, vocabulary);
        });
    op.run = [=](const Bindings& b, Enqueuer& q) {
      check.enqueue(b, q, b.at(second));
      set_args(k, b.at(x), element, b.at(second), ids_dtype, b.at(y), count, hidden, vocabulary);
      q.launch(k, {static_cast<std::size_t>(count * hidden)}, {64}, "embedding_gather");
    };
    return;
  }
  const auto& attrs = std::get<RopeAttrs>(n.attrs);
  const Shape& s = g.input_of(n, 0).shape;
  const cl_long tokens = s[0], heads = s.rank() == 3 ? s[1] : 1, head_dim = s[-1];
  const std::int64_t rotary = attrs.rotary_dim == 0 ? head_dim : attrs.rotary_dim;
  const auto inv_freq = rope_inverse_frequencies(attrs, rotary);
  op.buffers.push_back(upload_buffer(device, inv_freq.data(),
                                     std::max<std::size_t>(1, inv_freq.size()) * sizeof(double)));
  const ClBuffer* freq = op.buffers.back().get();
  const double divisor = rope_position_divisor(attrs.scaling);
  const double magnitude = rope_magnitude(attrs.scaling);
  op.kernels.push_back(device.kernel("rope_pairs"));
  const cl_kernel k = op.kernels.back().get();
  const cl_int dtype = dtype_code(g.input_of(n, 0).dtype);
  const cl_int pos_dtype = dtype_code(g.input_of(n, 1).dtype);
  const cl_long half = rotary / 2;
  const cl_int neox = attrs.layout == RopeLayout::NeoX ? 1 : 0;
  const auto items = static_cast<std::size_t>(tokens * heads * (head_dim / 2));
  op.run = [=](const Bindings& b, Enqueuer& q) {
    set_args(k, b.at(x), dtype, b.at(second), pos_dtype, freq->mem(), b.at(y), tokens, heads,
             head_dim, half, neox, divisor, magnitude);
    q.launch(k, {items}, {64}, "rope_pairs");
  };
}

}  // namespace porta::detail::opencl
