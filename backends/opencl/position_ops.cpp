// Lowerings of rope and embedding. rope's frequency table (with linear or YaRN scaling applied)
// is computed once on the host in double, exactly as the reference does, and kept on the device.
#include <algorithm>
#include <cmath>
#include <numbers>

#include <fmt/format.h>

#include <porta/ops.hpp>

#include "opencl_lowering.hpp"

namespace porta::detail::opencl {

namespace {

double yarn_get_mscale(double factor, double mscale) {
  return factor <= 1.0 ? 1.0 : 0.1 * mscale * std::log(factor) + 1.0;
}

double yarn_find_dim(double rotations, double dim, double base, double original_max) {
  return dim * std::log(original_max / (rotations * 2.0 * std::numbers::pi)) /
         (2.0 * std::log(base));
}

std::vector<double> inverse_frequencies(const RopeAttrs& attrs, std::int64_t rotary_dim) {
  const auto half = static_cast<std::size_t>(rotary_dim / 2);
  const double dim = static_cast<double>(rotary_dim);
  const double base = attrs.theta;
  std::vector<double> inv_freq(half);
  for (std::size_t i = 0; i < half; ++i)
    inv_freq[i] = std::pow(base, -2.0 * static_cast<double>(i) / dim);
  if (attrs.scaling.type != RopeScalingType::Yarn) return inv_freq;
  const auto& s = attrs.scaling;
  const double original_max = static_cast<double>(s.original_max_position);
  const double low = std::max(std::floor(yarn_find_dim(s.beta_fast, dim, base, original_max)), 0.0);
  double high = std::min(std::ceil(yarn_find_dim(s.beta_slow, dim, base, original_max)), dim - 1.0);
  if (low == high) high = low + 0.001;
  for (std::size_t i = 0; i < half; ++i) {
    const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
    const double extrapolation_weight = 1.0 - ramp;
    const double freq_extra = inv_freq[i];
    const double freq_inter = freq_extra / static_cast<double>(s.factor);
    inv_freq[i] = freq_inter * (1.0 - extrapolation_weight) + freq_extra * extrapolation_weight;
  }
  return inv_freq;
}

}  // namespace

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
    op.run = [=](const Bindings& b, Enqueuer& q) {
      set_args(k, b.at(x), element, b.at(second), ids_dtype, b.at(y), count, hidden, vocabulary);
      q.launch(k, {static_cast<std::size_t>(count * hidden)}, {64}, "embedding_gather");
    };
    return;
  }
  const auto& attrs = std::get<RopeAttrs>(n.attrs);
  const Shape& s = g.input_of(n, 0).shape;
  const cl_long tokens = s[0], heads = s.rank() == 3 ? s[1] : 1, head_dim = s[-1];
  const std::int64_t rotary = attrs.rotary_dim == 0 ? head_dim : attrs.rotary_dim;
  const auto inv_freq = inverse_frequencies(attrs, rotary);
  op.buffers.push_back(upload_buffer(device, inv_freq.data(),
                                     std::max<std::size_t>(1, inv_freq.size()) * sizeof(double)));
  const ClBuffer* freq = op.buffers.back().get();
  const auto& scaling = attrs.scaling;
  const double divisor = scaling.type == RopeScalingType::Linear ? scaling.factor : 1.0;
  const double magnitude = scaling.type == RopeScalingType::Yarn
                               ? yarn_get_mscale(scaling.factor, scaling.mscale) /
                                     yarn_get_mscale(scaling.factor, scaling.mscale_all_dim)
                               : 1.0;
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
