// `porta sim`: the npu-sim timing model on an op shape, a MoE layer or a model's MoE block,
// without executing anything. Prints the per-op report and the roofline table, optionally a
// side-by-side with a second profile (910B2 against the H20-like roofline, say) and a Chrome
// trace with one track per core and pipe.
#include <algorithm>
#include <fstream>
#include <memory>

#include <fmt/format.h>

#include <porta/error.hpp>
#include <porta/graph.hpp>
#include <porta/model/config.hpp>
#include <porta/npu_sim.hpp>

#include "commands.hpp"

namespace porta::cli {

namespace {

struct SimArgs {
  std::string profile = "910b2";
  std::string compare;
  std::string matmul;  // MxNxK
  std::int64_t batch = 1;
  std::string op;
  std::string shape;
  bool moe_layer = false;
  std::string model;  // config.json (or its folder)
  std::int64_t tokens = 512;
  std::int64_t hidden = 2048, experts = 64, expert_width = 1408, top_k = 6, shared = 2;
  std::string dtype = "f16";
  std::string trace;
  bool print_profile = false;
};

std::vector<std::int64_t> parse_dims(const std::string& text, const char* what) {
  std::vector<std::int64_t> dims;
  std::size_t begin = 0;
  while (begin <= text.size()) {
    const auto end = text.find_first_of("x,", begin);
    const std::string part = text.substr(begin, end == std::string::npos ? end : end - begin);
    std::size_t used = 0;
    long long value = -1;
    try {
      value = std::stoll(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != part.size() || part.empty() || value < 0)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("{} '{}': '{}' is not a non-negative whole number (write e.g. "
                              "512x2048)",
                              what, text, part));
    dims.push_back(value);
    if (end == std::string::npos) break;
    begin = end + 1;
  }
  return dims;
}

// A DeepSeek-style MoE FFN block: router gate, routing, routed experts plus shared experts. The
// weights are graph inputs: the timing model needs their shapes, never their values.
void build_moe_block(Graph& g, std::int64_t tokens, std::int64_t hidden, std::int64_t experts,
                     std::int64_t width, std::int64_t shared_width, const moe::RouterAttrs& router,
                     bool shared_gated, DType t) {
  auto x = g.input("x", {tokens, hidden}, t);
  auto gate_w = g.input("router.weight", {experts, hidden}, t);
  auto logits = g.name(g.matmul(x, gate_w, {false, true}), "router_logits");
  auto route = g.moe_router(logits, router);
  MoeExpertWeights w;
  w.gate = g.input("experts.gate", {experts, width, hidden}, t);
  w.up = g.input("experts.up", {experts, width, hidden}, t);
  w.down = g.input("experts.down", {experts, hidden, width}, t);
  moe::ExpertsAttrs attrs;
  if (shared_width > 0) {
    w.shared_gate = g.input("shared.gate", {shared_width, hidden}, t);
    w.shared_up = g.input("shared.up", {shared_width, hidden}, t);
    w.shared_down = g.input("shared.down", {hidden, shared_width}, t);
    attrs.has_shared = true;
    if (shared_gated) {
      w.shared_gate_weight = g.input("shared.gate_weight", {1, hidden}, t);
      attrs.shared_gate = moe::SharedGate::Sigmoid;
    }
  }
  g.output("y", g.name(g.moe_experts(x, route, w, attrs), "moe_experts"));
}

bool is_attribute_free_unary(OpKind op) {
#define PORTA_SIM_UNARY(X, kind, name, summary) \
  if (op == OpKind::kind) return true;
  PORTA_UNARY_OP_LIST(unused, PORTA_SIM_UNARY)
#undef PORTA_SIM_UNARY
  return false;
}

void build_op(Graph& g, const SimArgs& a, DType t) {
  if (a.shape.empty())
    throw Error(ErrorCode::InvalidArgument, "--op needs --shape (e.g. --shape 512x2048)");
  const Shape shape(parse_dims(a.shape, "--shape"));
  const OpKind op = parse_op(a.op);
  auto x = g.input("x", shape, t);
  const Shape row{shape.rank() > 0 ? shape[-1] : 1};
  Value y;
  if (op == OpKind::Add || op == OpKind::Sub || op == OpKind::Mul || op == OpKind::Div ||
      op == OpKind::Swiglu) {
    y = g.add_op(op, {x, g.input("y", shape, t)})[0];
  } else if (is_attribute_free_unary(op) || op == OpKind::Gelu || op == OpKind::Softmax) {
    y = g.add_op(op, {x})[0];
  } else if (op == OpKind::RmsNorm) {
    y = g.rms_norm(x, g.input("w", row, t));
  } else if (op == OpKind::LayerNorm) {
    y = g.layer_norm(x, g.input("w", row, t));
  } else if (op == OpKind::Cast) {
    y = g.cast(x, t == DType::F32 ? DType::F16 : DType::F32);
  } else {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("porta sim --op runs one-input elementwise ops, binary ops, "
                            "softmax, rms_norm, layer_norm, swiglu and cast; use --matmul for "
                            "matmul, --moe-layer or --model for MoE blocks ({} is not one)",
                            a.op));
  }
  g.output("y", y);
}

std::string side_by_side(const npu_sim::GraphReport& a, const npu_sim::GraphReport& b) {
  std::string out = fmt::format("{:<14} {:<24} {:>14} {:>14} {:>9}\n", "op", "node",
                                a.profile + " (us)", b.profile + " (us)", "ratio");
  for (std::size_t i = 0; i < a.ops.size() && i < b.ops.size(); ++i)
    out += fmt::format("{:<14} {:<24} {:>14.2f} {:>14.2f} {:>9.2f}\n", a.ops[i].op,
                       a.ops[i].node.substr(0, 24), a.ops[i].time_us, b.ops[i].time_us,
                       a.ops[i].time_us > 0 ? b.ops[i].time_us / a.ops[i].time_us : 0.0);
  out +=
      fmt::format("{:<39} {:>14.2f} {:>14.2f} {:>9.2f}  ({} / {})\n", "total", a.total_us,
                  b.total_us, a.total_us > 0 ? b.total_us / a.total_us : 0.0, b.profile, a.profile);
  return out;
}

}  // namespace

