// The collective models against their closed forms, and the HCCL 2 × 910B calibration points the
// HCCS efficiency was fitted to.
#include <catch2/catch.hpp>

#include <porta/error.hpp>
#include <porta/plan.hpp>

namespace plan_collectives_tests {

using namespace porta::plan;

namespace {

LinkSpec link(double gbps, double latency_us, double efficiency = 1.0) {
  LinkSpec l;
  l.name = "test";
  l.gbps = gbps;
  l.latency_us = latency_us;
  l.efficiency = efficiency;
  return l;
}

CollectiveLinks one_level(double gbps, double latency_us) {
  CollectiveLinks links;
  links.intra = link(gbps, latency_us);
  links.group = 1 << 20;
  return links;
}

}  // namespace

TEST_CASE("ring collectives follow the alpha-beta closed forms", "[plan][collective]") {
  const double S = 1e9, bw = 100, alpha = 2;  // bytes, GB/s, µs
  const CollectiveLinks links = one_level(bw, alpha);
  for (int n : {2, 4, 8, 16}) {
    const double us_per_byte = 1.0 / (bw * 1e3);
    const auto ar = collective_cost(Collective::AllReduce, Algorithm::Ring, n, S, links);
    CHECK(ar.time_us == Approx(2.0 * (n - 1) / n * S * us_per_byte + 2.0 * (n - 1) * alpha));
    const auto ag = collective_cost(Collective::AllGather, Algorithm::Ring, n, S, links);
    CHECK(ag.time_us == Approx(1.0 * (n - 1) / n * S * us_per_byte + (n - 1) * alpha));
    const auto rs = collective_cost(Collective::ReduceScatter, Algorithm::Ring, n, S, links);
    CHECK(rs.time_us == Approx(ag.time_us));
    // All-to-all on a one-way ring: a chunk for the rank d ahead crosses d links.
    const auto a2a = collective_cost(Collective::AllToAll, Algorithm::Ring, n, S, links);
    double hops = 0;
    for (int d = 1; d < n; ++d) hops += d;
    CHECK(a2a.bandwidth_us == Approx(S / n * hops / (bw * 1e3)));  // n sources over n links
    CHECK(a2a.latency_us == Approx((n - 1) * alpha));
  }
  // One rank or nothing to move costs nothing.
  CHECK(collective_cost(Collective::AllReduce, Algorithm::Ring, 1, S, links).time_us == 0);
  CHECK(collective_cost(Collective::AllToAll, Algorithm::FullMesh, 8, 0, links).time_us == 0);
}

TEST_CASE("full mesh is limited by a peer link and by the chip's total", "[plan][collective]") {
  // 8 chips, 7 links of 10 GB/s each, 70 GB/s per chip: one peer's share per link.
  CollectiveLinks mesh;
  mesh.intra = link(10, 1);
  mesh.intra_chip_gbps = 70;
  mesh.group = 8;
  const double S = 8e8;
  const auto ag = collective_cost(Collective::AllGather, Algorithm::FullMesh, 8, S, mesh);
  CHECK(ag.bandwidth_us == Approx(S / 8 / (10 * 1e3)));
  CHECK(ag.latency_us == Approx(1));
  CHECK(ag.link_bytes == Approx(S / 8));
  const auto ar = collective_cost(Collective::AllReduce, Algorithm::FullMesh, 8, S, mesh);
  CHECK(ar.time_us == Approx(2 * ag.time_us));
  // A switch port of 50 GB/s shared by all peers: the total is the limit.
  CollectiveLinks sw;
  sw.intra = link(50, 1);
  sw.group = 8;
  const auto a2a = collective_cost(Collective::AllToAll, Algorithm::FullMesh, 8, S, sw);
  CHECK(a2a.bandwidth_us == Approx(S * 7 / 8 / (50 * 1e3)));
}

TEST_CASE("hierarchical collectives compose the intra-group and inter-group terms", "[plan][collective]") {
  CollectiveLinks h;
  h.intra = link(200, 3);
  h.inter = link(50, 5);
  h.group = 8;
  const double S = 6.4e8;
  const int n = 32;  // 4 groups of 8
  // all_to_all: 3/4 of the buffer leaves the node at 50 GB/s, the rest moves at 200 GB/s at once.
  const auto a2a = collective_cost(Collective::AllToAll, Algorithm::Hierarchical, n, S, h);
  CHECK(a2a.bandwidth_us == Approx(S * 24 / 32 / (50 * 1e3)));
  CHECK(a2a.latency_us == Approx(5));
  // all_reduce: reduce-scatter in the node, ring all_reduce of S/8 over 4 nodes, all-gather.
  const auto ar = collective_cost(Collective::AllReduce, Algorithm::Hierarchical, n, S, h);
  const double intra = S * 7 / 8 / (200 * 1e3) + 3;  // a switch: the port carries 7/8 of S
  const double inter = 2.0 * 3 / 4 * (S / 8) / (50 * 1e3) + 2 * 3 * 5;
  CHECK(ar.time_us == Approx(2 * intra + inter));
  CHECK_THROWS_AS(collective_cost(Collective::AllReduce, Algorithm::Hierarchical, 12, S, h),
                  porta::Error);
  CHECK_THROWS_AS(collective_cost(Collective::AllReduce, Algorithm::Ring, 0, S, h), porta::Error);
}

TEST_CASE("HCCL 2 x 910B algorithm bandwidths are reproduced (the calibration points)", "[plan][collective]") {
  // HCCL's published alg_bandwidth between two 910Bs: all_gather 38 GB/s, all_reduce 18 GB/s, at
  // large messages. The HCCS link efficiency in atlas800-a2 was fitted to these two.
  const ClusterProfile c = load_cluster("atlas800-a2");
  const CollectiveLinks links = cluster_links(c, 2);
  const double S = 1e9;
  const auto ag = collective_cost(Collective::AllGather, Algorithm::FullMesh, 2, S, links);
  const auto ar = collective_cost(Collective::AllReduce, Algorithm::FullMesh, 2, S, links);
  const double ag_gbps = S / (ag.time_us * 1e3), ar_gbps = S / (ar.time_us * 1e3);
  CHECK(ag_gbps == Approx(38).epsilon(0.05));
  CHECK(ar_gbps == Approx(18).epsilon(0.05));
  // Ring and full mesh agree on two ranks.
  const auto ag_ring = collective_cost(Collective::AllGather, Algorithm::Ring, 2, S, links);
  CHECK(ag_ring.bandwidth_us == Approx(ag.bandwidth_us));
}

TEST_CASE("DeepEP's low-latency all_to_all on H800 is within the documented error (held out)", "[plan][collective]") {
  // DeepEP README: 128 tokens per rank, hidden 7168, top-8, fp8 dispatch (a scale per 128) and
  // bf16 combine, one 400 Gb/s NIC per H800. Not fitted: the model is 17-32 % fast because the
  // kernels reach ~40 of the NIC's 50 GB/s; docs/deployment-sim.md tabulates these.
  const ClusterProfile h800 = load_cluster("h800-node");
  const double elements = 128.0 * 8 * 7168;
  const int ranks[] = {16, 32, 64, 128, 256};
  const double dispatch_us[] = {118, 155, 173, 192, 194};
  const double combine_us[] = {195, 273, 314, 369, 360};
  for (int i = 0; i < 5; ++i) {
    const CollectiveLinks links = cluster_links(h800, ranks[i]);
    const double d = collective_cost(Collective::AllToAll, Algorithm::Hierarchical, ranks[i],
                                     elements * (1 + 4.0 / 128), links).time_us;
    const double c = collective_cost(Collective::AllToAll, Algorithm::Hierarchical, ranks[i],
                                     elements * 2, links).time_us;
    INFO("EP" << ranks[i] << ": dispatch " << d << " us, combine " << c << " us");
    CHECK(d / dispatch_us[i] > 0.65);
    CHECK(d / dispatch_us[i] < 0.85);
    CHECK(c / combine_us[i] > 0.65);
    CHECK(c / combine_us[i] < 0.85);
  }
}

}  // namespace plan_collectives_tests
