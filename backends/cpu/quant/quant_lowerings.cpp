// The cpu backend's quantized ops: quant_matmul, quant_grouped_matmul and quant_moe_experts on the
// row loops of quant_kernels.cpp. quant_moe_experts is the reference's composition (permute,
// gate and up, swiglu, down, combine: the same helper functions, applied to ranges of rows on
// the backend's threads) with the projections on the quantized kernels, so it differs from the
// reference only where those do.
#include <algorithm>
#include <span>
#include <variant>

#include <fmt/format.h>

#include "cpu_kernel.hpp"
#include "ggml/ggml_linear.hpp"
#include "moe/moe_cpu.hpp"
#include "quant/quant_cpu.hpp"
#include "quant/quant_refs.hpp"
#include "reference/kernel_util.hpp"
#include "reference/moe_internal.hpp"

namespace porta::detail::cpu {

namespace {

using quant::quant_linear;

bool is_activation_dtype(DType t) { return t == DType::F32 || t == DType::BF16 || t == DType::F16; }

SupportResult quant_supports(const GraphState& g, const Node& n) {
  if (!std::holds_alternative<QuantAttrs>(n.attrs))
    return SupportResult::no(fmt::format("{} without QuantAttrs", op_name(n.op)));
  const DType x = g.input_of(n, 0).dtype;
  if (!is_activation_dtype(x))
    return SupportResult::no(fmt::format("{}: activations of dtype {} (f32, bf16 or f16 only)",
                                         op_name(n.op), dtype_name(x)));
  const std::size_t first = n.op == OpKind::QuantGroupedMatmul ? 1 : 2;
  const std::size_t last = n.op == OpKind::QuantMoeExperts ? 5 : 2;  // the index inputs
  for (std::size_t i = first; i < last; ++i)
    if (g.input_of(n, i).dtype != DType::I32)
      return SupportResult::no(fmt::format("{}: index input {} must be i32", op_name(n.op), i));
  return SupportResult::yes();
}

// The activations as f32 (borrowed when they already are) and an f32 result written back once.
std::vector<float> f32_values(const TensorRef& t) {
  std::vector<float> v(static_cast<std::size_t>(t.shape().numel()));
  convert(t.host(), t.dtype(), v.data(), DType::F32, v.size());
  return v;
}

// f(begin, end) over [0, count) on the backend's threads, in chunks of about `per_chunk`.
template <class F>
void in_ranges(std::int64_t count, std::int64_t per_chunk, const F& f) {
  moe::parallel_for(count, std::max<std::int64_t>(1, per_chunk), f);
}

// The reference's permute (a row copy, or a zero row for padding), SwiGLU and combine, the
// latter two by the reference's own functions on ranges of elements and tokens, so every value
// is the reference's; only the work is split over the backend's threads.
// Each writes into a buffer the kernel keeps between runs (`reused`): a prefill's permuted rows,
// projections and activations are tens of MB per layer, and fresh vectors for them were faulted
// in and zero-filled on every run (about 7 % of a 512-token prefill).
float* reused(std::vector<float>& buffer, std::size_t floats) {
  if (buffer.size() < floats) buffer.resize(floats);
  return buffer.data();
}

void permute_parallel(const float* x, std::int64_t tokens, std::int64_t hidden,
                      std::span<const std::int64_t> perm, std::int64_t top_k, float* out) {
  in_ranges(static_cast<std::int64_t>(perm.size()), 65536 / (hidden + 1),
            [&](std::int64_t b, std::int64_t e) {
              for (std::int64_t i = b; i < e; ++i) {
                const std::int64_t a = perm[static_cast<std::size_t>(i)];
                float* dst = out + i * hidden;
                if (a < tokens * top_k)
                  std::copy_n(x + (a / top_k) * hidden, hidden, dst);
                else
                  std::fill_n(dst, hidden, 0.0f);
              }
            });
}

void swiglu_parallel(std::span<const float> gate, std::span<const float> up, float* out) {
  in_ranges(static_cast<std::int64_t>(gate.size()), 16384, [&](std::int64_t b, std::int64_t e) {
    const auto n = static_cast<std::size_t>(e - b);
    const auto part = reference::swiglu_values(gate.subspan(static_cast<std::size_t>(b), n),
                                               up.subspan(static_cast<std::size_t>(b), n));
    std::copy(part.begin(), part.end(), out + b);
  });
}

std::vector<float> combine_parallel(const float* yp, std::int64_t hidden, const float* weights,
                                    std::span<const std::int64_t> inv, std::int64_t tokens,
                                    std::int64_t top_k) {
  std::vector<float> out(static_cast<std::size_t>(tokens * hidden));
  in_ranges(tokens, 65536 / (hidden * top_k + 1), [&](std::int64_t b, std::int64_t e) {
    const auto part = reference::combine_rows(
        yp, hidden, weights + b * top_k,
        inv.subspan(static_cast<std::size_t>(b * top_k), static_cast<std::size_t>((e - b) * top_k)),
        e - b, top_k);
    std::copy(part.begin(), part.end(), out.begin() + b * hidden);
  });
  return out;
}

class QuantKernelBase : public CpuKernel {
 public:
  explicit QuantKernelBase(const Node& n)
      : node_(n),
        attrs_(std::get<QuantAttrs>(n.attrs)),
        params_{attrs_.act_scale, attrs_.act_offset} {}

