// The calibration anchor: DeepSeek's published H800 inference system (open-infra-index, day 6):
// prefill EP32 (4 nodes), decode EP144 (18 nodes), FP8; 73.7 k input tokens/s per node in prefill
// (cache hits included; 56.3 % of input tokens hit the cache), 14.8 k output tokens/s per node in
// decode at 20-22 tokens/s per user, average KV length 4,989 tokens. ±25 % is the acceptance band.
#include <catch2/catch.hpp>

#include <porta/plan.hpp>

namespace plan_anchor_tests {

using namespace porta::plan;

TEST_CASE("DeepSeek's H800 decode figure is reproduced within 25 %", "[plan][anchor]") {
  const auto r1 = load_model("deepseek-r1");
  const ClusterProfile h800 = load_cluster("h800-node");
  PlanRequest req;
  req.chips = 144;
  req.phase = Phase::Decode;
  req.format = WeightFormat::FP8;
  req.context = 4989;
  req.tpot_ms = 1000.0 / 21;  // the published 20-22 tokens/s per user
  const Plan p = search_plan(r1, h800, req, deepseek_h800_anchor());
  REQUIRE(p.feasible);
  const double per_node = p.report.tokens_per_s_per_chip * 8;
  CHECK(per_node >= 14.8e3 * 0.75);
  CHECK(per_node <= 14.8e3 * 1.25);
  const double per_user = 1000 / p.report.tpot_ms;
  CHECK(per_user >= 20);
  CHECK(per_user <= 22.5);
  // The plan is DeepSeek's: DP attention, EP over all 144 GPUs, dual-batch overlap.
  CHECK(p.report.parallelism.attention_tp == 1);
  CHECK(p.report.parallelism.micro_batches == 2);
}

TEST_CASE("DeepSeek's H800 prefill figure is reproduced within 25 %", "[plan][anchor]") {
  const auto r1 = load_model("deepseek-r1");
  const ClusterProfile h800 = load_cluster("h800-node");
  PlanRequest req;
  req.chips = 32;
  req.phase = Phase::Prefill;
  req.format = WeightFormat::FP8;
  req.context = 4096;
  req.prefix_hit = 0.563;
  const Plan p = search_plan(r1, h800, req, deepseek_h800_anchor());
  REQUIRE(p.feasible);
  const double per_node = p.report.tokens_per_s_per_chip * 8;
  CHECK(per_node >= 73.7e3 * 0.75);
  CHECK(per_node <= 73.7e3 * 1.25);
  CHECK(p.report.parallelism.micro_batches == 2);
}

TEST_CASE("the anchor's only fitted term is the fleet occupancy", "[plan][anchor]") {
  // Without it the plan gives the peak of the same deployment: higher, by 1/occupancy exactly.
  const auto r1 = load_model("deepseek-r1");
  const ClusterProfile h800 = load_cluster("h800-node");
  Workload w;
  w.batch = 100;
  w.context = 4989;
  const Assumptions anchor = deepseek_h800_anchor();
  Assumptions peak = anchor;
  peak.occupancy = 1;
  const StepReport a = step_time(r1, h800, {144, 1, 32, 2}, w, anchor);
  const StepReport b = step_time(r1, h800, {144, 1, 32, 2}, w, peak);
  CHECK(a.time.step_ms == Approx(b.time.step_ms));
  CHECK(a.tokens_per_s_per_chip == Approx(b.tokens_per_s_per_chip * anchor.occupancy));
}

}  // namespace plan_anchor_tests
