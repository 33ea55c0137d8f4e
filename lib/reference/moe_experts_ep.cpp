// The reference moe_experts_ep: moe_experts with the routed experts spread over ranks. Each rank
// dispatches its share of the tokens through the expert-parallel exchange (comm/
// expert_dispatch), its slots run the reference's own grouped GEMM and SwiGLU on the rows they
// receive, the results are combined per token in ascending k exactly as moe_experts combines
// them, and the ranks' token rows are gathered. Every per-row step is the single-process
// kernel's, row for row, so the output is bit-identical to moe_experts in one process.
#include <variant>

#include <fmt/format.h>

#include <porta/error.hpp>

#include "comm/expert_dispatch.hpp"
#include "reference/collective_util.hpp"
#include "reference/kernel_util.hpp"
#include "reference/moe_internal.hpp"

namespace porta::detail::reference {

void run_moe_experts_ep(const GraphState&, const Node& n, const ExecContext& ctx) {
  const auto& attrs = std::get<ExpertParallelAttrs>(n.attrs);
  Communicator& comm = communicator_for(n, ctx, attrs.placement.ranks());
  if (comm.rank() != attrs.rank)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{}: built for rank {} but runs on rank {}", node_label(n), attrs.rank,
                            comm.rank()));
  const TensorRef& x_ref = ctx.input(n, 0);
  const TensorRef& gate_ref = ctx.input(n, 5);
  const std::int64_t tokens = x_ref.shape()[0];
  const std::int64_t hidden = x_ref.shape()[1];
  const std::int64_t top_k = ctx.input(n, 1).shape()[1];
  const std::int64_t slots = gate_ref.shape()[0];
  const std::int64_t inner = gate_ref.shape()[1];
  const std::string label = node_label(n);
  const auto offsets = load_indices(n, ctx.input(n, 2), "offsets");
  const auto perm = load_indices(n, ctx.input(n, 3), "perm");
  const auto inv = load_indices(n, ctx.input(n, 4), "inv");
  const auto rows = static_cast<std::int64_t>(perm.size());
  // Identical on every rank (the same routing), so a failure here is every rank's.
  check_offsets(label, offsets, rows);
  check_perm(label, perm);
  check_inv(label, inv, rows);

  const F32Input x(x_ref), weights(ctx.input(n, 1));
  const F32Input w_gate(gate_ref), w_up(ctx.input(n, 6)), w_down(ctx.input(n, 7));
  const ep::LocalExperts local = [&](const float* in, std::int64_t count,
                                     std::span<const std::int64_t> slot_offsets, float* out) {
    const auto gate =
        grouped_matmul_rows(in, count, hidden, w_gate.data(), slots, inner, slot_offsets);
    const auto up = grouped_matmul_rows(in, count, hidden, w_up.data(), slots, inner, slot_offsets);
    const auto act = swiglu_values(gate, up);
    const auto down =
        grouped_matmul_rows(act.data(), count, inner, w_down.data(), slots, hidden, slot_offsets);
    std::copy(down.begin(), down.end(), out);
  };
  const ep::DispatchInput in{&attrs.placement, offsets, perm, tokens, top_k, hidden, x.data()};
  const auto yp = ep::dispatch_to_experts(comm, in, local);

  const auto mine = ep::token_range(tokens, comm.size(), comm.rank());
  const auto first = static_cast<std::size_t>(mine.first);
  const auto k = static_cast<std::size_t>(top_k);
  const auto h = static_cast<std::size_t>(hidden);
  auto part = combine_rows(yp.data(), hidden, weights.data() + first * k,
                           std::span<const std::int64_t>(inv).subspan(first * k, mine.size() * k),
                           mine.size(), top_k);
  if (attrs.experts.has_shared) {
    const auto shared = shared_expert(n, ctx, x.data() + first * h, mine.size(), hidden);
    for (std::size_t i = 0; i < part.size(); ++i) part[i] += shared[i];
  }
  std::vector<std::int64_t> bytes(static_cast<std::size_t>(comm.size()));
  for (int r = 0; r < comm.size(); ++r)
    bytes[static_cast<std::size_t>(r)] =
        ep::token_range(tokens, comm.size(), r).size() * hidden *
        static_cast<std::int64_t>(sizeof(float));
  std::vector<float> out(static_cast<std::size_t>(tokens) * h);
  comm.all_gather(part.data(), static_cast<std::int64_t>(part.size() * sizeof(float)), out.data(),
                  bytes);
  store_f32(ctx.output(n, 0), out);
}

}  // namespace porta::detail::reference
