// The collectives' modelled time on npu-sim: full-mesh inside a node, hierarchical past it, with
// the cluster profile's link bandwidth, efficiency and per-step latency.
#include "collective_timing.hpp"

#include <variant>

#include <fmt/format.h>

#include <porta/plan.hpp>

#include "graph/catalogue.hpp"

namespace porta::detail::npu_sim {

KernelResult time_exchange(const DeviceProfile& p, plan::Collective c, int ranks, double bytes) {
  KernelResult r;
  r.kernel = "interconnect";
  if (ranks <= 1) {
    r.tiling = "1 rank: a local copy";
    return r;
  }
  const auto cluster = plan::load_cluster(p.name == "h20" ? "h20-node" : "atlas800-a2");
  const auto links = plan::cluster_links(cluster, ranks);
  const auto algorithm =
      ranks <= cluster.chips_per_node ? plan::Algorithm::FullMesh : plan::Algorithm::Hierarchical;
  const auto cost = plan::collective_cost(c, algorithm, ranks, bytes, links);
  r.time_us = cost.time_us;
  r.cycles = cost.time_us * p.clock_hz() * 1e-6;
  r.tiling = fmt::format("{} of {:.0f} bytes over {} ranks of {} ({}): {:.1f} us latency + {:.1f} "
                         "us bandwidth",
                         plan::collective_name(c), bytes, ranks, cluster.name,
                         plan::algorithm_name(algorithm), cost.latency_us, cost.bandwidth_us);
  return r;
}

KernelResult time_collective(const DeviceProfile& p, const GraphState& g, const Node& n) {
  const auto& attrs = std::get<CollectiveAttrs>(n.attrs);
  const ValueInfo& x = g.input_of(n, 0);
  const ValueInfo& out = g.output_of(n, 0);
  const auto bytes_of = [](const ValueInfo& v) {
    return static_cast<double>(v.shape.numel()) * static_cast<double>(dtype_size(v.dtype));
  };
  // `bytes` as nccl-tests count them (plan.hpp): the send buffer, the gathered output for
  // all_gather.
  plan::Collective c = plan::Collective::AllToAll;
  double bytes = bytes_of(x);
  if (n.op == OpKind::AllGather) {
    c = plan::Collective::AllGather;
    bytes = bytes_of(out);
  } else if (n.op == OpKind::AllReduce) {
    c = plan::Collective::AllReduce;
  } else if (n.op == OpKind::ReduceScatter) {
    c = plan::Collective::ReduceScatter;
  }
  return time_exchange(p, c, static_cast<int>(attrs.ranks), bytes);
}

}  // namespace porta::detail::npu_sim