 protected:
  // One projection: rows of x through matrix `expert` of weight `which`.
  void linear(const ExecContext& ctx, int which, std::int64_t expert, const float* x,
              std::int64_t rows, std::int64_t out_features, std::int64_t k, float* y) const {
    const QuantMatrix w =
        quant_matrix(ctx, node_, quant_inputs(node_, which), expert, out_features, k);
    // ggml blocks (GGUF weights kept packed) run on backends/cpu/ggml.
    if (w.scheme.format == QuantFormat::GgmlBlocks)
      return ggml::blocks_linear(x, rows, w, y, attrs_.activation);
    quant_linear(x, rows, w, attrs_.activation, params_, y);
  }
  // Ragged: block e of rows (offsets) through expert e, all experts in one parallel region, into
  // y [num_rows, out_features]; rows outside every block are set to 0.
  void grouped(const ExecContext& ctx, int which, const float* x, std::int64_t num_rows,
               std::int64_t k, std::int64_t out_features, std::span<const std::int64_t> offsets,
               float* y) const {
    // Offsets ascend (checked by the caller), so the rows outside every block are the two ends.
    const std::int64_t first = offsets.empty() ? num_rows : std::min(offsets.front(), num_rows);
    const std::int64_t last = offsets.empty() ? num_rows : std::min(offsets.back(), num_rows);
    std::fill(y, y + first * out_features, 0.0f);
    std::fill(y + last * out_features, y + num_rows * out_features, 0.0f);
    std::vector<quant::QuantBlock> blocks;
    const QuantInputs in = quant_inputs(node_, which);
    for (std::size_t e = 0; e + 1 < offsets.size(); ++e)
      if (offsets[e + 1] > offsets[e])
        blocks.push_back(
            {quant_matrix(ctx, node_, in, static_cast<std::int64_t>(e), out_features, k),
             offsets[e], offsets[e + 1] - offsets[e]});
    if (attrs_.scheme.format == QuantFormat::GgmlBlocks)  // read in place by the block kernels
      ggml::blocks_linear_experts(x, k, blocks, out_features, y, attrs_.activation);
    else
      quant::quant_linear_blocks(x, k, blocks, out_features, attrs_.activation, params_, y);
  }
  static void store(const TensorRef& out, std::span<const float> values) {
    convert(values.data(), DType::F32, out.host(), out.dtype(), values.size());
  }

