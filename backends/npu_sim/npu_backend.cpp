// The npu-sim backend: one Backend per device profile. It computes in host memory (the "host"
// domain: the simulated HBM is not a separate domain, so the runtime inserts no transfers) with
// the device's numerics (functional.hpp), and reports a modelled device time per op from the
// tile-level model (lowering.hpp, timing.hpp), with the model's figures as profile metrics.
#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include <porta/error.hpp>
#include <porta/npu_sim.hpp>

#include "functional.hpp"
#include "lowering.hpp"
#include "reference/kernel_util.hpp"
#include "reference/kernels.hpp"
#include "reference/moe_kernels.hpp"
#include "reference/reference_backend.hpp"

namespace porta::detail::npu_sim {

namespace {

using porta::npu_sim::load_profile;

bool data_dependent(OpKind op) {
  return op == OpKind::GroupedMatmul || op == OpKind::MoeExperts ||
         op == OpKind::QuantGroupedMatmul || op == OpKind::QuantMoeExperts ||
         op == OpKind::MoeExpertsEp;
}
bool quantized(OpKind op) {
  return op == OpKind::QuantMatmul || op == OpKind::QuantGroupedMatmul ||
         op == OpKind::QuantMoeExperts || op == OpKind::QuantEmbedding;
}

// The cube ops have NPU numerics of their own (functional.hpp); every other op runs on the
// vector cores, in f32 with one rounding into the output dtype: the reference's numerics.
void run_functional(const GraphState& g, const Node& n, const ExecContext& ctx) {
  if (n.op == OpKind::Matmul) return npu_sim::run_matmul(g, n, ctx);
  if (n.op == OpKind::GroupedMatmul) return npu_sim::run_grouped_matmul(g, n, ctx);
  if (n.op == OpKind::MoeExperts) return npu_sim::run_moe_experts(g, n, ctx);
  if (n.op == OpKind::QuantMatmul) return npu_sim::run_quant_matmul(g, n, ctx);
  if (n.op == OpKind::QuantGroupedMatmul) return npu_sim::run_quant_grouped_matmul(g, n, ctx);
  if (n.op == OpKind::QuantMoeExperts) return npu_sim::run_quant_moe_experts(g, n, ctx);
  return reference::run_node(g, n, ctx);
}

void annotate(OpRecorder& rec, NodeId id, const OpReport& r) {
  rec.annotate(id, "cycles", r.cycles);
  rec.annotate(id, "kernel_us", r.kernel_us);
  rec.annotate(id, "launch_us", r.launch_us);
  rec.annotate(id, "model_flops", r.flops);
  rec.annotate(id, "hbm_bytes", r.hbm_bytes);
  rec.annotate(id, "l2_bytes", r.l2_bytes);
  rec.annotate(id, "l1_bytes", r.l1_bytes);
  rec.annotate(id, "l0_bytes", r.l0_bytes);
  rec.annotate(id, "ub_bytes", r.ub_bytes);
  rec.annotate(id, "cores", r.cores_used);
  rec.annotate(id, "waves", r.waves);
  rec.annotate(id, "busiest_pipe", static_cast<double>(r.busiest));
  for (int i = 0; i < porta::npu_sim::kPipeCount; ++i) {
    const auto pipe = static_cast<Pipe>(i);
    std::string key = fmt::format("busy_{}", porta::npu_sim::pipe_name(pipe));
    std::transform(key.begin(), key.end(), key.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    rec.annotate(id, key, r.pipe_busy[static_cast<std::size_t>(i)]);
  }
  rec.annotate(id, "compute_utilization", r.compute_utilization);
  rec.annotate(id, "hbm_utilization", r.hbm_utilization);
}

struct NpuPlan final : Plan {
  std::vector<NodeId> nodes;
  std::vector<OpReport> reports;  // per node, timed once at compile unless data-dependent
};

class NpuSimBackend final : public Backend {
 public:
  NpuSimBackend(DeviceProfile profile, std::string name)
      : profile_(std::move(profile)),
        name_(std::move(name)),
        reference_(make_reference_backend()) {}

  std::string name() const override { return name_; }

  DeviceInfo info() const override {
    DeviceInfo d;
    d.name = name_;
    d.kind = "simulator";
    d.description = profile_.description;
    d.memory_bytes = profile_.hbm_bytes;
    d.peak_gflops = profile_.peak_flops(DType::F16) * 1e-9;
    d.peak_gbps = profile_.hbm_gbps;
    d.dtypes = {DType::F16, DType::BF16, DType::F32, DType::I8, DType::I32};
    d.properties = {
        {"memory", "host (the simulated HBM is not a separate domain)"},
        {"model", profile_.model == porta::npu_sim::ModelKind::Ascend ? "tile-level Ascend model"
                                                                      : "roofline"},
        {"numerics",
         "cube: fp16/bf16 inputs, f32 accumulation, one RNE rounding at FixPipe; "
         "vector: f32 compute, one rounding; W8A8: int8 cube, exact int32 sums, f32 "
         "scaling; int8/int4 weight-only: antiquant to the activation dtype, then the cube"},
        {"profiles", fmt::format("{} (npu-sim:NAME), or npu-sim:file=PATH.json",
                                 fmt::join(porta::npu_sim::builtin_profiles(), ", "))},
        {"source", profile_.source}};
    if (profile_.model == porta::npu_sim::ModelKind::Ascend) {
      d.properties.emplace_back("cores",
                                fmt::format("{} cube + {} vector at {} MHz", profile_.cube_cores,
                                            profile_.vector_cores, profile_.clock_mhz));
    }
    return d;
  }

  // The cube's numerics: each kernel rounds its output once into the dtype (unit roundoff u), and
  // the f32 accumulator adds at most ~K·2^-24 relative to max|output| for random-sign terms.
  // moe_experts chains four roundings (gate/up, SwiGLU, down, combine). A factor 2 of margin.
  // The quantized ops' weight-only path rounds twice more per GEMM (the scale and the
  // antiquantized weight into the activation dtype), so a quantized GEMM counts three roundings
  // and quant_moe_experts (two GEMM stages, SwiGLU, combine, and the requantization of the SwiGLU
  // output under W8A8) eight.
  std::optional<double> conformance_tolerance(OpKind op, DType dtype,
                                              std::int64_t k) const override {
    if (op != OpKind::Matmul && op != OpKind::GroupedMatmul && op != OpKind::MoeExperts &&
        !quantized(op))
      return std::nullopt;
    double u = 0;
    switch (dtype) {
      case DType::F16: u = 0x1p-11; break;
      case DType::BF16: u = 0x1p-8; break;
      case DType::F32: u = 0; break;
      case DType::I8:
      case DType::I32:
      case DType::I64:
      case DType::F8E4M3: return std::nullopt;
    }
    double roundings = op == OpKind::MoeExperts ? 4 : 1;
    if (quantized(op)) roundings = op == OpKind::QuantMoeExperts ? 8 : 3;
    return 2 * (roundings * u + static_cast<double>(std::max<std::int64_t>(k, 1)) * 0x1p-24);
  }

  SupportResult supports(const GraphState& g, const Node& n) const override {
    if (quantized(n.op) &&
        std::get<QuantAttrs>(n.attrs).scheme.format == QuantFormat::GgmlBlocks)
      return SupportResult::no(fmt::format(
          "{}: {} weights: the Ascend 910B that npu-sim models has no ggml block decoder "
          "(the node runs on the fallback backend)",
          reference::node_label(n), describe(std::get<QuantAttrs>(n.attrs).scheme)));
    if (quantized(n.op) &&
        std::get<QuantAttrs>(n.attrs).scheme.format == QuantFormat::F8E4M3)
      return SupportResult::no(
          fmt::format("{}: f8_e4m3 weights: the Ascend 910B that npu-sim models has no fp8 data "
                      "type (dequantize them at load, or quantize to int8)",
                      reference::node_label(n)));
    for (auto v : n.inputs)
      if (g.values[v].dtype == DType::F8E4M3)
        return SupportResult::no(fmt::format(
            "{}: input '{}' is f8_e4m3, and the Ascend 910B that npu-sim models has no fp8 "
            "data type (cast it to f16 or bf16)",
            reference::node_label(n), g.values[v].name));
    for (auto v : n.outputs)
      if (g.values[v].dtype == DType::F8E4M3)
        return SupportResult::no(
            fmt::format("{}: the output is f8_e4m3, which the Ascend 910B has no data type for",
                        reference::node_label(n)));
    if ((n.op == OpKind::Add || n.op == OpKind::Sub || n.op == OpKind::Mul) &&
        g.input_of(n, 0).dtype == DType::I64)
      return SupportResult::no(
          fmt::format("{}: i64 arithmetic: the 910B vector unit computes integers in 32 bits",
                      reference::node_label(n)));
    // Every remaining dtype/attribute rule is the reference kernels' (they run the vector ops).
    return reference_->supports(g, n);
  }

  std::unique_ptr<Plan> compile(const GraphState& g, std::span<const NodeId> nodes) override {
    auto plan = std::make_unique<NpuPlan>();
    for (NodeId id : nodes) {
      const Node& n = g.nodes.at(id);
      if (auto verdict = supports(g, n); !verdict.supported)
        throw Error(ErrorCode::Unsupported, fmt::format("{} cannot run {}: {}", name_,
                                                        describe_node(g, n), verdict.reason));
      plan->nodes.push_back(id);
      plan->reports.push_back(data_dependent(n.op) ? OpReport{}
                                                   : time_node(profile_, g, n, {}, nullptr));
      const OpReport& r = plan->reports.back();
      plan->note(id, data_dependent(n.op)
                         ? "cube grouped gemm, tiled per run from the routing counts"
                         : fmt::format("{}: {}", r.kernel, r.tiling));
    }
    return plan;
  }

  void execute(Plan& plan, const GraphState& g, const ExecContext& ctx) override {
    auto* npu_plan = dynamic_cast<NpuPlan*>(&plan);
    if (npu_plan == nullptr)
      throw Error(ErrorCode::Internal,
                  fmt::format("{} was given a plan it did not compile", name_));
    for (std::size_t i = 0; i < npu_plan->nodes.size(); ++i) {
      const NodeId id = npu_plan->nodes[i];
      const Node& n = g.nodes[id];
      const double start = ctx.recorder != nullptr ? ctx.recorder->now_us() : 0;
      run_functional(g, n, ctx);
      if (ctx.recorder == nullptr) continue;
      const double end = ctx.recorder->now_us();
      // The routing decides how many rows each expert gets: time those ops with the real counts.
      const OpReport report = data_dependent(n.op)
                                  ? time_node(profile_, g, n, expert_rows(g, n, ctx), nullptr)
                                  : npu_plan->reports[i];
      ctx.recorder->record(id, start, end, report.time_us);
      annotate(*ctx.recorder, id, report);
    }
  }

 private:
  DeviceProfile profile_;
  std::string name_;
  std::shared_ptr<Backend> reference_;
};

}  // namespace

}  // namespace porta::detail::npu_sim

// The family: `npu-sim` (the default profile, 910b2), `npu-sim:NAME` for a built-in profile,
// `npu-sim:file=PATH` or `npu-sim:PATH.json` for a user's profile file.
porta::detail::BackendFamily porta_backend_family_npu_sim() {
  using porta::detail::npu_sim::NpuSimBackend;
  porta::detail::BackendFamily family;
  family.name = "npu-sim";
  // Only the default profile is listed as a device, so that suites running every device (the
  // conformance test, porta bench) run npu-sim once; every profile is named in its properties.
  family.enumerate = [] {
    std::vector<porta::DeviceInfo> devices;
    try {
      devices.push_back(
          NpuSimBackend(porta::npu_sim::load_profile("910b2"), "npu-sim:910b2").info());
    } catch (const porta::Error& e) {
      porta::DeviceInfo d;
      d.name = "npu-sim:910b2";
      d.kind = "simulator";
      d.available = false;
      d.unavailable_reason = e.what();
      devices.push_back(d);
    }
    return devices;
  };
  family.create = [](std::string_view device) -> std::shared_ptr<porta::detail::Backend> {
    auto profile = porta::npu_sim::load_profile(device.empty() ? "910b2" : device);
    const bool from_file = device.find('/') != std::string_view::npos ||
                           device.starts_with("file=") || device.ends_with(".json");
    std::string name =
        from_file ? fmt::format("npu-sim:{}", device) : fmt::format("npu-sim:{}", profile.name);
    return std::make_shared<NpuSimBackend>(std::move(profile), std::move(name));
  };
  return family;
}
