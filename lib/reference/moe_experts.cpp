// The reference moe_experts: literally the composition of the single ops it fuses,
//   combine(grouped(swiglu(grouped(permute(x), gate), grouped(permute(x), up)), down))
// plus the optional shared expert, swiglu(x·s_gate^T, x·s_up^T)·s_down^T, scaled per token by
// sigmoid(x·s_gate_w^T) when sigmoid-gated (Qwen2-MoE). Intermediates stay in f32; the sum is
// rounded once into x's dtype.
#include <cmath>
#include <variant>

#include <fmt/format.h>

#include <porta/error.hpp>

#include "reference/kernel_util.hpp"
#include "reference/moe_internal.hpp"

namespace porta::detail::reference {
namespace {

// a [M, K] · b[N, K]^T -> [M, N]: an nn.Linear without bias.
std::vector<float> linear(const float* a, std::int64_t m, std::int64_t k, const float* b,
                          std::int64_t n) {
  std::vector<float> out(static_cast<std::size_t>(m * n));
  matmul_nt(a, b, m, k, n, out.data());
  return out;
}

}  // namespace

std::vector<float> shared_expert(const Node& n, const ExecContext& ctx, const float* x,
                                 std::int64_t tokens, std::int64_t hidden) {
  // moe_experts or moe_experts_ep: both carry the experts' attributes.
  const auto* ep = std::get_if<ExpertParallelAttrs>(&n.attrs);
  const moe::ExpertsAttrs& attrs = ep != nullptr ? ep->experts : std::get<moe::ExpertsAttrs>(n.attrs);
  const TensorRef& gate_ref = ctx.input(n, 8);
  const std::int64_t inner = gate_ref.shape()[0];
  const F32Input gate_w(gate_ref), up_w(ctx.input(n, 9)), down_w(ctx.input(n, 10));
  const auto gate = linear(x, tokens, hidden, gate_w.data(), inner);
  const auto up = linear(x, tokens, hidden, up_w.data(), inner);
  const auto act = swiglu_values(gate, up);
  auto out = linear(act.data(), tokens, inner, down_w.data(), hidden);
  if (attrs.shared_gate == moe::SharedGate::Sigmoid) {
    const F32Input gate_vector(ctx.input(n, 11));
    const auto logit = linear(x, tokens, hidden, gate_vector.data(), 1);
    const auto h = static_cast<std::size_t>(hidden);
    for (std::size_t t = 0; t < static_cast<std::size_t>(tokens); ++t) {
      const double factor = 1.0 / (1.0 + std::exp(-static_cast<double>(logit[t])));
      for (std::size_t j = 0; j < h; ++j)
        out[t * h + j] = static_cast<float>(factor * static_cast<double>(out[t * h + j]));
    }
  }
  return out;
}

ExpertRouting load_expert_routing(const Node& n, const ExecContext& ctx) {
  const std::int64_t tokens = ctx.input(n, 0).shape()[0];
  const std::int64_t top_k = ctx.input(n, 1).shape()[1];
  const std::int64_t experts = ctx.input(n, 5).shape()[0];
  const std::string label = node_label(n);
  ExpertRouting r;
  r.offsets = load_indices(n, ctx.input(n, 2), "offsets");
  r.perm = load_indices(n, ctx.input(n, 3), "perm");
  r.inv = load_indices(n, ctx.input(n, 4), "inv");
  r.rows = static_cast<std::int64_t>(r.perm.size());
  if (static_cast<std::int64_t>(r.offsets.size()) != experts + 1 ||
      static_cast<std::int64_t>(r.inv.size()) != tokens * top_k)
    throw Error(ErrorCode::Internal,
                fmt::format("{}: offsets ({}) or inv ({}) do not fit E = {}, T*K = {}", label,
                            r.offsets.size(), r.inv.size(), experts, tokens * top_k));
  check_offsets(label, r.offsets, r.rows);
  check_perm(label, r.perm);
  check_inv(label, r.inv, r.rows);
  return r;
}

void run_moe_experts(const GraphState& g, const Node& n, const ExecContext& ctx) {
  (void)g;
  const auto& attrs = std::get<moe::ExpertsAttrs>(n.attrs);
  const TensorRef& x_ref = ctx.input(n, 0);
  const TensorRef& weights_ref = ctx.input(n, 1);
  const TensorRef& gate_ref = ctx.input(n, 5);
  const std::int64_t tokens = x_ref.shape()[0];
  const std::int64_t hidden = x_ref.shape()[1];
  const std::int64_t top_k = weights_ref.shape()[1];
  const std::int64_t experts = gate_ref.shape()[0];
  const std::int64_t inner = gate_ref.shape()[1];
  const auto [offsets, perm, inv, rows] = load_expert_routing(n, ctx);

  const F32Input x(x_ref), weights(weights_ref);
  const F32Input w_gate(gate_ref), w_up(ctx.input(n, 6)), w_down(ctx.input(n, 7));
  const auto xp = permute_rows(x.data(), tokens, hidden, perm, top_k);
  const auto gate =
      grouped_matmul_rows(xp.data(), rows, hidden, w_gate.data(), experts, inner, offsets);
  const auto up =
      grouped_matmul_rows(xp.data(), rows, hidden, w_up.data(), experts, inner, offsets);
  const auto act = swiglu_values(gate, up);
  const auto down =
      grouped_matmul_rows(act.data(), rows, inner, w_down.data(), experts, hidden, offsets);
  auto out = combine_rows(down.data(), hidden, weights.data(), inv, tokens, top_k);
  if (attrs.has_shared) {
    const auto shared = shared_expert(n, ctx, x.data(), tokens, hidden);
    for (std::size_t i = 0; i < out.size(); ++i) out[i] += shared[i];
  }
  store_f32(ctx.output(n, 0), out);
}

}  // namespace porta::detail::reference
