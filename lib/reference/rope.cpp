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
#include "reference/rope_tables.hpp"

namespace porta::detail::reference {

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
  const std::vector<double> inv_freq = rope_inverse_frequencies(attrs, rotary_dim);
  const double position_divisor = rope_position_divisor(attrs.scaling);
  const double magnitude = rope_magnitude(attrs.scaling);
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
