// Latency-bandwidth (alpha-beta) models of the four collectives on three algorithms. `bytes` is
// the buffer nccl-tests and HCCL's alg_bandwidth divide by the time (see plan.hpp), so a model's
// algorithm bandwidth is directly comparable with their published tables.
//
//   ring       n-1 steps per pass; every step moves bytes/n over one link
//   full mesh  one step: a rank talks to all peers at once, limited by a peer link and by the
//              chip's total scale-up bandwidth
//   hierarchical  the full-mesh pattern inside groups (a node or supernode), a ring between the
//              groups on the scale-out network, composed as NCCL/HCCL's two-level algorithms do
#include <algorithm>

#include <fmt/format.h>

#include <porta/error.hpp>
#include <porta/plan.hpp>

namespace porta::plan {

std::string_view collective_name(Collective c) noexcept {
  switch (c) {
    case Collective::AllToAll: return "all_to_all";
    case Collective::AllGather: return "all_gather";
    case Collective::AllReduce: return "all_reduce";
    case Collective::ReduceScatter: return "reduce_scatter";
  }
  return "?";
}

std::string_view algorithm_name(Algorithm a) noexcept {
  switch (a) {
    case Algorithm::Ring: return "ring";
    case Algorithm::FullMesh: return "full_mesh";
    case Algorithm::Hierarchical: return "hierarchical";
  }
  return "?";
}

namespace {

// µs to move `bytes` at `gbps` GB/s.
double transfer_us(double bytes, double gbps) { return bytes / (gbps * 1e3); }

CollectiveCost ring(Collective c, int n, double bytes, const LinkSpec& link) {
  CollectiveCost cost;
  const double steps = n - 1;
  double per_link = 0;  // bytes one link carries in one direction
  switch (c) {
    case Collective::AllGather:
    case Collective::ReduceScatter: per_link = bytes * steps / n; break;
    case Collective::AllReduce: per_link = 2 * bytes * steps / n; break;
    // A chunk for the rank d hops ahead crosses d links: bytes/n · Σd over n links.
    case Collective::AllToAll: per_link = bytes * steps / 2; break;
  }
  const double rounds = c == Collective::AllReduce ? 2 * steps : steps;
  cost.bandwidth_us = transfer_us(per_link, link.effective_gbps());
  cost.latency_us = rounds * link.latency_us;
  cost.link_bytes = per_link;
  cost.time_us = cost.bandwidth_us + cost.latency_us;
  return cost;
}

// One direct exchange: each rank sends `to_each` bytes to each of n-1 peers at once.
CollectiveCost direct(int n, double to_each, const LinkSpec& link, double chip_gbps) {
  CollectiveCost cost;
  const double eff = link.efficiency;
  const double total = to_each * (n - 1);
  cost.bandwidth_us = std::max(transfer_us(to_each, link.gbps * eff),
                               transfer_us(total, chip_gbps * eff));
  cost.latency_us = link.latency_us;
  // Through a switch the port carries everything; in a mesh each link carries one peer's share.
  cost.link_bytes = chip_gbps > link.gbps * 1.0000001 ? to_each : total;
  cost.time_us = cost.bandwidth_us + cost.latency_us;
  return cost;
}

CollectiveCost full_mesh(Collective c, int n, double bytes, const CollectiveLinks& links) {
  const double chip = links.intra_chip_gbps > 0 ? links.intra_chip_gbps : links.intra.gbps;
  CollectiveCost one = direct(n, bytes / n, links.intra, chip);
  if (c == Collective::AllReduce) {  // reduce_scatter then all_gather
    one.bandwidth_us *= 2;
    one.latency_us *= 2;
    one.link_bytes *= 2;
    one.time_us *= 2;
  }
  return one;
}

CollectiveCost add(CollectiveCost a, const CollectiveCost& b) {
  a.time_us += b.time_us;
  a.bandwidth_us += b.bandwidth_us;
  a.latency_us += b.latency_us;
  a.link_bytes = std::max(a.link_bytes, b.link_bytes);
  return a;
}

CollectiveCost hierarchical(Collective c, int n, double bytes, const CollectiveLinks& links) {
  const int g = links.group;
  const int groups = n / g;
  CollectiveLinks inside = links;
  if (groups == 1) return full_mesh(c, n, bytes, inside);
  switch (c) {
    case Collective::AllToAll: {
      // Intra-group and inter-group parts run at once on their own links.
      CollectiveCost intra = g > 1 ? direct(g, bytes / n, links.intra,
                                            links.intra_chip_gbps > 0 ? links.intra_chip_gbps
                                                                      : links.intra.gbps)
                                   : CollectiveCost{};
      CollectiveCost cost;
      const double out = bytes * (n - g) / n;
      const double inter_us = transfer_us(out, links.inter.effective_gbps());
      cost.bandwidth_us = std::max(intra.bandwidth_us, inter_us);
      cost.latency_us = std::max(intra.latency_us, links.inter.latency_us);
      cost.link_bytes = std::max(intra.link_bytes, out);
      cost.time_us = cost.bandwidth_us + cost.latency_us;
      return cost;
    }
    case Collective::AllGather: {
      // Gather the groups' shards between groups, then the whole buffer inside each group.
      CollectiveCost inter = ring(Collective::AllGather, groups, bytes / g, links.inter);
      return add(inter, g > 1 ? full_mesh(Collective::AllGather, g, bytes, inside)
                              : CollectiveCost{});
    }
    case Collective::ReduceScatter: {
      CollectiveCost intra = g > 1 ? full_mesh(Collective::ReduceScatter, g, bytes, inside)
                                   : CollectiveCost{};
      return add(intra, ring(Collective::ReduceScatter, groups, bytes / g, links.inter));
    }
    case Collective::AllReduce: {
      CollectiveCost cost = g > 1 ? full_mesh(Collective::ReduceScatter, g, bytes, inside)
                                  : CollectiveCost{};
      cost = add(cost, ring(Collective::AllReduce, groups, bytes / g, links.inter));
      return add(cost, g > 1 ? full_mesh(Collective::AllGather, g, bytes, inside)
                             : CollectiveCost{});
    }
  }
  return {};
}

}  // namespace

CollectiveCost collective_cost(Collective c, Algorithm a, int ranks, double bytes,
                               const CollectiveLinks& links) {
  if (ranks < 1)
    throw Error(ErrorCode::InvalidArgument, fmt::format("collective over {} ranks", ranks));
  if (!(bytes >= 0))
    throw Error(ErrorCode::InvalidArgument, fmt::format("collective of {} bytes", bytes));
  if (ranks == 1 || bytes == 0) return {};
  switch (a) {
    case Algorithm::Ring: return ring(c, ranks, bytes, links.intra);
    case Algorithm::FullMesh: return full_mesh(c, ranks, bytes, links);
    case Algorithm::Hierarchical:
      if (links.group < 1 || ranks % links.group != 0)
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("hierarchical {} over {} ranks needs groups dividing them, not {}",
                                collective_name(c), ranks, links.group));
      return hierarchical(c, ranks, bytes, links);
  }
  return {};
}

CollectiveLinks cluster_links(const ClusterProfile& cluster, int ranks) {
  CollectiveLinks links;
  links.group = std::min(ranks, cluster.scale_up_domain);
  // A group must tile the ranks; a partial last group talks over the network as a whole group.
  while (links.group > 1 && ranks % links.group != 0) --links.group;
  links.intra = cluster.scale_up;
  links.intra_chip_gbps = cluster.scale_up_chip_gbps(links.group - 1);
  links.inter = cluster.scale_out;
  return links;
}

}  // namespace porta::plan
