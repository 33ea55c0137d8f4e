// npu-sim's time for one rank's moe_experts_ep: its local experts' kernels (those of a
// moe_experts over its share of the tokens and its slots) plus the exchanges, checked against
// the alpha-beta figures of the interconnect by hand.
#include <catch2/catch.hpp>

#include <porta/npu_sim.hpp>
#include <porta/porta.hpp>

namespace npu_sim_ep_timing_tests {

using porta::DType;
namespace sim = porta::npu_sim;

namespace {

constexpr std::int64_t kT = 64, kH = 256, kI = 128, kE = 8, kK = 2;

// moe_experts over `tokens` tokens, `experts` experts and `rows` permuted rows (balanced by
// simulate(): rows / experts each), or rank 0's moe_experts_ep of `placement` when given.
porta::Graph experts_graph(std::int64_t tokens, std::int64_t experts, std::int64_t rows,
                           const porta::ep::ExpertPlacement* placement) {
  porta::Graph g;
  std::vector<porta::Value> in{
      g.input("x", {tokens, kH}, DType::BF16), g.input("w", {tokens, kK}, DType::F32),
      g.input("offsets", {(placement ? placement->num_experts : experts) + 1}, DType::I32),
      g.input("perm", {rows}, DType::I32), g.input("inv", {tokens * kK}, DType::I32),
      g.input("gate", {experts, kI, kH}, DType::BF16), g.input("up", {experts, kI, kH}, DType::BF16),
      g.input("down", {experts, kH, kI}, DType::BF16)};
  porta::Value y;
  if (placement == nullptr)
    y = g.add_op(porta::OpKind::MoeExperts, in, porta::moe::ExpertsAttrs{})[0];
  else
    y = g.add_op(porta::OpKind::MoeExpertsEp, in,
                 porta::ExpertParallelAttrs{{}, 0, *placement})[0];
  g.output("y", y);
  return g;
}

}  // namespace

TEST_CASE("npu-sim times moe_experts_ep as its local experts plus three exchanges",
          "[npu-sim][comm]") {
  const auto p = sim::load_profile("910b2");
  // Two ranks, experts 0-3 on rank 0: rank 0 dispatches tokens [0, 32) (64 rows) and its four
  // experts receive T·K / E = 16 rows each, which is what moe_experts over 32 tokens, 4 experts
  // and 64 rows computes with simulate()'s balanced rows.
  const auto placement = porta::ep::contiguous_placement(kE, 2);
  const auto ep = sim::simulate(experts_graph(kT, 4, kT * kK, &placement), p).report.ops.at(0);
  const auto local = sim::simulate(experts_graph(kT / 2, 4, kT / 2 * kK, nullptr), p).report.ops.at(0);
  // Atlas 800 A2's HCCS (lib/plan/data/clusters/atlas800-a2.json): 5 us per step, 28 GB/s per
  // link at 66 % efficiency; two ranks exchange half of each buffer over one link.
  const auto exchange_us = [](double bytes) { return 5.0 + bytes / 2 / (28e3 * 0.66); };
  const double rows_bytes = kT / 2 * kK * kH * 2.0;  // rank 0's 64 routed rows, bf16
  const double output_bytes = kT * kH * 2.0;         // the gathered [T, H]
  const double expected = local.time_us + 2 * exchange_us(rows_bytes) + exchange_us(output_bytes) +
                          3 * p.launch_overhead_us;
  INFO(ep.tiling);
  CHECK(ep.time_us == Approx(expected).epsilon(1e-9));
  CHECK(ep.flops == Approx(local.flops).epsilon(1e-12));
  // More ranks: the same experts' share of the rows shrinks, the exchanges stay.
  const auto four = porta::ep::contiguous_placement(kE, 4);
  const auto ep4 = sim::simulate(experts_graph(kT, 2, kT * kK, &four), p).report.ops.at(0);
  CHECK(ep4.flops == Approx(local.flops / 2).epsilon(1e-12));
}

}  // namespace npu_sim_ep_timing_tests