  Node node_;
  QuantAttrs attrs_;
  QuantActivationParams params_;
};

class QuantMatmulKernel final : public QuantKernelBase {
 public:
  using QuantKernelBase::QuantKernelBase;
  void run(const ExecContext& ctx) override {
    const TensorRef& x = ctx.input(node_, 0);
    const std::int64_t k = x.shape()[-1];
    const std::int64_t rows = k == 0 ? 0 : x.shape().numel() / k;
    const std::int64_t out_features = ctx.input(node_, 1).shape()[0];
    const TensorRef& out = ctx.output(node_, 0);
    std::vector<float> widened;
    const float* xf = x.host_as<const float>();
    if (x.dtype() != DType::F32) {
      widened = f32_values(x);
      xf = widened.data();
    }
    if (out.dtype() == DType::F32) {
      linear(ctx, 0, 0, xf, rows, out_features, k, out.host_as<float>());
      return;
    }
    std::vector<float> y(static_cast<std::size_t>(rows * out_features));
    linear(ctx, 0, 0, xf, rows, out_features, k, y.data());
    store(out, y);
  }
};

class QuantGroupedKernel final : public QuantKernelBase {
 public:
  using QuantKernelBase::QuantKernelBase;
  void run(const ExecContext& ctx) override {
    const TensorRef& rows = ctx.input(node_, 0);
    const auto offsets = reference::load_indices(node_, ctx.input(node_, 1), "offsets");
    reference::check_offsets(reference::node_label(node_), offsets, rows.shape()[0]);
    const auto x = f32_values(rows);
    const std::int64_t n = rows.shape()[0], out_features = ctx.input(node_, 2).shape()[1];
    const auto count = static_cast<std::size_t>(n * out_features);
    float* y = reused(y_, count);
    grouped(ctx, 0, x.data(), n, rows.shape()[1], out_features, offsets, y);
    store(ctx.output(node_, 0), {y, count});
  }

 private:
  std::vector<float> y_;
};

class QuantExpertsKernel final : public QuantKernelBase {
 public:
  using QuantKernelBase::QuantKernelBase;
  void run(const ExecContext& ctx) override {
    const TensorRef& x_ref = ctx.input(node_, 0);
    const TensorRef& weights_ref = ctx.input(node_, 1);
    const std::int64_t tokens = x_ref.shape()[0], hidden = x_ref.shape()[1];
    const std::int64_t top_k = weights_ref.shape()[1];
    const std::int64_t inner = ctx.input(node_, 5).shape()[1];
    const auto [offsets, perm, inv, rows] = reference::load_expert_routing(node_, ctx);
    const auto x = f32_values(x_ref);
    const auto weights = f32_values(weights_ref);
    const auto wide = static_cast<std::size_t>(rows * hidden);
    const auto narrow = static_cast<std::size_t>(rows * inner);
    float* xp = reused(xp_, wide);
    permute_parallel(x.data(), tokens, hidden, perm, top_k, xp);
    float* gate = reused(gate_, narrow);
    float* up = reused(up_, narrow);
    grouped(ctx, 0, xp, rows, hidden, inner, offsets, gate);
    grouped(ctx, 1, xp, rows, hidden, inner, offsets, up);
    float* act = reused(act_, narrow);
    swiglu_parallel({gate, narrow}, {up, narrow}, act);
    float* down = reused(down_, wide);
    grouped(ctx, 2, act, rows, inner, hidden, offsets, down);
    store(ctx.output(node_, 0), combine_parallel(down, hidden, weights.data(), inv, tokens, top_k));
  }

 private:
  // Kept between runs (see reused()).
  std::vector<float> xp_, gate_, up_, act_, down_;
};

template <class K>
std::unique_ptr<CpuKernel> lower(CpuEnv&, const GraphState&, const Node& n) {
  return std::make_unique<K>(n);
}

}  // namespace

std::span<const OpLowering> quant_lowerings() {
  static const OpLowering table[] = {
      {OpKind::QuantMatmul, quant_supports, lower<QuantMatmulKernel>},
      {OpKind::QuantGroupedMatmul, quant_supports, lower<QuantGroupedKernel>},
      {OpKind::QuantMoeExperts, quant_supports, lower<QuantExpertsKernel>},
  };
  return table;
}

}  // namespace porta::detail::cpu
