// `porta bench`: the same MoE-style layer on every backend, side by side: median wall time and
// its spread, throughput, and the largest error against the reference backend on the same inputs.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

#include <fmt/format.h>

#include <porta/porta.hpp>

#include "commands.hpp"

namespace porta::cli {

namespace {

struct BenchArgs {
  std::vector<std::string> backends;
  std::vector<std::int64_t> tokens{1, 64};
  std::string dtype = "f32";
  int repetitions = 5;
  std::int64_t hidden = 512;
  std::int64_t experts = 16;
  std::int64_t top_k = 4;
  std::int64_t inter = 512;
  std::uint64_t seed = 7;
};

Tensor random_tensor(std::mt19937_64& rng, Shape shape, DType dtype, float scale) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> values(static_cast<std::size_t>(shape.numel()));
  for (auto& v : values) v = dist(rng);
  return Tensor::from_f32(std::move(shape), dtype, values);
}

// One MoE transformer block's FFN half: norm, router, routed experts plus a shared expert,
// residual. Weights are random with a fixed seed; activations are f32, weights in `weight_dtype`.
Graph moe_layer(const BenchArgs& a, std::int64_t tokens, DType weight_dtype) {
  std::mt19937_64 rng(a.seed);
  const float w_scale = 1.0f / std::sqrt(static_cast<float>(a.hidden));
  Graph g;
  auto x = g.input("x", {tokens, a.hidden}, DType::F32);
  auto h = g.rms_norm(x, g.weight("norm", random_tensor(rng, {a.hidden}, DType::F32, 1.0f)));
  auto logits = g.matmul(
      h, g.weight("router", random_tensor(rng, {a.experts, a.hidden}, DType::F32, w_scale)),
      {false, true});
  auto route = g.moe_router(logits, moe::deepseek_v2_lite(a.experts, a.top_k));
  MoeExpertWeights w;
  w.gate = g.weight("experts.gate",
                    random_tensor(rng, {a.experts, a.inter, a.hidden}, weight_dtype, w_scale));
  w.up = g.weight("experts.up",
                  random_tensor(rng, {a.experts, a.inter, a.hidden}, weight_dtype, w_scale));
  w.down = g.weight("experts.down",
                    random_tensor(rng, {a.experts, a.hidden, a.inter}, weight_dtype, w_scale));
  w.shared_gate =
      g.weight("shared.gate", random_tensor(rng, {a.inter, a.hidden}, weight_dtype, w_scale));
  w.shared_up =
      g.weight("shared.up", random_tensor(rng, {a.inter, a.hidden}, weight_dtype, w_scale));
  w.shared_down =
      g.weight("shared.down", random_tensor(rng, {a.hidden, a.inter}, weight_dtype, w_scale));
  auto y = g.moe_experts(h, route, w);
  g.output("y", x + y);
  return g;
}

double max_normalised_error(const Tensor& got, const Tensor& want) {
  const auto a = got.to_f32();
  const auto b = want.to_f32();
  double scale = 0, worst = 0;
  for (float v : b) scale = std::max(scale, static_cast<double>(std::fabs(v)));
  if (scale == 0) scale = 1;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(static_cast<double>(a[i]) - b[i]);
    worst = std::max(worst, std::isnan(d) ? INFINITY : d / scale);
  }
  return worst;
}

struct Row {
  std::string backend;
  std::int64_t tokens;
  double median_ms, min_ms, max_ms, gflops, tokens_per_s, error;
  double device_ms = -1;
  std::string note;
};

}  // namespace

