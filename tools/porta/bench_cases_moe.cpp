// The MoE layer bench case: one transformer block's feed-forward half as the MoE models have it
// (norm, router, routed experts plus shared experts, residual), at the sizes of real checkpoints.
// Weights are random with a fixed seed, in the bench dtype; activations are f32.
#include <cmath>

#include <fmt/format.h>

#include "bench_case.hpp"

namespace porta::cli::bench {

MoeBlockDims moe_block_dims(const CaseConfig& config, std::string router) {
  return {dim(config, "hidden"), dim(config, "experts"), dim(config, "inter"),
          dim(config, "top_k"),  dim(config, "shared"),  std::move(router)};
}

namespace {

moe::RouterAttrs router_attrs(const MoeBlockDims& d) {
  if (d.router == "mixtral") return moe::mixtral(d.experts, d.top_k);
  if (d.router == "qwen2") return moe::qwen2_moe(d.experts, d.top_k);
  if (d.router == "olmoe") return moe::olmoe(d.experts, d.top_k);
  return moe::deepseek_v2_lite(d.experts, d.top_k);
}

}  // namespace

Value moe_block(Graph& g, Value x, const MoeBlockDims& d, DType weight_dtype, TensorCache& cache,
                const std::string& prefix) {
  const float in_scale = 1.0f / std::sqrt(static_cast<float>(d.hidden));
  const float out_scale = 1.0f / std::sqrt(static_cast<float>(d.inter));
  auto w = [&](const std::string& name, const Shape& shape, DType dtype, float scale) {
    return g.weight(prefix + name, cache.random(prefix + name, shape, dtype, scale));
  };
  auto h = g.rms_norm(x, w("norm", {d.hidden}, DType::F32, 1.0f));
  auto logits =
      g.matmul(h, w("router", {d.experts, d.hidden}, DType::F32, in_scale), {false, true});
  const auto route = g.moe_router(logits, router_attrs(d));
  MoeExpertWeights ew;
  ew.gate = w("experts.gate", {d.experts, d.inter, d.hidden}, weight_dtype, in_scale);
  ew.up = w("experts.up", {d.experts, d.inter, d.hidden}, weight_dtype, in_scale);
  ew.down = w("experts.down", {d.experts, d.hidden, d.inter}, weight_dtype, out_scale);
  moe::ExpertsAttrs attrs;
  if (d.shared > 0) {
    // Shared experts run on every token; n of width I are one MLP of width n·I (as DeepSeek's
    // reference code builds them).
    const std::int64_t width = d.shared * d.inter;
    ew.shared_gate = w("shared.gate", {width, d.hidden}, weight_dtype, in_scale);
    ew.shared_up = w("shared.up", {width, d.hidden}, weight_dtype, in_scale);
    ew.shared_down = w("shared.down", {d.hidden, width}, weight_dtype,
                       1.0f / std::sqrt(static_cast<float>(width)));
    if (d.router == "qwen2") {
      ew.shared_gate_weight = w("shared.gate_weight", {1, d.hidden}, weight_dtype, in_scale);
      attrs.shared_gate = moe::SharedGate::Sigmoid;
    }
  }
  return x + g.moe_experts(h, route, ew, attrs);
}

namespace {

Dims moe_dims(std::int64_t hidden, std::int64_t experts, std::int64_t inter, std::int64_t top_k,
              std::int64_t shared) {
  return {{"hidden", hidden},
          {"experts", experts},
          {"inter", inter},
          {"top_k", top_k},
          {"shared", shared}};
}

std::string router_of(const std::string& config) {
  if (config.starts_with("mixtral")) return "mixtral";
  if (config.starts_with("qwen2")) return "qwen2";
  if (config.starts_with("olmoe")) return "olmoe";
  return "v2-lite";
}

CaseFamily moe_layer_family() {
  CaseFamily f;
  f.name = "moe_layer";
  f.prefix_independent = true;
  f.kind = "layer";
  f.summary = "an MoE block: rms_norm, router, routed + shared experts, residual";
  f.configs = {
      {"v2-lite",
       "DeepSeek-V2-Lite: hidden 2048, 64 experts of 1408, top-6 softmax, 2 shared experts",
       moe_dims(2048, 64, 1408, 6, 2)},
      {"qwen2-moe",
       "Qwen1.5-MoE-A2.7B: hidden 2048, 60 experts of 1408, top-4, 4 sigmoid-gated shared",
       moe_dims(2048, 60, 1408, 4, 4)},
      {"olmoe", "OLMoE-1B-7B: hidden 2048, 64 experts of 1024, top-8, no shared",
       moe_dims(2048, 64, 1024, 8, 0)},
      {"mixtral-8x7b", "Mixtral-8x7B: hidden 4096, 8 experts of 14336, top-2",
       moe_dims(4096, 8, 14336, 2, 0)},
      {"small", "hidden 512, 16 experts of 512, top-4, 1 shared", moe_dims(512, 16, 512, 4, 1)},
      {"tiny", "hidden 32, 4 experts of 16, top-2, 1 shared", moe_dims(32, 4, 16, 2, 1)},
  };
  f.build = [](const CaseConfig& c, const CaseParams& p, TensorCache& cache) {
    const auto d = moe_block_dims(c, router_of(c.name));
    BuiltCase b;
    auto x = b.graph.input("x", {p.tokens, d.hidden}, DType::F32);
    b.graph.output("y", moe_block(b.graph, x, d, p.dtype, cache, ""));
    b.inputs["x"] = random_input(cache, "x", {p.tokens, d.hidden}, DType::F32);
    b.description = fmt::format("x[{}, {}], {} experts of {} (top-{}), {} shared", p.tokens,
                                d.hidden, d.experts, d.inter, d.top_k, d.shared);
    return b;
  };
  return f;
}

const CaseRegistrar moe_layer_registrar{moe_layer_family()};

}  // namespace

}  // namespace porta::cli::bench
