// npu-sim's timing model: calibration against the spec's measurements, the sanity properties a
// physical chip obeys, tiling limits, the pipe trace and the simulator's own speed.
#include <chrono>
#include <set>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <porta/npu_sim.hpp>
#include <porta/porta.hpp>

namespace npu_sim_timing_tests {

using porta::DType;
namespace sim = porta::npu_sim;

namespace {

double tflops(const sim::OpReport& r) { return r.flops / (r.time_us * 1e-6) * 1e-12; }

// A DeepSeek-V2-Lite MoE FFN block: 64 experts of width 1408, top-6, 2 shared experts.
porta::Graph v2_lite_moe(std::int64_t tokens) {
  const std::int64_t h = 2048, e = 64, i = 1408;
  porta::Graph g;
  auto x = g.input("x", {tokens, h}, DType::F16);
  auto logits = g.matmul(x, g.input("router", {e, h}, DType::F16), {false, true});
  auto route = g.moe_router(logits, porta::moe::deepseek_v2_lite(e, 6));
  porta::MoeExpertWeights w;
  w.gate = g.input("gate", {e, i, h}, DType::F16);
  w.up = g.input("up", {e, i, h}, DType::F16);
  w.down = g.input("down", {e, h, i}, DType::F16);
  w.shared_gate = g.input("s_gate", {2 * i, h}, DType::F16);
  w.shared_up = g.input("s_up", {2 * i, h}, DType::F16);
  w.shared_down = g.input("s_down", {h, 2 * i}, DType::F16);
  porta::moe::ExpertsAttrs attrs;
  attrs.has_shared = true;
  g.output("y", g.moe_experts(x, route, w, attrs));
  return g;
}

porta::Graph elementwise_graph(porta::OpKind op, porta::Shape shape, DType t) {
  porta::Graph g;
  auto x = g.input("x", shape, t);
  if (op == porta::OpKind::Add)
    g.output("y", g.add(x, g.input("y", shape, t)));
  else if (op == porta::OpKind::Softmax)
    g.output("y", g.softmax(x));
  else if (op == porta::OpKind::RmsNorm)
    g.output("y", g.rms_norm(x, g.input("w", {shape[-1]}, t)));
  else
    g.output("y", g.add_op(op, {x})[0]);
  return g;
}

}  // namespace

TEST_CASE("fp16 GEMM on 910b2 reproduces the calibration points within 15 %", "[npu-sim]") {
  const auto p = sim::load_profile("910b2");
  for (auto [n, target] : {std::pair<std::int64_t, double>{1024, 98}, {2048, 251}, {4096, 315}}) {
    const auto r = sim::simulate_matmul(p, n, n, n, DType::F16);
    INFO("N = " << n << ": " << tflops(r) << " TFLOPS, target " << target << ", " << r.tiling);
    CHECK(tflops(r) > 0.85 * target);
    CHECK(tflops(r) < 1.15 * target);
  }
}

TEST_CASE("GEMM efficiency rises with size and never passes the peak", "[npu-sim]") {
  for (const char* name : {"910b2", "910b4", "910a", "h20"}) {
    const auto p = sim::load_profile(name);
    double previous = 0;
    for (std::int64_t n : {64, 128, 256, 512, 1024, 2048, 4096, 8192}) {
      const auto r = sim::simulate_matmul(p, n, n, n, DType::F16);
      INFO(name << " N = " << n << ": " << tflops(r) << " TFLOPS, " << r.tiling);
      CHECK(tflops(r) > previous);
      CHECK(r.compute_utilization <= 1.0);
      CHECK(r.flops / (r.time_us * 1e-6) <= p.peak_flops(DType::F16));
      CHECK(r.hbm_bytes / (r.time_us * 1e-6) <= p.hbm_gbps * 1e9);
      previous = tflops(r);
    }
  }
  // int8 runs twice as fast as fp16 on a compute-bound shape, f32 slower.
  const auto p = sim::load_profile("910b2");
  const auto f16 = sim::simulate_matmul(p, 4096, 4096, 4096, DType::F16);
  CHECK(sim::simulate_matmul(p, 4096, 4096, 4096, DType::I8).kernel_us < 0.6 * f16.kernel_us);
  CHECK(sim::simulate_matmul(p, 4096, 4096, 4096, DType::F32).kernel_us > 2 * f16.kernel_us);
}

TEST_CASE("no op of a graph exceeds peak compute or HBM bandwidth", "[npu-sim]") {
  std::vector<porta::Graph> graphs;
  graphs.push_back(v2_lite_moe(512));
  graphs.push_back(v2_lite_moe(1));
  for (auto op : {porta::OpKind::Add, porta::OpKind::Silu, porta::OpKind::Exp,
                  porta::OpKind::Softmax, porta::OpKind::RmsNorm})
    for (DType t : {DType::F16, DType::BF16, DType::F32}) {
      graphs.push_back(elementwise_graph(op, {4096, 4096}, t));
      graphs.push_back(elementwise_graph(op, {3, 37}, t));
    }
  for (const char* name : {"910b2", "910b3", "910a", "h20"}) {
    const auto p = sim::load_profile(name);
    for (const auto& g : graphs) {
      const auto s = sim::simulate(g, p);
      for (const auto& r : s.report.ops) {
        INFO(name << " " << r.op << " " << r.tiling);
        const double seconds = r.time_us * 1e-6;
        REQUIRE(r.time_us > 0);
        CHECK(r.compute_utilization <= 1.0);
        CHECK(r.hbm_bytes / seconds <= p.hbm_gbps * 1e9);
        CHECK(r.hbm_utilization <= 1.0);
        for (double busy : r.pipe_busy) CHECK(busy <= 1.0 + 1e-9);
      }
    }
  }
}

TEST_CASE("empty tensors cost one launch and nothing else", "[npu-sim]") {
  const auto p = sim::load_profile("910b2");
  for (auto op :
       {porta::OpKind::Add, porta::OpKind::Softmax, porta::OpKind::RmsNorm, porta::OpKind::Exp}) {
    const auto s = sim::simulate(elementwise_graph(op, {0, 16}, DType::F16), p);
    CHECK(s.report.ops.at(0).kernel_us == 0);
    CHECK(s.report.ops.at(0).time_us == p.launch_overhead_us);
  }
  const auto r = sim::simulate_matmul(p, 0, 64, 64, DType::F16);
  CHECK(r.kernel_us == 0);
  CHECK_THROWS_AS(sim::simulate_matmul(p, -1, 64, 64, DType::F16), porta::Error);
  CHECK_THROWS_AS(sim::simulate_matmul(p, 8, 8, 8, DType::I32), porta::Error);
}

TEST_CASE("a memory-bound op's time grows linearly with its bytes", "[npu-sim]") {
  const auto p = sim::load_profile("910b2");
  std::vector<double> kernel_us;
  for (std::int64_t rows : {1024, 2048, 4096, 8192}) {
    const auto s =
        sim::simulate(elementwise_graph(porta::OpKind::Add, {rows, 4096}, DType::F16), p);
    const auto& r = s.report.ops.at(0);
    CHECK(r.hbm_utilization > 0.5);  // it is memory-bound
    CHECK(r.launch_us == p.launch_overhead_us);
    kernel_us.push_back(r.kernel_us);
  }
  // Affine in the bytes (a fixed pipeline fill plus a constant rate): each doubling adds twice the
  // time the previous one added.
  for (std::size_t i = 2; i < kernel_us.size(); ++i) {
    INFO(kernel_us[i - 2] << " us, " << kernel_us[i - 1] << " us, " << kernel_us[i] << " us");
    CHECK((kernel_us[i] - kernel_us[i - 1]) / (kernel_us[i - 1] - kernel_us[i - 2]) ==
          Approx(2.0).epsilon(0.03));
  }
  CHECK(kernel_us[3] / kernel_us[2] == Approx(2.0).epsilon(0.05));
}

TEST_CASE("tiles never exceed the buffers", "[npu-sim]") {
  for (const char* name : {"910b1", "910b2", "910b4", "910a"}) {
    const auto p = sim::load_profile(name);
    for (DType t : {DType::F16, DType::F32, DType::I8})
      for (auto [m, n, k] : {std::array<std::int64_t, 3>{1, 1, 1},
                             {1, 4096, 4096},
                             {7, 33, 4099},
                             {4096, 4096, 4096},
                             {300, 20000, 64},
                             {100000, 16, 16}}) {
        const auto r = sim::simulate_matmul(p, m, n, k, t);
        INFO(name << " " << m << "x" << n << "x" << k << " " << porta::dtype_name(t) << ": "
                  << r.tiling);
        CHECK(r.peak_l0a <= p.l0a_bytes);
        CHECK(r.peak_l0b <= p.l0b_bytes);
        CHECK(r.peak_l0c <= p.l0c_bytes);
        CHECK(r.peak_l1 <= p.l1_bytes);
        CHECK(r.peak_l0a > 0);
      }
    for (auto op : {porta::OpKind::Add, porta::OpKind::Softmax, porta::OpKind::RmsNorm})
      for (porta::Shape shape : {porta::Shape{5, 7}, porta::Shape{64, 100000},
                                 porta::Shape{1 << 22}, porta::Shape{4096, 4096}}) {
        const auto s = sim::simulate(elementwise_graph(op, shape, DType::F16), p);
        const auto& r = s.report.ops.at(0);
        INFO(name << " " << r.tiling);
        CHECK(r.peak_ub <= p.ub_bytes);
        CHECK(r.peak_ub > 0);
      }
  }
}

TEST_CASE("the graph simulation of a V2-Lite MoE layer at T = 512 takes under a second",
          "[npu-sim]") {
  const auto g = v2_lite_moe(512);
  const auto p = sim::load_profile("910b2");
  const auto t0 = std::chrono::steady_clock::now();
  const auto s = sim::simulate(g, p);
  const double wall_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  INFO(s.report.to_table());
  WARN("V2-Lite MoE layer, T = 512, on 910b2: " << s.report.total_us << " us simulated in "
                                                << wall_ms << " ms of timing model");
#ifdef NDEBUG
  CHECK(wall_ms < 1000);
#else
  CHECK(wall_ms < 10000);  // the sanitizer build is several times slower
#endif
  // About 70 GFLOP, mostly the experts; time dominated by the experts' weights streaming from HBM.
  CHECK(s.report.total_flops == Approx(70.9e9).epsilon(0.02));
  const auto& experts = s.report.ops.back();
  CHECK(experts.op == "moe_experts");
  CHECK(experts.hbm_bytes > 1.1e9);  // all 64 experts' fp16 weights
  CHECK(experts.time_us > experts.hbm_bytes / (p.hbm_gbps * 1e9) * 1e6);
}

TEST_CASE("the pipe trace has a track per core and pipe, and the pipes overlap", "[npu-sim]") {
  porta::Graph g;
  auto a = g.input("a", {2048, 2048}, DType::F16);
  auto y = g.matmul(a, g.input("b", {2048, 2048}, DType::F16));
  g.output("z", g.silu(y));
  sim::SimulateOptions options;
  options.collect_spans = true;
  const auto s = sim::simulate(g, sim::load_profile("910b2"), options);
  REQUIRE_FALSE(s.spans.empty());
  CHECK_FALSE(s.spans_truncated);
  // Double buffering: on aic0 an MTE2 load runs while the cube computes.
  bool overlap = false;
  for (const auto& load : s.spans)
    if (load.core == "aic0" && load.pipe == sim::Pipe::Mte2)
      for (const auto& mmad : s.spans)
        if (mmad.core == "aic0" && mmad.pipe == sim::Pipe::Cube && load.start_us < mmad.end_us &&
            mmad.start_us < load.end_us) {
          overlap = true;
          break;
        }
  CHECK(overlap);
  // The silu's vector spans come after the matmul (ops run in order on the device).
  double matmul_end = 0, silu_start = 1e30;
  for (const auto& sp : s.spans) {
    if (sp.core.rfind("aic", 0) == 0) matmul_end = std::max(matmul_end, sp.end_us);
    if (sp.core.rfind("aiv", 0) == 0) silu_start = std::min(silu_start, sp.start_us);
  }
  CHECK(silu_start >= matmul_end);
  const auto trace = nlohmann::json::parse(s.to_chrome_trace());
  std::set<std::string> tracks;
  for (const auto& e : trace["traceEvents"])
    if (e["name"] == "thread_name") tracks.insert(e["args"]["name"].get<std::string>());
  for (const char* t : {"aic0 MTE2", "aic0 MTE1", "aic0 Cube", "aic0 FixPipe", "aic23 Cube",
                        "aiv0 MTE2", "aiv0 Vector", "aiv47 MTE3", "ops"})
    CHECK(tracks.count(t) == 1);
}

TEST_CASE("npu-sim times a run with its real routing and reports it per op", "[npu-sim]") {
  // grouped_matmul with every row on one expert reads one expert's weights; spread over all
  // experts it reads them all, so the routing changes the modelled time.
  const std::int64_t rows = 64, h = 256, n = 512, e = 8;
  porta::Graph g;
  auto x = g.input("rows", {rows, h}, DType::F16);
  auto off = g.input("offsets", {e + 1}, DType::I32);
  std::vector<float> w(static_cast<std::size_t>(e * n * h), 0.01f);
  g.output("y", g.grouped_matmul(
                    x, g.weight("w", porta::Tensor::from_f32({e, n, h}, DType::F16, w)), off));
  auto exe = porta::compile(g, {.backend = "npu-sim:910b2", .fallback = ""});
  const auto input = porta::Tensor::from_f32(
      {rows, h}, DType::F16, std::vector<float>(static_cast<std::size_t>(rows * h), 1.0f));
  std::vector<std::int32_t> one(static_cast<std::size_t>(e + 1), rows), spread;
  one[0] = 0;
  for (std::int64_t i = 0; i <= e; ++i) spread.push_back(static_cast<std::int32_t>(i * rows / e));
  const auto y = exe.run(
      {{"rows", input}, {"offsets", porta::Tensor::from_vector<std::int32_t>({e + 1}, one)}});
  CHECK(y.at("y").to_f32()[0] == Approx(256 * 0.01f).epsilon(2e-3));
  const double one_expert = exe.profile().ops.at(0).device_us;
  exe.run(
      {{"rows", input}, {"offsets", porta::Tensor::from_vector<std::int32_t>({e + 1}, spread)}});
  const auto& op = exe.profile().ops.at(0);
  CHECK(op.device_us > one_expert);
  // Balanced routing is what the static simulation assumes: the two agree.
  CHECK(sim::simulate(g, sim::load_profile("910b2")).report.ops.at(0).time_us ==
        Approx(op.device_us));
  for (const char* key : {"cycles", "hbm_bytes", "l1_bytes", "l0_bytes", "busy_cube", "busy_mte2",
                          "compute_utilization", "hbm_utilization"})
    CHECK(op.metrics.count(key) == 1);
  CHECK(porta::device_info("npu-sim").name == "npu-sim:910b2");
}

}  // namespace npu_sim_timing_tests