Command add_sim_command(CLI::App& app) {
  auto a = std::make_shared<SimArgs>();
  app.add_option("-p,--profile", a->profile,
                 "npu-sim profile: a built-in name (910b1, 910b2, 910b3, 910b4, 910a, h20) or a "
                 "JSON file (file=PATH or PATH.json)");
  app.add_option("--compare", a->compare, "A second profile, timed side by side (e.g. h20)");
  app.add_option("--matmul", a->matmul, "One matmul shape MxNxK");
  app.add_option("--batch", a->batch, "Batch of the --matmul");
  app.add_option("--op", a->op, "One op by name (softmax, rms_norm, add, silu, ...)");
  app.add_option("--shape", a->shape, "The --op's input shape, e.g. 512x2048");
  app.add_flag("--moe-layer", a->moe_layer,
               "A MoE FFN block, DeepSeek-V2-Lite-sized by default (see --hidden, --experts, ...)");
  app.add_option("--model", a->model, "A model's config.json (or its folder): one MoE block of it");
  app.add_option("--tokens", a->tokens, "Tokens of the MoE block (default 512)");
  app.add_option("--hidden", a->hidden, "--moe-layer: hidden size (2048)");
  app.add_option("--experts", a->experts, "--moe-layer: routed experts (64)");
  app.add_option("--expert-width", a->expert_width, "--moe-layer: expert intermediate size (1408)");
  app.add_option("--top-k", a->top_k, "--moe-layer: experts per token (6)");
  app.add_option("--shared", a->shared, "--moe-layer: shared experts (2)");
  app.add_option("--dtype", a->dtype,
                 "Activation and weight dtype (f16, bf16, f32; i8 for --matmul)");
  app.add_option("--trace", a->trace, "Write a Chrome trace (one track per core and pipe) here");
  app.add_flag("--print-profile", a->print_profile,
               "Print the profile as JSON (a starting point for your own)");
  return [a] {
    const auto profile = npu_sim::load_profile(a->profile);
    if (a->print_profile) {
      fmt::print("{}\n", npu_sim::profile_to_json(profile));
      return 0;
    }
    const DType t = parse_dtype(a->dtype);
    const int chosen = (!a->matmul.empty()) + (!a->op.empty()) + a->moe_layer + (!a->model.empty());
    if (chosen != 1) {
      fmt::print(stderr,
                 "porta sim: give exactly one of --matmul MxNxK, --op NAME --shape S, "
                 "--moe-layer, --model CONFIG\n");
      return kExitUsage;
    }
    if (!a->matmul.empty()) {
      const auto d = parse_dims(a->matmul, "--matmul");
      if (d.size() != 3)
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("--matmul '{}' needs three sizes MxNxK", a->matmul));
      std::vector<std::string> names{profile.name};
      std::vector<npu_sim::OpReport> reports{
          npu_sim::simulate_matmul(profile, d[0], d[1], d[2], t, a->batch)};
      if (!a->compare.empty()) {
        const auto other = npu_sim::load_profile(a->compare);
        names.push_back(other.name);
        reports.push_back(npu_sim::simulate_matmul(other, d[0], d[1], d[2], t, a->batch));
      }
      for (std::size_t i = 0; i < reports.size(); ++i) {
        const auto& r = reports[i];
        fmt::print(
            "{}: matmul {}x{}x{} {} (batch {}): {:.2f} us ({:.2f} launch), {:.1f} TFLOP/s, "
            "{:.1f}% of peak, HBM {:.1f}%, busiest pipe {} ({:.0f}%)\n  {}\n",
            names[i], d[0], d[1], d[2], dtype_name(t), a->batch, r.time_us, r.launch_us,
            r.flops / (r.time_us * 1e-6) * 1e-12, 100 * r.compute_utilization,
            100 * r.hbm_utilization, npu_sim::pipe_name(r.busiest),
            100 * r.pipe_busy[static_cast<std::size_t>(r.busiest)], r.tiling);
      }
      if (reports.size() == 2)
        fmt::print("{} / {} time: {:.2f}\n", names[1], names[0],
                   reports[1].time_us / reports[0].time_us);
      if (!a->trace.empty())
        fmt::print(stderr,
                   "porta sim: --trace is written for graphs (--op, --moe-layer, --model)\n");
      return 0;
    }
    Graph g;
    if (!a->op.empty()) {
      build_op(g, *a, t);
    } else if (a->moe_layer) {
      build_moe_block(g, a->tokens, a->hidden, a->experts, a->expert_width,
                      a->shared * a->expert_width, moe::deepseek_v2_lite(a->experts, a->top_k),
                      false, t);
    } else {
      const auto config = model::load_config(a->model);
      if (config.num_experts == 0)
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("--model {}: the config has no experts (num_experts 0); porta sim "
                                "times a model's MoE block",
                                a->model));
      build_moe_block(g, a->tokens, config.hidden_size, config.num_experts,
                      config.moe_intermediate_size, config.shared_intermediate_size, config.router,
                      config.shared_expert_gated, t);
    }
    npu_sim::SimulateOptions options;
    options.collect_spans = !a->trace.empty();
    const auto sim = npu_sim::simulate(g, profile, options);
    fmt::print("npu-sim {} ({})\n{}\n{}", profile.name, profile.description, sim.report.to_table(),
               sim.report.roofline_table(profile));
    if (!a->compare.empty()) {
      const auto other = npu_sim::load_profile(a->compare);
      const auto b = npu_sim::simulate(g, other);
      fmt::print("\nside by side: {} and {}\n{}", profile.name, other.name,
                 side_by_side(sim.report, b.report));
    }
    if (!a->trace.empty()) {
      std::ofstream out(a->trace, std::ios::binary);
      out << sim.to_chrome_trace();
      if (!out) throw Error(ErrorCode::Io, fmt::format("cannot write the trace to '{}'", a->trace));
      fmt::print("trace: {} ({} pipe spans{}), open it in Perfetto\n", a->trace, sim.spans.size(),
                 sim.spans_truncated ? ", truncated" : "");
    }
    return 0;
  };
}

}  // namespace porta::cli