Command add_bench_command(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  app.add_option("-b,--backend", a->backends, "Backends to compare (default: every available one)")
      ->delimiter(',');
  app.add_option("-t,--tokens", a->tokens, "Token counts")
      ->delimiter(',')
      ->check(CLI::PositiveNumber);
  app.add_option("--dtype", a->dtype, "Expert weight dtype (f32, bf16, f16)");
  app.add_option("-r,--repetitions", a->repetitions, "Timed runs per case (median reported)")
      ->check(CLI::Range(1, 1000));
  app.add_option("--hidden", a->hidden, "Hidden size")->check(CLI::PositiveNumber);
  app.add_option("--experts", a->experts, "Routed experts")->check(CLI::PositiveNumber);
  app.add_option("--top-k", a->top_k, "Experts per token")->check(CLI::PositiveNumber);
  app.add_option("--inter", a->inter, "Expert width")->check(CLI::PositiveNumber);
  return [a] {
    const DType weight_dtype = parse_dtype(a->dtype);
    if (!is_floating(weight_dtype) || weight_dtype == DType::F8E4M3)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("bench weights must be f32, f16 or bf16, not {}", a->dtype));
    std::vector<std::string> backends = a->backends;
    if (backends.empty())
      for (const auto& d : list_devices())
        if (d.available) backends.push_back(d.name);
    fmt::print(
        "MoE layer: hidden {}, {} routed experts of width {}, top-{} softmax routing, 1 shared "
        "expert, "
        "{} weights; {} runs per case\n\n",
        a->hidden, a->experts, a->inter, a->top_k, dtype_name(weight_dtype), a->repetitions);
    std::vector<Row> rows;
    for (auto tokens : a->tokens) {
      const Graph g = moe_layer(*a, tokens, weight_dtype);
      std::mt19937_64 rng(a->seed + static_cast<std::uint64_t>(tokens));
      const std::map<std::string, Tensor> inputs{
          {"x", random_tensor(rng, {tokens, a->hidden}, DType::F32, 1.0f)}};
      const Tensor want = compile(g, {.backend = "reference"}).run(inputs).at("y");
      for (const auto& backend : backends) {
        Row row{backend, tokens, 0, 0, 0, 0, 0, 0};
        auto exe = compile(g, {.backend = backend});
        for (const auto& p : exe.placement())
          if (!p.reason.empty() && row.note.empty())
            row.note = fmt::format("{} on {}", p.op, p.backend);
        Tensor got = exe.run(inputs).at("y");  // warm-up
        row.error = max_normalised_error(got, want);
        std::vector<double> ms;
        double flops = 0, device_us = 0;
        bool modelled = false;
        for (int r = 0; r < a->repetitions; ++r) {
          const auto start = std::chrono::steady_clock::now();
          exe.run(inputs);
          ms.push_back(
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                  .count());
          flops = 0;
          device_us = 0;
          for (const auto& op : exe.profile().ops) {
            flops += op.flops;
            if (op.device_us >= 0) {
              device_us += op.device_us;
              modelled = true;
            }
          }
        }
        std::sort(ms.begin(), ms.end());
        row.median_ms = ms[ms.size() / 2];
        row.min_ms = ms.front();
        row.max_ms = ms.back();
        row.gflops = flops / (row.median_ms * 1e-3) * 1e-9;
        row.tokens_per_s = static_cast<double>(tokens) / (row.median_ms * 1e-3);
        if (modelled) row.device_ms = device_us * 1e-3;
        rows.push_back(row);
      }
    }
    fmt::print("| {:<16} | {:>6} | {:>11} | {:>17} | {:>12} | {:>9} | {:>11} | {:>9} | {}\n",
               "backend", "tokens", "median ms", "spread ms", "tokens/s", "GFLOP/s", "device ms",
               "max err", "notes");
    fmt::print("|{:-<18}|{:->8}|{:->13}|{:->19}|{:->14}|{:->11}|{:->13}|{:->11}|------\n", "", "",
               "", "", "", "", "", "");
    for (const auto& r : rows)
      fmt::print(
          "| {:<16} | {:>6} | {:>11.3f} | {:>7.3f} .. {:>7.3f} | {:>12.1f} | {:>9.2f} | {:>11} | "
          "{:>9.1e} | {}\n",
          r.backend, r.tokens, r.median_ms, r.min_ms, r.max_ms, r.tokens_per_s, r.gflops,
          r.device_ms >= 0 ? fmt::format("{:.3f}", r.device_ms) : "-", r.error, r.note);
    return 0;
  };
}

}  // namespace porta::cli
