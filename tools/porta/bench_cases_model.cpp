// Whole-model bench cases: token ids in, logits out, through a stack of transformer blocks
// (rms_norm, rotary grouped-query attention, MoE feed-forward) built with the graph API from
// random weights of a fixed seed.
//
// Checkpoint-based models plug in here, when the model builder (include/porta/model/) lands:
// set the family's `resolve_config` to accept a checkpoint directory ("model:PATH" on the command
// line, a CaseConfig named by the path with no dims), and have `build` hand such a config to the
// model builder for the graph and its weights (the token ids and positions are made as below).
// Every other part of `porta bench` (sweeps, reference check, formats, compare, plot) works on
// any BuiltCase unchanged. Until then the family has random transformer stacks.
#include <cmath>

#include <fmt/format.h>

#include "bench_case.hpp"

namespace porta::cli::bench {

namespace {

float scale_of(std::int64_t fan_in) { return 1.0f / std::sqrt(static_cast<float>(fan_in)); }

// x + o(attention(rope(q(n)), rope(k(n)), v(n))) with n = rms_norm(x): one block's first half.
Value attention_block(Graph& g, Value x, Value positions, const CaseConfig& c, DType dtype,
                      TensorCache& cache, const std::string& prefix) {
  const auto h = dim(c, "hidden"), hq = dim(c, "q_heads"), hkv = dim(c, "kv_heads"),
             d = dim(c, "head_dim"), t = x.shape()[0];
  auto w = [&](const std::string& name, const Shape& shape, DType wt, float scale) {
    return g.weight(prefix + name, cache.random(prefix + name, shape, wt, scale));
  };
  auto n = g.rms_norm(x, w("attn_norm", {h}, DType::F32, 1.0f));
  auto project = [&](const char* name, std::int64_t heads) {
    auto y = g.matmul(n, w(name, {heads * d, h}, dtype, scale_of(h)), {false, true});
    return g.reshape(y, {t, heads, d});
  };
  auto q = g.rope(project("q", hq), positions);
  auto k = g.rope(project("k", hkv), positions);
  auto v = project("v", hkv);
  auto a = g.reshape(g.attention(q, k, v), {t, hq * d});
  return x + g.matmul(a, w("o", {h, hq * d}, dtype, scale_of(hq * d)), {false, true});
}

BuiltCase build_moe_stack(const CaseConfig& c, const CaseParams& p, TensorCache& cache) {
  const auto layers = dim(c, "layers"), h = dim(c, "hidden"), vocab = dim(c, "vocab");
  const auto t = p.tokens;
  const MoeBlockDims moe = moe_block_dims(c, "v2-lite");
  BuiltCase b;
  Graph& g = b.graph;
  auto ids = g.input("ids", {t}, DType::I32);
  auto positions = g.input("positions", {t}, DType::I32);
  // Tied input and output embeddings, as small models have them.
  auto table = g.weight("embed", cache.random("embed", {vocab, h}, DType::F32, 1.0f));
  auto x = g.embedding(table, ids);
  for (std::int64_t l = 0; l < layers; ++l) {
    const std::string prefix = fmt::format("layers.{}.", l);
    x = attention_block(g, x, positions, c, p.dtype, cache, prefix);
    x = moe_block(g, x, moe, p.dtype, cache, prefix + "moe.");
  }
  auto n = g.rms_norm(x, g.weight("final_norm", cache.random("final_norm", {h}, DType::F32, 1.0f)));
  g.output("logits", g.matmul(n, table, {false, true}));

  std::vector<std::int32_t> id_values(static_cast<std::size_t>(t)), pos_values(id_values.size());
  std::uint64_t state = p.seed * 0x9e3779b97f4a7c15ull + static_cast<std::uint64_t>(t);
  for (std::size_t i = 0; i < id_values.size(); ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    id_values[i] = static_cast<std::int32_t>((state >> 33) % static_cast<std::uint64_t>(vocab));
    pos_values[i] = static_cast<std::int32_t>(i);
  }
  b.inputs["ids"] = Tensor::from_vector<std::int32_t>({t}, id_values);
  b.inputs["positions"] = Tensor::from_vector<std::int32_t>({t}, pos_values);
  b.description = fmt::format(
      "{} layers, hidden {}, {}/{} heads of {}, {} experts of {} (top-{}), "
      "{} shared, vocab {}",
      layers, h, dim(c, "q_heads"), dim(c, "kv_heads"), dim(c, "head_dim"), moe.experts, moe.inter,
      moe.top_k, moe.shared, vocab);
  return b;
}

Dims stack_dims(std::int64_t layers, std::int64_t hidden, std::int64_t q_heads,
                std::int64_t kv_heads, std::int64_t head_dim, std::int64_t experts,
                std::int64_t inter, std::int64_t top_k, std::int64_t shared, std::int64_t vocab) {
  return {{"layers", layers},     {"hidden", hidden},     {"q_heads", q_heads},
          {"kv_heads", kv_heads}, {"head_dim", head_dim}, {"experts", experts},
          {"inter", inter},       {"top_k", top_k},       {"shared", shared},
          {"vocab", vocab}};
}

CaseFamily model_family() {
  CaseFamily f;
  f.name = "model";
  f.prefix_independent = true;
  f.kind = "model";
  f.summary = "a whole model: embedding, transformer blocks (attention + MoE), logits";
  f.tokens_meaning = "prompt tokens (one prefill step)";
  f.configs = {
      {"moe-stack",
       "4 layers, hidden 1024, 16/4 heads of 64, 8 experts of 512 (top-2) + 1 shared, vocab 32000",
       stack_dims(4, 1024, 16, 4, 64, 8, 512, 2, 1, 32000)},
      {"tiny", "2 layers, hidden 32, 4/2 heads of 8, 4 experts of 16 (top-2) + 1 shared, vocab 64",
       stack_dims(2, 32, 4, 2, 8, 4, 16, 2, 1, 64)},
  };
  f.build = build_moe_stack;
  return f;
}

const CaseRegistrar model_registrar{model_family()};

}  // namespace

}  // namespace porta::cli::bench
