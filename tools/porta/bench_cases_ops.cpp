// Single-op bench cases: matmul, grouped_matmul, moe_router, rms_norm, softmax and attention, at
// the sizes they have inside the MoE models porta targets. The dtype applies to every floating
// operand; "tokens" is the number of rows (the sequence length for attention).
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "bench_case.hpp"

namespace porta::cli::bench {

namespace {

float fan_in_scale(std::int64_t fan_in) {
  return 1.0f / std::sqrt(static_cast<float>(std::max<std::int64_t>(fan_in, 1)));
}

CaseFamily matmul_family() {
  CaseFamily f;
  f.name = "matmul";
  f.prefix_independent = true;
  f.kind = "op";
  f.summary = "x[T, K] · w[N, K]ᵀ, the nn.Linear layout";
  f.tokens_meaning = "rows of x";
  f.configs = {
      {"2048x2048", "a DeepSeek-V2-Lite projection (K = N = 2048)", {{"k", 2048}, {"n", 2048}}},
      {"4096x14336", "a Mixtral-8x7B expert's up projection", {{"k", 4096}, {"n", 14336}}},
      {"tiny", "K = 32, N = 16", {{"k", 32}, {"n", 16}}},
  };
  f.build = [](const CaseConfig& c, const CaseParams& p, TensorCache& cache) {
    const auto k = dim(c, "k"), n = dim(c, "n");
    BuiltCase b;
    auto x = b.graph.input("x", {p.tokens, k}, p.dtype);
    auto w = b.graph.weight("w", cache.random("w", {n, k}, p.dtype, fan_in_scale(k)));
    b.graph.output("y", b.graph.matmul(x, w, {false, true}));
    b.inputs["x"] = random_input(cache, "x", {p.tokens, k}, p.dtype);
    b.description = fmt::format("x[{}, {}] · w[{}, {}]ᵀ", p.tokens, k, n, k);
    return b;
  };
  return f;
}

// Rows spread over experts as a router would spread them: each of the T·K rows to a random expert.
Tensor random_offsets(std::int64_t rows, std::int64_t experts, std::uint64_t seed) {
  std::vector<std::int32_t> counts(static_cast<std::size_t>(experts), 0);
  std::uint64_t state = seed * 0x9e3779b97f4a7c15ull + 1;
  for (std::int64_t r = 0; r < rows; ++r) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    counts[static_cast<std::size_t>((state >> 33) % static_cast<std::uint64_t>(experts))]++;
  }
  std::vector<std::int32_t> offsets(static_cast<std::size_t>(experts + 1), 0);
  for (std::size_t e = 0; e < counts.size(); ++e) offsets[e + 1] = offsets[e] + counts[e];
  return Tensor::from_vector<std::int32_t>({experts + 1}, offsets);
}

CaseFamily grouped_matmul_family() {
  CaseFamily f;
  f.name = "grouped_matmul";
  f.kind = "op";
  f.summary = "ragged per-expert matmul of T·top_k routed rows";
  f.tokens_meaning = "tokens (rows = tokens · top_k)";
  f.configs = {
      {"v2-lite",
       "DeepSeek-V2-Lite gate projection: 64 experts, H 2048 -> 1408, top-6",
       {{"experts", 64}, {"hidden", 2048}, {"n", 1408}, {"top_k", 6}}},
      {"tiny",
       "4 experts, H 32 -> 16, top-2",
       {{"experts", 4}, {"hidden", 32}, {"n", 16}, {"top_k", 2}}},
  };
  f.build = [](const CaseConfig& c, const CaseParams& p, TensorCache& cache) {
    const auto e = dim(c, "experts"), h = dim(c, "hidden"), n = dim(c, "n"),
               rows = p.tokens * dim(c, "top_k");
    BuiltCase b;
    auto x = b.graph.input("rows", {rows, h}, p.dtype);
    auto offsets = b.graph.input("offsets", {e + 1}, DType::I32);
    auto w = b.graph.weight("w", cache.random("w", {e, n, h}, p.dtype, fan_in_scale(h)));
    b.graph.output("y", b.graph.grouped_matmul(x, w, offsets));
    b.inputs["rows"] = random_input(cache, "rows", {rows, h}, p.dtype);
    b.inputs["offsets"] = random_offsets(rows, e, p.seed + static_cast<std::uint64_t>(p.tokens));
    b.description = fmt::format("rows[{}, {}] over {} experts of w[{}, {}]", rows, h, e, n, h);
    return b;
  };
  return f;
}

moe::RouterAttrs router_preset(const std::string& config, std::int64_t experts, std::int64_t k) {
  if (config == "v3") return moe::deepseek_v3(experts, k);
  if (config == "mixtral") return moe::mixtral(experts, k);
  if (config == "qwen3") return moe::qwen3_moe(experts, k);
  return moe::deepseek_v2_lite(experts, k);
}

CaseFamily moe_router_family() {
  CaseFamily f;
  f.name = "moe_router";
  f.kind = "op";
  f.summary = "routing of router logits[T, E] to top-k experts (scores, ids, permutation)";
  f.configs = {
      {"v2-lite", "DeepSeek-V2-Lite: 64 experts, top-6 softmax", {{"experts", 64}, {"top_k", 6}}},
      {"v3",
       "DeepSeek-V3: 256 experts, top-8 sigmoid, 8 groups, bias",
       {{"experts", 256}, {"top_k", 8}}},
      {"mixtral",
       "Mixtral: 8 experts, top-2 softmax over the selected",
       {{"experts", 8}, {"top_k", 2}}},
      {"qwen3", "Qwen3-MoE: 128 experts, top-8", {{"experts", 128}, {"top_k", 8}}},
      {"tiny", "8 experts, top-2 softmax", {{"experts", 8}, {"top_k", 2}}},
  };
  f.build = [](const CaseConfig& c, const CaseParams& p, TensorCache& cache) {
    const auto e = dim(c, "experts");
    const auto attrs = router_preset(c.name, e, dim(c, "top_k"));
    BuiltCase b;
    auto logits = b.graph.input("logits", {p.tokens, e}, p.dtype);
    std::optional<Value> bias;
    if (attrs.use_bias) {
      bias = b.graph.weight("bias", cache.random("bias", {e}, DType::F32, 0.1f));
    }
    const auto route = b.graph.moe_router(logits, attrs, bias);
    b.graph.output("ids", route.ids);
    b.graph.output("weights", route.weights);
    b.graph.output("perm", route.perm);
    b.inputs["logits"] = random_input(cache, "logits", {p.tokens, e}, p.dtype);
    b.description = fmt::format("logits[{}, {}], top-{}", p.tokens, e, attrs.top_k);
    return b;
  };
  return f;
}

CaseFamily rms_norm_family() {
  CaseFamily f;
  f.name = "rms_norm";
  f.prefix_independent = true;
  f.kind = "op";
  f.summary = "RMS normalisation of x[T, H] with a weight[H]";
  f.configs = {
      {"2048", "DeepSeek-V2-Lite hidden size", {{"hidden", 2048}}},
      {"7168", "DeepSeek-V3 hidden size", {{"hidden", 7168}}},
      {"tiny", "H = 32", {{"hidden", 32}}},
  };
  f.build = [](const CaseConfig& c, const CaseParams& p, TensorCache& cache) {
    const auto h = dim(c, "hidden");
    BuiltCase b;
    auto x = b.graph.input("x", {p.tokens, h}, p.dtype);
    auto w = b.graph.weight("w", cache.random("w", {h}, p.dtype, 1.0f));
    b.graph.output("y", b.graph.rms_norm(x, w));
    b.inputs["x"] = random_input(cache, "x", {p.tokens, h}, p.dtype);
    b.description = fmt::format("x[{}, {}]", p.tokens, h);
    return b;
  };
  return f;
}

CaseFamily softmax_family() {
  CaseFamily f;
  f.name = "softmax";
  f.prefix_independent = true;
  f.kind = "op";
  f.summary = "softmax of x[T, N] along its last axis";
  f.configs = {
      {"4096", "N = 4096 (attention scores of a 4k context)", {{"n", 4096}}},
      {"102400", "N = 102400 (the DeepSeek-V2 vocabulary)", {{"n", 102400}}},
      {"tiny", "N = 64", {{"n", 64}}},
  };
  f.build = [](const CaseConfig& c, const CaseParams& p, TensorCache& cache) {
    const auto n = dim(c, "n");
    BuiltCase b;
    auto x = b.graph.input("x", {p.tokens, n}, p.dtype);
    b.graph.output("y", b.graph.softmax(x));
    b.inputs["x"] = random_input(cache, "x", {p.tokens, n}, p.dtype);
    b.description = fmt::format("x[{}, {}]", p.tokens, n);
    return b;
  };
  return f;
}

CaseFamily attention_family() {
  CaseFamily f;
  f.name = "attention";
  f.prefix_independent = true;
  f.kind = "op";
  f.summary = "causal grouped-query attention over a whole sequence (prefill)";
  f.tokens_meaning = "sequence length";
  f.configs = {
      {"gqa-32x8",
       "32 query heads, 8 key/value heads of 128 (Llama-3-8B, Mixtral)",
       {{"q_heads", 32}, {"kv_heads", 8}, {"head_dim", 128}}},
      {"mha-16",
       "16 heads of 128, no grouping (DeepSeek-V2-Lite's head count)",
       {{"q_heads", 16}, {"kv_heads", 16}, {"head_dim", 128}}},
      {"tiny",
       "4 query heads, 2 key/value heads of 16",
       {{"q_heads", 4}, {"kv_heads", 2}, {"head_dim", 16}}},
  };
  f.build = [](const CaseConfig& c, const CaseParams& p, TensorCache& cache) {
    const auto hq = dim(c, "q_heads"), hkv = dim(c, "kv_heads"), d = dim(c, "head_dim");
    const auto t = p.tokens;
    BuiltCase b;
    auto q = b.graph.input("q", {t, hq, d}, p.dtype);
    auto k = b.graph.input("k", {t, hkv, d}, p.dtype);
    auto v = b.graph.input("v", {t, hkv, d}, p.dtype);
    b.graph.output("y", b.graph.attention(q, k, v));
    for (const auto& [name, heads] : {std::pair{"q", hq}, {"k", hkv}, {"v", hkv}})
      b.inputs[name] = random_input(cache, name, {t, heads, d}, p.dtype);
    b.description = fmt::format("q[{}, {}, {}], kv[{}, {}, {}], causal", t, hq, d, t, hkv, d);
    return b;
  };
  return f;
}

const CaseRegistrar matmul_registrar{matmul_family()};
const CaseRegistrar grouped_matmul_registrar{grouped_matmul_family()};
const CaseRegistrar moe_router_registrar{moe_router_family()};
const CaseRegistrar rms_norm_registrar{rms_norm_family()};
const CaseRegistrar softmax_registrar{softmax_family()};
const CaseRegistrar attention_registrar{attention_family()};

}  // namespace

}  // namespace porta::cli::bench
