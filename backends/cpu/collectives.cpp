// The cpu backend's collective ops. The data is already in host memory, where MPI reads and
// writes it, so each kernel is the host implementation the reference backend runs (there is no
// oneDNN primitive for an exchange between processes). moe_experts_ep runs the same exchange
// around the cpu's own expert kernels (moe_ep.cpp).
#include "cpu_kernel.hpp"

#include <fmt/format.h>

#include "reference/kernels.hpp"

namespace porta::detail::cpu {

namespace {

using HostKernel = void (*)(const GraphState&, const Node&, const ExecContext&);

class CollectiveKernel final : public CpuKernel {
 public:
  CollectiveKernel(const GraphState& g, const Node& n, HostKernel run) : g_(g), n_(n), run_(run) {}
  void run(const ExecContext& ctx) override { run_(g_, n_, ctx); }

 private:
  const GraphState& g_;
  Node n_;
  HostKernel run_;
};

SupportResult float_only(const GraphState& g, const Node& n) {
  if (is_floating(g.input_of(n, 0).dtype)) return SupportResult::yes();
  return SupportResult::no(fmt::format("{} sums floating-point tensors, not {}", op_name(n.op),
                                       dtype_name(g.input_of(n, 0).dtype)));
}
SupportResult any_dtype(const GraphState&, const Node&) { return SupportResult::yes(); }

template <HostKernel Run>
std::unique_ptr<CpuKernel> lower_collective(CpuEnv&, const GraphState& g, const Node& n) {
  return std::make_unique<CollectiveKernel>(g, n, Run);
}

}  // namespace

std::span<const OpLowering> collective_lowerings() {
  static const OpLowering table[] = {
      {OpKind::AllToAll, any_dtype, lower_collective<reference::run_all_to_all>},
      {OpKind::AllGather, any_dtype, lower_collective<reference::run_all_gather>},
      {OpKind::AllReduce, float_only, lower_collective<reference::run_all_reduce>},
      {OpKind::ReduceScatter, float_only, lower_collective<reference::run_reduce_scatter>},
      {OpKind::MoeExpertsEp, experts_ep_supports, lower_experts_ep},
  };
  return table;
}

}  // namespace porta::detail::cpu
