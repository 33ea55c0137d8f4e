// npu-sim's time for the collective ops: the interconnect model of `porta plan` (lib/plan's
// alpha-beta collectives over a cluster profile's links), not a second set of link numbers.
#pragma once

#include <porta/plan.hpp>

#include "graph/graph_state.hpp"
#include "timing.hpp"

namespace porta::detail::npu_sim {

// all_to_all, all_gather, all_reduce, reduce_scatter on `p`'s cluster: the h20 profile on an H20
// node, the Ascend profiles on an Atlas 800 A2 node (8 chips, HCCS full mesh).
KernelResult time_collective(const DeviceProfile& p, const GraphState& g, const Node& n);
// One collective of `bytes` (nccl-tests' count: the send buffer, the gathered output for
// all_gather) over `ranks` ranks: what time_collective and moe_experts_ep's exchanges cost.
KernelResult time_exchange(const DeviceProfile& p, plan::Collective c, int ranks, double bytes);

}  // namespace porta::detail::npu_sim
