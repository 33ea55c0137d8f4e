// rope: rotary position embedding of x[T, H, D] (or [T, D]) at run-time positions, NeoX or
// interleaved pairs, plain, linear or YaRN frequencies. The per-pair frequencies (and YaRN's
// magnitude) are worked out once at compile time in double; each run computes one cos/sin per
// token and pair (in double, as the reference does) and rotates every head with them.
#include <algorithm>
#include <cmath>
#include <numbers>

#include <fmt/format.h>

#include "cpu_util.hpp"
#include "dense_ops.hpp"
#include "reference/rope_tables.hpp"
#include "widened_io.hpp"

namespace porta::detail::cpu {

namespace {

class RopeKernel final : public CpuKernel {
 public:
  RopeKernel(const GraphState& g, const Node& n) : x_(g, n.inputs[0]), y_(g, n.outputs[0]) {
    const auto& attrs = std::get<RopeAttrs>(n.attrs);
    const Shape& shape = g.input_of(n, 0).shape;
    tokens_ = shape[0];
    heads_ = shape.rank() == 3 ? shape[1] : 1;
    head_dim_ = shape[-1];
    rotary_ = attrs.rotary_dim == 0 ? head_dim_ : attrs.rotary_dim;
    neox_ = attrs.layout == RopeLayout::NeoX;
    freq_ = rope_inverse_frequencies(attrs, rotary_);
    divisor_ = rope_position_divisor(attrs.scaling);
    magnitude_ = rope_magnitude(attrs.scaling);
    positions_ = n.inputs[1];
    positions_i64_ = g.input_of(n, 1).dtype == DType::I64;
    angles_ =
        F32Scratch(static_cast<std::size_t>(std::max<std::int64_t>(1, tokens_)) * freq_.size() * 2);
  }

  void run(const ExecContext& ctx) override {
    const float* x = x_.read(ctx);
    float* y = y_.write(ctx);
    const void* pos = value_ptr(ctx, positions_);
    const std::int64_t half = rotary_ / 2;
    float* table = angles_.data();
    parallel_for(tokens_, std::max<std::int64_t>(1, 2048 / std::max<std::int64_t>(half, 1)),
                 [&](std::int64_t begin, std::int64_t end) {
                   for (std::int64_t t = begin; t < end; ++t) {
                     const std::int64_t p = positions_i64_
                                                ? static_cast<const std::int64_t*>(pos)[t]
                                                : static_cast<const std::int32_t*>(pos)[t];
                     const double position = static_cast<double>(p) / divisor_;
                     float* cs = table + t * half * 2;
                     for (std::int64_t i = 0; i < half; ++i) {
                       const double angle = position * freq_[static_cast<std::size_t>(i)];
                       cs[2 * i] = static_cast<float>(std::cos(angle) * magnitude_);
                       cs[2 * i + 1] = static_cast<float>(std::sin(angle) * magnitude_);
                     }
                     for (std::int64_t h = 0; h < heads_; ++h) {
                       const std::int64_t base = (t * heads_ + h) * head_dim_;
                       const float* in = x + base;
                       float* out = y + base;
                       for (std::int64_t i = 0; i < half; ++i) {
                         const std::int64_t a = neox_ ? i : 2 * i;
                         const std::int64_t b = neox_ ? i + half : 2 * i + 1;
                         const float c = cs[2 * i], s = cs[2 * i + 1];
                         const float x0 = in[a], x1 = in[b];
                         out[a] = x0 * c - x1 * s;
                         out[b] = x1 * c + x0 * s;
                       }
                       for (std::int64_t i = rotary_; i < head_dim_; ++i) out[i] = in[i];
                     }
                   }
                 });
    y_.finish(ctx);
  }

 private:
  F32Operand x_, y_;
  ValueId positions_ = 0;
  bool positions_i64_ = false;
  std::int64_t tokens_ = 0, heads_ = 1, head_dim_ = 0, rotary_ = 0;
  bool neox_ = true;
  std::vector<double> freq_;
  double divisor_ = 1.0, magnitude_ = 1.0;
  F32Scratch angles_;
};

}  // namespace

SupportResult supports_rope(const GraphState& g, const Node& n) {
  return require_f32_bf16({g.input_of(n, 0).dtype});
}

std::unique_ptr<CpuKernel> lower_rope(CpuEnv&, const GraphState& g, const Node& n) {
  if (g.input_of(n, 0).shape.numel() == 0) return std::make_unique<NoopKernel>();
  return std::make_unique<RopeKernel>(g, n);
}

}  // namespace porta::detail::cpu
