// The reference quantized ops: quant_matmul, quant_grouped_matmul and quant_moe_experts, each the
// reference quantized linear layer (lib/quant/quant_math.hpp, docs/quantization.md) applied to the
// right rows; quant_moe_experts is the composition permute → gate, up → swiglu → down → combine,
// as the unquantized moe_experts.
#include <algorithm>
#include <variant>

#include <fmt/format.h>

#include "quant/quant_refs.hpp"
#include "reference/kernel_util.hpp"
#include "reference/moe_internal.hpp"
#include "reference/moe_kernels.hpp"

namespace porta::detail::reference {

namespace {

const QuantAttrs& attrs_of(const Node& n) { return std::get<QuantAttrs>(n.attrs); }

QuantActivationParams act_params(const QuantAttrs& a) { return {a.act_scale, a.act_offset}; }

// out[r] = rows[r] · W[e]ᵀ for offsets[e] <= r < offsets[e+1]; other rows are 0.
std::vector<float> quant_grouped_rows(const ExecContext& ctx, const Node& n, int which,
                                      const float* rows, std::int64_t num_rows, std::int64_t k,
                                      std::int64_t out_features,
                                      std::span<const std::int64_t> offsets) {
  const auto& a = attrs_of(n);
  const QuantInputs in = quant_inputs(n, which);
  std::vector<float> out(static_cast<std::size_t>(num_rows * out_features), 0.0f);
  for (std::size_t e = 0; e + 1 < offsets.size(); ++e) {
    const std::int64_t first = offsets[e], count = offsets[e + 1] - offsets[e];
    if (count == 0) continue;
    const QuantMatrix w = quant_matrix(ctx, n, in, static_cast<std::int64_t>(e), out_features, k);
    quant_linear_reference(rows + first * k, count, w, a.activation, act_params(a),
                           out.data() + first * out_features);
  }
  return out;
}

}  // namespace

void run_quant_matmul(const GraphState& g, const Node& n, const ExecContext& ctx) {
  (void)g;
  const auto& a = attrs_of(n);
  const TensorRef& x_ref = ctx.input(n, 0);
  const std::int64_t k = x_ref.shape()[-1];
  const std::int64_t rows = k == 0 ? 0 : x_ref.shape().numel() / k;
  const std::int64_t out_features = ctx.input(n, 1).shape()[0];
  const F32Input x(x_ref);
  std::vector<float> out(static_cast<std::size_t>(rows * out_features));
  const QuantMatrix w = quant_matrix(ctx, n, quant_inputs(n), 0, out_features, k);
  quant_linear_reference(x.data(), rows, w, a.activation, act_params(a), out.data());
  store_f32(ctx.output(n, 0), out);
}

void run_quant_grouped_matmul(const GraphState& g, const Node& n, const ExecContext& ctx) {
  (void)g;
  const TensorRef& rows_ref = ctx.input(n, 0);
  const auto offsets = load_indices(n, ctx.input(n, 1), "offsets");
  check_offsets(node_label(n), offsets, rows_ref.shape()[0]);
  const F32Input rows(rows_ref);
  const auto out = quant_grouped_rows(ctx, n, 0, rows.data(), rows_ref.shape()[0],
                                      rows_ref.shape()[1], ctx.input(n, 2).shape()[1], offsets);
  store_f32(ctx.output(n, 0), out);
}

void run_quant_moe_experts(const GraphState& g, const Node& n, const ExecContext& ctx) {
  (void)g;
  const TensorRef& x_ref = ctx.input(n, 0);
  const TensorRef& weights_ref = ctx.input(n, 1);
  const std::int64_t tokens = x_ref.shape()[0];
  const std::int64_t hidden = x_ref.shape()[1];
  const std::int64_t top_k = weights_ref.shape()[1];
  const std::int64_t inner = ctx.input(n, 5).shape()[1];
  const auto [offsets, perm, inv, rows] = load_expert_routing(n, ctx);
  const F32Input x(x_ref), weights(weights_ref);
  const auto xp = permute_rows(x.data(), tokens, hidden, perm, top_k);
  const auto gate = quant_grouped_rows(ctx, n, 0, xp.data(), rows, hidden, inner, offsets);
  const auto up = quant_grouped_rows(ctx, n, 1, xp.data(), rows, hidden, inner, offsets);
  const auto act = swiglu_values(gate, up);
  const auto down = quant_grouped_rows(ctx, n, 2, act.data(), rows, inner, hidden, offsets);
  store_f32(ctx.output(n, 0),
            combine_rows(down.data(), hidden, weights.data(), inv, tokens, top_k));
}

SupportResult quant_ops_supports(const GraphState& g, const Node& n) {
  if (!std::holds_alternative<QuantAttrs>(n.attrs))
    return SupportResult::no(fmt::format("{} without QuantAttrs", node_label(n)));
  const std::size_t offsets = n.op == OpKind::QuantGroupedMatmul ? 1 : 2;
  if (n.op != OpKind::QuantMatmul)
    for (std::size_t i = offsets; i < (n.op == OpKind::QuantMoeExperts ? 5u : offsets + 1); ++i)
      if (g.input_of(n, i).dtype != DType::I32)
        return SupportResult::no(fmt::format("{}: index input {} must be i32", node_label(n), i));
  return SupportResult::yes();
}

}  // namespace porta::detail::reference
