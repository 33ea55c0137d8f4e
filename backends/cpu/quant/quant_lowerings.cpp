// The cpu backend's quantized ops: quant_matmul, quant_grouped_matmul and quant_moe_experts on the
// row loops of quant_kernels.cpp. quant_moe_experts is the reference's composition (permute,
// gate and up, swiglu, down, combine: the same helper functions) with the projections on the
// quantized kernels, so it differs from the reference only where those do.
#include <variant>

#include <fmt/format.h>

#include "cpu_kernel.hpp"
#include "ggml/ggml_linear.hpp"
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
    if (w.scheme.format == QuantFormat::GgmlBlocks) return ggml::blocks_linear(x, rows, w, y);
    quant_linear(x, rows, w, attrs_.activation, params_, y);
  }
  // Ragged: block e of rows (offsets) through expert e, all experts in one parallel region;
  // rows outside every block are 0.
  std::vector<float> grouped(const ExecContext& ctx, int which, const float* x,
                             std::int64_t num_rows, std::int64_t k, std::int64_t out_features,
                             std::span<const std::int64_t> offsets) const {
    std::vector<float> y(static_cast<std::size_t>(num_rows * out_features), 0.0f);
    std::vector<quant::QuantBlock> blocks;
    const QuantInputs in = quant_inputs(node_, which);
    for (std::size_t e = 0; e + 1 < offsets.size(); ++e)
      if (offsets[e + 1] > offsets[e])
        blocks.push_back(
            {quant_matrix(ctx, node_, in, static_cast<std::int64_t>(e), out_features, k),
             offsets[e], offsets[e + 1] - offsets[e]});
    if (attrs_.scheme.format == QuantFormat::GgmlBlocks)  // read in place by the block kernels
      ggml::blocks_linear_experts(x, k, blocks, out_features, y.data());
    else
      quant::quant_linear_blocks(x, k, blocks, out_features, attrs_.activation, params_, y.data());
    return y;
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
    store(ctx.output(node_, 0), grouped(ctx, 0, x.data(), rows.shape()[0], rows.shape()[1],
                                        ctx.input(node_, 2).shape()[1], offsets));
  }
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
    const auto xp = reference::permute_rows(x.data(), tokens, hidden, perm, top_k);
    const auto gate = grouped(ctx, 0, xp.data(), rows, hidden, inner, offsets);
    const auto up = grouped(ctx, 1, xp.data(), rows, hidden, inner, offsets);
    const auto act = reference::swiglu_values(gate, up);
    const auto down = grouped(ctx, 2, act.data(), rows, inner, hidden, offsets);
    store(ctx.output(node_, 0),
          reference::combine_rows(down.data(), hidden, weights.data(), inv, tokens, top_k));
  }
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
