// The step model's sanity: no plan beats the chip's peaks or the links' bandwidth, memory counts
// weights and KV cache by the published shapes, more chips do not slow a fixed batch unless the
// breakdown shows communication grew, and the published model sizes come out of the configs.
#include <algorithm>

#include <catch2/catch.hpp>

#include <porta/error.hpp>
#include <porta/plan.hpp>

namespace plan_step_model_tests {

using namespace porta::plan;

TEST_CASE("parameter counts match the published model sizes", "[plan]") {
  // DeepSeek-V3/R1: 671 B total, 37 B activated (tech report, main model without the MTP module).
  const ModelSize r1 = model_size(load_model("deepseek-r1"));
  CHECK(r1.total_params == Approx(671e9).epsilon(0.01));
  CHECK(r1.active_params == Approx(37e9).epsilon(0.03));
  // DeepSeek-V2: 236 B total, 21 B activated.
  const ModelSize v2 = model_size(load_model("deepseek-v2"));
  CHECK(v2.total_params == Approx(236e9).epsilon(0.01));
  CHECK(v2.active_params == Approx(21e9).epsilon(0.05));
  // Qwen3-235B-A22B and Mixtral-8x22B (141 B total, 39 B active).
  CHECK(model_size(load_model("qwen3-235b-a22b")).total_params == Approx(235e9).epsilon(0.01));
  CHECK(model_size(load_model("qwen3-235b-a22b")).active_params == Approx(22e9).epsilon(0.03));
  CHECK(model_size(load_model("mixtral-8x22b")).total_params == Approx(141e9).epsilon(0.01));
  CHECK(model_size(load_model("mixtral-8x22b")).active_params == Approx(39e9).epsilon(0.02));
  // The hypothetical 2xR1 doubles R1's parameters at R1's activated size.
  const ModelSize x2 = model_size(load_model("deepseek-2xr1"));
  CHECK(x2.total_params == Approx(2 * r1.total_params).epsilon(0.02));
  CHECK(x2.active_params == Approx(r1.active_params).epsilon(0.01));  // a wider router
}

TEST_CASE("no step exceeds peak compute, HBM bandwidth or link bandwidth", "[plan]") {
  int checked = 0;
  for (const char* model_name : {"deepseek-r1", "qwen3-235b-a22b", "mixtral-8x22b"}) {
    const auto model = load_model(model_name);
    for (const auto& cluster_name : builtin_clusters()) {
      const ClusterProfile c = load_cluster(cluster_name);
      const double peak = std::max({c.chip.bf16_tflops, c.chip.fp8_tflops, c.chip.int8_tops});
      const double link = std::max(c.scale_up_chip_gbps(c.scale_up_domain), c.scale_out.gbps);
      const WeightFormat format = c.chip.fp8_tflops > 0 ? WeightFormat::FP8 : WeightFormat::W8A8;
      for (Phase phase : {Phase::Decode, Phase::Prefill})
        for (int chips : {8, 32, 128})
          for (int mb : {1, 2})
            for (std::int64_t batch : {1, 16, 256}) {
              Workload w;
              w.phase = phase;
              w.format = format;
              w.batch = batch;
              w.context = phase == Phase::Decode ? 8192 : 2048;
              const StepReport r = step_time(model, c, {chips, 1, 0, mb}, w);
              INFO(model_name << " on " << cluster_name << " " << phase_name(phase) << " chips "
                              << chips << " batch " << batch << " micro-batches " << mb);
              CHECK(r.achieved_tflops <= peak);
              CHECK(r.mfu <= 1.0);
              CHECK(r.achieved_hbm_tbps <= c.chip.hbm_tbps);
              CHECK(r.achieved_link_gbps <= link);
              CHECK(r.time.step_ms >= r.time.busy_ms);
              CHECK(r.time.exposed_comm_ms <= r.time.comm_ms + 1e-9);
              CHECK(r.time.step_ms >= 0.999 * std::max(r.time.compute_ms, r.time.hbm_ms));
              ++checked;
            }
    }
  }
  CHECK(checked == 3 * 4 * 2 * 3 * 2 * 3);
}

TEST_CASE("memory per chip holds the weights and the KV cache", "[plan]") {
  const auto r1 = load_model("deepseek-r1");
  const ClusterProfile c = load_cluster("h800-node");
  Workload w;
  w.batch = 64;
  w.context = 4096;
  const StepReport r = step_time(r1, c, {144, 1, 32, 2}, w);
  // MLA latent cache: (512 + 64) bf16 values per token per layer, 61 layers.
  CHECK(r.memory.kv_cache_gb == Approx(64.0 * 4096 * 61 * 576 * 2 / 1e9));
  // Weights: 2 expert slots (288 over 144 chips) of 3·7168·2048 fp8 in 58 MoE layers, plus the
  // dense part every DP rank holds (R1's 671 B minus 256 routed experts' 654 B, most of it fp8)
  // and the bf16 embedding and head (2 · 129280 · 7168).
  const double expert = 3.0 * 7168 * 2048;
  const double experts_gb = 58 * 2 * expert * 1.0 / 1e9;
  const double dense = model_size(r1).total_params - 58 * 256 * expert;
  const double embed = 2.0 * 129280 * 7168;
  const double expected = experts_gb + ((dense - embed) * 1.0 + embed * 2) / 1e9;
  CHECK(r.memory.weights_gb == Approx(expected).epsilon(0.01));
  CHECK(r.memory.total_gb() > r.memory.weights_gb + r.memory.kv_cache_gb);
  // TP over MLA replicates the latent cache: TP4 holds 4x the sequences' cache per chip.
  const StepReport tp = step_time(r1, c, {144, 4, 32, 2}, w);
  CHECK(tp.memory.kv_cache_gb == Approx(4 * r.memory.kv_cache_gb));
  CHECK(tp.memory.weights_gb < r.memory.weights_gb);
  // bf16 weights do not fit 8 H800s; the search says so.
  PlanRequest req;
  req.chips = 8;
  req.format = WeightFormat::BF16;
  const Plan p = search_plan(r1, c, req);
  CHECK_FALSE(p.feasible);
  CHECK_THAT(p.reason, Catch::Contains("does not fit"));
}

TEST_CASE("more chips do not slow a fixed global batch unless communication grew", "[plan]") {
  for (const char* cluster_name : {"h800-node", "atlas800-a2", "cloudmatrix384"}) {
    const ClusterProfile c = load_cluster(cluster_name);
    const auto r1 = load_model("deepseek-r1");
    const WeightFormat format = c.chip.fp8_tflops > 0 ? WeightFormat::FP8 : WeightFormat::W8A8;
    for (Phase phase : {Phase::Decode, Phase::Prefill}) {
      const std::int64_t global = phase == Phase::Decode ? 4096 : 256;
      StepReport previous;
      bool first = true;
      for (int chips : {16, 32, 64, 128, 256}) {
        Workload w;
        w.phase = phase;
        w.format = format;
        w.batch = global / chips;
        w.context = phase == Phase::Decode ? 4096 : 2048;
        const StepReport r = step_time(r1, c, {chips, 1, 0, 2}, w);
        if (!first && r.time.step_ms > previous.time.step_ms) {
          INFO(cluster_name << " " << phase_name(phase) << ": " << chips << " chips slower ("
                            << r.time.step_ms << " ms) than " << previous.parallelism.chips << " ("
                            << previous.time.step_ms << " ms)");
          // The breakdown must account for it: communication (exposed or overlapped) or launches.
          const double explained = (r.time.comm_ms - previous.time.comm_ms) +
                                   (r.time.overhead_ms - previous.time.overhead_ms);
          CHECK(r.time.step_ms - previous.time.step_ms <= explained + 1e-9);
        }
        previous = r;
        first = false;
      }
    }
  }
}

TEST_CASE("dual-batch overlap hides communication under compute", "[plan]") {
  const auto r1 = load_model("deepseek-r1");
  const ClusterProfile c = load_cluster("h800-node");
  Workload w;
  w.batch = 64;
  w.context = 4096;
  const StepReport one = step_time(r1, c, {64, 1, 0, 1}, w);
  const StepReport two = step_time(r1, c, {64, 1, 0, 2}, w);
  CHECK(one.time.exposed_comm_ms == Approx(one.time.comm_ms));
  CHECK(one.time.step_ms == Approx(one.time.busy_ms + one.time.comm_ms));
  CHECK(two.time.exposed_comm_ms < 0.5 * one.time.exposed_comm_ms);
  // Two micro-batches read the weights twice: more HBM time, still a shorter step here.
  CHECK(two.time.hbm_ms > one.time.hbm_ms);
  CHECK(two.time.step_ms < one.time.step_ms);
}

TEST_CASE("the search finds the largest batch that meets the TPOT target", "[plan]") {
  const auto r1 = load_model("deepseek-r1");
  const ClusterProfile c = load_cluster("h20-node");
  PlanRequest req;
  req.chips = 32;
  req.tpot_ms = 50;
  const Plan p = search_plan(r1, c, req);
  REQUIRE(p.feasible);
  CHECK(p.report.tpot_ms <= 50);
  // One more sequence per chip breaks the target or the memory.
  Workload w = p.report.workload;
  w.batch += 1;
  const StepReport next = step_time(r1, c, p.report.parallelism, w);
  CHECK((next.tpot_ms > 50 || !next.fits_memory));
  // A tighter target gives a smaller batch and fewer tokens per chip.
  req.tpot_ms = 25;
  const Plan tight = search_plan(r1, c, req);
  REQUIRE(tight.feasible);
  CHECK(tight.report.workload.batch < p.report.workload.batch);
  CHECK(tight.report.tokens_per_s_per_chip < p.report.tokens_per_s_per_chip);
  // An impossible target is reported, not answered.
  req.tpot_ms = 0.5;
  const Plan none = search_plan(r1, c, req);
  CHECK_FALSE(none.feasible);
  CHECK_THAT(none.reason, Catch::Contains("TPOT target"));
}

TEST_CASE("weight formats and MTP change what the breakdown says they should", "[plan]") {
  const auto r1 = load_model("deepseek-r1");
  const ClusterProfile h20 = load_cluster("h20-node");
  Workload w;
  w.batch = 32;
  w.context = 4096;
  const Parallelism par{64, 1, 0, 1};
  w.format = WeightFormat::BF16;
  const StepReport bf16 = step_time(r1, h20, par, w);
  w.format = WeightFormat::FP8;
  const StepReport fp8 = step_time(r1, h20, par, w);
  w.format = WeightFormat::W4A16;
  const StepReport w4 = step_time(r1, h20, par, w);
  // The quantised weights halve, then quarter; the embedding, head and routers stay bf16.
  const double embed_gb = 2.0 * 129280 * 7168 * 2 / 1e9 + 58.0 * 7168 * 256 * 2 / 1e9;
  CHECK(fp8.memory.weights_gb - embed_gb == Approx((bf16.memory.weights_gb - embed_gb) / 2).epsilon(0.01));
  CHECK(w4.memory.weights_gb - embed_gb ==
        Approx((bf16.memory.weights_gb - embed_gb) * (0.5 + 2.0 / 128) / 2).epsilon(0.01));
  CHECK(fp8.compute_format == "fp8");
  CHECK(w4.compute_format == "bf16");
  CHECK(fp8.time.hbm_ms < bf16.time.hbm_ms);
  // MTP: two tokens per sequence per step, one extra layer, 1 + accepted tokens out.
  Assumptions mtp;
  mtp.mtp_accept = 0.8;
  w.format = WeightFormat::FP8;
  const StepReport m = step_time(r1, h20, par, w, mtp);
  CHECK(m.tpot_ms == Approx(m.time.step_ms / 1.8));
  CHECK(m.tokens_per_s_per_chip == Approx(32 * 1.8 / (m.time.step_ms / 1e3)));
  CHECK(m.time.step_ms > fp8.time.step_ms);
  // Twice the tokens through 62 layers instead of 61; the busiest chip's share of routed tokens
  // shrinks a little with more of them (1/sqrt(mu)), hence the 8 %.
  CHECK(m.time.flops == Approx(2 * fp8.time.flops * 62 / 61).epsilon(0.08));
}

}  // namespace plan_step_model_tests
