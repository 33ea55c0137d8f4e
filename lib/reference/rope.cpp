// rope: rotary position embedding of x[T, H, D] (or x[T, D]) at positions[T], NeoX or
// interleaved pairs, with plain, linear or YaRN frequency scaling. Angles are computed in double.

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include <fmt/format.h>

#include <porta/error.hpp>

#include "reference/kernel_util.hpp"
#include "reference/kernels.hpp"

namespace porta::detail::reference {

namespace {

// DeepSeek's yarn_get_mscale: the attention-temperature correction of YaRN.
double yarn_get_mscale(double factor, double mscale) {
  return factor <= 1.0 ? 1.0 : 0.1 * mscale * std::log(factor) + 1.0;
}

// YaRN's dimension at which a frequency completes `rotations` turns over the original context.
double yarn_find_dim(double rotations, double dim, double base, double original_max) {
  return dim * std::log(original_max / (rotations * 2.0 * std::numbers::pi)) /
         (2.0 * std::log(base));
}

// Frequency i (of r/2) of the rotation, with the scaling applied. Linear scaling divides the
// positions instead and is applied by the caller.
std::vector<double> inverse_frequencies(const RopeAttrs& attrs, std::int64_t rotary_dim) {
  const auto half = static_cast<std::size_t>(rotary_dim / 2);
  const double dim = static_cast<double>(rotary_dim);
  const double base = attrs.theta;
  std::vector<double> inv_freq(half);
  for (std::size_t i = 0; i < half; ++i)
    inv_freq[i] = std::pow(base, -2.0 * static_cast<double>(i) / dim);
  if (attrs.scaling.type != RopeScalingType::Yarn) return inv_freq;

  // Blend interpolated (freq / factor) and extrapolated (freq) frequencies with a linear ramp
  // between the dimensions that turn beta_fast and beta_slow times over the original context.
  const auto& s = attrs.scaling;
  const double original_max = static_cast<double>(s.original_max_position);
  const double low = std::max(std::floor(yarn_find_dim(s.beta_fast, dim, base, original_max)), 0.0);
  double high = std::min(std::ceil(yarn_find_dim(s.beta_slow, dim, base, original_max)), dim - 1.0);
  if (low == high) high = low + 0.001;  // avoid a zero-width ramp
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

void run_rope(const GraphState&, const Node& n, const ExecContext& ctx) {
  const auto& attrs = std::get<RopeAttrs>(n.attrs);
  const TensorRef& x_ref = ctx.input(n, 0);
  const Shape& shape = x_ref.shape();
  if (shape.rank() != 2 && shape.rank() != 3)
    throw Error(ErrorCode::ShapeMismatch, fmt::format("{}: x must be [T, H, D] or [T, D], got {}",
                                                      node_label(n), shape.to_string()));
  const std::int64_t tokens = shape[0];
  const std::int64_t heads = shape.rank() == 3 ? shape[1] : 1;
  const std::int64_t head_dim = shape[-1];
  const std::int64_t rotary_dim = attrs.rotary_dim == 0 ? head_dim : attrs.rotary_dim;
  if (rotary_dim < 0 || rotary_dim > head_dim || rotary_dim % 2 != 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{}: rotary_dim {} must be even and at most the head dim {}",
                            node_label(n), rotary_dim, head_dim));
  const auto positions = load_i64(ctx.input(n, 1));
  if (static_cast<std::int64_t>(positions.size()) != tokens)
    throw Error(ErrorCode::ShapeMismatch, fmt::format("{}: {} positions for {} tokens",
                                                      node_label(n), positions.size(), tokens));

  const F32Input x(x_ref);
  std::vector<float> result(x.data(), x.data() + x.size());  // dims >= rotary_dim pass through
  const std::vector<double> inv_freq = inverse_frequencies(attrs, rotary_dim);
  const auto& scaling = attrs.scaling;
  const double position_divisor = scaling.type == RopeScalingType::Linear ? scaling.factor : 1.0;
  const double magnitude = scaling.type == RopeScalingType::Yarn
                               ? yarn_get_mscale(scaling.factor, scaling.mscale) /
                                     yarn_get_mscale(scaling.factor, scaling.mscale_all_dim)
                               : 1.0;
  const std::int64_t half = rotary_dim / 2;
  const bool neox = attrs.layout == RopeLayout::NeoX;

  for (std::int64_t t = 0; t < tokens; ++t) {
    const double position =
        static_cast<double>(positions[static_cast<std::size_t>(t)]) / position_divisor;
    for (std::int64_t i = 0; i < half; ++i) {
      const double angle = position * inv_freq[static_cast<std::size_t>(i)];
      const double c = std::cos(angle) * magnitude;
      const double s = std::sin(angle) * magnitude;
      // The pair rotated by frequency i: (i, i + r/2) in NeoX layout, (2i, 2i + 1) interleaved.
      const std::int64_t first = neox ? i : 2 * i;
      const std::int64_t second = neox ? i + half : 2 * i + 1;
      for (std::int64_t h = 0; h < heads; ++h) {
        const std::int64_t base = (t * heads + h) * head_dim;
        const double x0 = x[static_cast<std::size_t>(base + first)];
        const double x1 = x[static_cast<std::size_t>(base + second)];
        result[static_cast<std::size_t>(base + first)] = static_cast<float>(x0 * c - x1 * s);
        result[static_cast<std::size_t>(base + second)] = static_cast<float>(x1 * c + x0 * s);
      }
    }
  }
  store_f32(ctx.output(n, 0), result);
}

}  // namespace porta::detail::reference
