// The conformance cases: for every op of the catalogue, small graphs at several shapes and
// attribute settings. Each case builds one op (plus its inputs) so that a backend is checked op by
// op; MoE companion ops get their routing tables from an independent generator here rather than
// from the router, so each is checked on its own.
#include "check/cases.hpp"

#include <algorithm>
#include <numeric>

#include <fmt/format.h>

namespace porta::check::detail {

Value CaseBuilder::input(const std::string& name, Shape shape, float lo, float hi) {
  Tensor t = random_tensor(std::move(shape), lo, hi, dtype);
  Value v = graph.input(name, t.shape(), t.dtype());
  inputs[name] = std::move(t);
  return v;
}

Value CaseBuilder::weight(const std::string& name, Shape shape, float lo, float hi) {
  return graph.weight(name, random_tensor(std::move(shape), lo, hi, dtype));
}

Value CaseBuilder::input_f32(const std::string& name, Shape shape, float lo, float hi) {
  Tensor t = random_tensor(std::move(shape), lo, hi, DType::F32);
  Value v = graph.input(name, t.shape(), t.dtype());
  inputs[name] = std::move(t);
  return v;
}

Value CaseBuilder::exact_input(const std::string& name, Tensor value) {
  Value v = graph.input(name, value.shape(), value.dtype());
  inputs[name] = std::move(value);
  return v;
}

Tensor CaseBuilder::random_tensor(Shape shape, float lo, float hi, DType store) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> values(static_cast<std::size_t>(shape.numel()));
  for (auto& v : values) {
    // Round through the case's dtype so both sides of the comparison see the same numbers.
    std::uint64_t narrow = 0;
    store_from_f32(&narrow, value_dtype, 0, dist(rng));
    v = load_as_f32(&narrow, value_dtype, 0);
  }
  return Tensor::from_f32(std::move(shape), store, values);
}

std::int64_t CaseBuilder::uniform_int(std::int64_t lo, std::int64_t hi) {
  return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
}

RandomRouting random_routing(std::mt19937_64& rng, std::int64_t tokens, std::int64_t experts,
                             std::int64_t k) {
  RandomRouting r;
  std::vector<std::int32_t> ids(static_cast<std::size_t>(tokens * k));
  std::vector<std::int32_t> order(static_cast<std::size_t>(experts));
  std::iota(order.begin(), order.end(), 0);
  for (std::int64_t t = 0; t < tokens; ++t) {
    std::shuffle(order.begin(), order.end(), rng);
    for (std::int64_t j = 0; j < k; ++j)
      ids[static_cast<std::size_t>(t * k + j)] = order[static_cast<std::size_t>(j)];
  }
  std::vector<std::int32_t> counts(static_cast<std::size_t>(experts), 0);
  for (auto id : ids) ++counts[static_cast<std::size_t>(id)];
  std::vector<std::int32_t> offsets(static_cast<std::size_t>(experts + 1), 0);
  for (std::int64_t e = 0; e < experts; ++e)
    offsets[static_cast<std::size_t>(e + 1)] =
        offsets[static_cast<std::size_t>(e)] + counts[static_cast<std::size_t>(e)];
  std::vector<std::int32_t> perm(ids.size());
  std::vector<std::int32_t> inv(ids.size());
  auto cursor = offsets;
  for (std::size_t a = 0; a < ids.size(); ++a) {  // ascending a: stable within each expert
    const auto slot = cursor[static_cast<std::size_t>(ids[a])]++;
    perm[static_cast<std::size_t>(slot)] = static_cast<std::int32_t>(a);
    inv[a] = slot;
  }
  std::uniform_real_distribution<float> dist(0.05f, 1.0f);
  std::vector<float> weights(ids.size());
  for (auto& w : weights) w = dist(rng);
  const auto tk = tokens * k;
  r.weights = Tensor::from_vector<float>({tokens, k}, weights);
  r.offsets = Tensor::from_vector<std::int32_t>({experts + 1}, offsets);
  r.perm = Tensor::from_vector<std::int32_t>({tk}, perm);
  r.inv = Tensor::from_vector<std::int32_t>({tk}, inv);
  return r;
}

void add_case(std::vector<CaseDef>& cases, OpKind op, std::string label,
              std::function<std::vector<Value>(CaseBuilder&)> build) {
  cases.push_back({op, std::move(label), std::move(build)});
}

namespace {

using Outs = std::vector<Value>;

void add(std::vector<CaseDef>& cases, OpKind op, std::string label,
         std::function<Outs(CaseBuilder&)> build) {
  add_case(cases, op, std::move(label), std::move(build));
}

Value positions_input(CaseBuilder& b, std::int64_t tokens, std::int64_t start) {
  std::vector<std::int32_t> p(static_cast<std::size_t>(tokens));
  std::iota(p.begin(), p.end(), static_cast<std::int32_t>(start));
  return b.exact_input("positions", Tensor::from_vector<std::int32_t>({tokens}, p));
}

void binary_cases(std::vector<CaseDef>& c, OpKind op) {
  add(c, op, "[4, 33] and [4, 33]", [op](CaseBuilder& b) -> Outs {
    auto x = b.input("a", {4, 33});
    auto y = op == OpKind::Div ? b.input("b", {4, 33}, 0.5f, 2.0f) : b.input("b", {4, 33});
    return {b.graph.add_op(op, {x, y})[0]};
  });
  add(c, op, "[2, 3, 16] and [16] (broadcast)", [op](CaseBuilder& b) -> Outs {
    auto x = b.input("a", {2, 3, 16});
    auto y = op == OpKind::Div ? b.weight("b", {16}, 0.5f, 2.0f) : b.weight("b", {16});
    return {b.graph.add_op(op, {x, y})[0]};
  });
  add(c, op, "[3, 1] and [1, 5] (both broadcast)", [op](CaseBuilder& b) -> Outs {
    auto x = b.input("a", {3, 1});
    auto y = op == OpKind::Div ? b.input("b", {1, 5}, 0.5f, 2.0f) : b.input("b", {1, 5});
    return {b.graph.add_op(op, {x, y})[0]};
  });
}

// Every attribute-free unary op gets the same cases, over a range where each is well-conditioned.
void unary_cases(std::vector<CaseDef>& c, OpKind op) {
  add(c, op, "[7, 65]", [op](CaseBuilder& b) -> Outs {
    return {b.graph.add_op(op, {b.input("x", {7, 65}, -4, 4)})[0]};
  });
  add(c, op, "[0, 8] (empty)", [op](CaseBuilder& b) -> Outs {
    return {b.graph.add_op(op, {b.input("x", {0, 8})})[0]};
  });
}

}  // namespace

// ---- the cases of each op (cases_<name>, one per op of the list) ------------------------------

void cases_add(std::vector<CaseDef>& c) { binary_cases(c, OpKind::Add); }
void cases_sub(std::vector<CaseDef>& c) { binary_cases(c, OpKind::Sub); }
void cases_mul(std::vector<CaseDef>& c) { binary_cases(c, OpKind::Mul); }
void cases_div(std::vector<CaseDef>& c) { binary_cases(c, OpKind::Div); }

#define PORTA_CHECK_UNARY_CASES(X, kind, name, summary) \
  void cases_##name(std::vector<CaseDef>& c) { unary_cases(c, OpKind::kind); }
PORTA_UNARY_OP_LIST(unused, PORTA_CHECK_UNARY_CASES)
#undef PORTA_CHECK_UNARY_CASES

void cases_gelu(std::vector<CaseDef>& c) {
  add(c, OpKind::Gelu, "[5, 40] exact", [](CaseBuilder& b) -> Outs {
    return {b.graph.gelu(b.input("x", {5, 40}, -4, 4))};
  });
  add(c, OpKind::Gelu, "[5, 40] tanh", [](CaseBuilder& b) -> Outs {
    return {b.graph.gelu(b.input("x", {5, 40}, -4, 4), {GeluApproximation::Tanh})};
  });
}

void cases_swiglu(std::vector<CaseDef>& c) {
  add(c, OpKind::Swiglu, "[6, 48]", [](CaseBuilder& b) -> Outs {
    return {b.graph.swiglu(b.input("gate", {6, 48}, -3, 3), b.input("up", {6, 48}))};
  });
}

void cases_softmax(std::vector<CaseDef>& c) {
  add(c, OpKind::Softmax, "[6, 100] axis -1", [](CaseBuilder& b) -> Outs {
    return {b.graph.softmax(b.input("x", {6, 100}, -5, 5))};
  });
  add(c, OpKind::Softmax, "[4, 9, 5] axis 1", [](CaseBuilder& b) -> Outs {
    return {b.graph.softmax(b.input("x", {4, 9, 5}, -5, 5), 1)};
  });
}

void cases_rms_norm(std::vector<CaseDef>& c) {
  add(c, OpKind::RmsNorm, "[5, 64]", [](CaseBuilder& b) -> Outs {
    return {b.graph.rms_norm(b.input("x", {5, 64}), b.weight("w", {64}, 0.5f, 1.5f), 1e-6f)};
  });
  add(c, OpKind::RmsNorm, "[2, 3, 130]", [](CaseBuilder& b) -> Outs {
    return {b.graph.rms_norm(b.input("x", {2, 3, 130}), b.weight("w", {130}, 0.5f, 1.5f), 1e-5f)};
  });
}

void cases_layer_norm(std::vector<CaseDef>& c) {
  add(c, OpKind::LayerNorm, "[5, 64] with bias", [](CaseBuilder& b) -> Outs {
    return {b.graph.layer_norm(b.input("x", {5, 64}, -2, 3), b.weight("w", {64}, 0.5f, 1.5f),
                               b.weight("b", {64}), 1e-5f)};
  });
  add(c, OpKind::LayerNorm, "[3, 31] no bias", [](CaseBuilder& b) -> Outs {
    return {b.graph.layer_norm(b.input("x", {3, 31}), b.weight("w", {31}, 0.5f, 1.5f), std::nullopt,
                               1e-5f)};
  });
}

void cases_top_k(std::vector<CaseDef>& c) {
  add(c, OpKind::TopK, "[5, 64] k=6 largest", [](CaseBuilder& b) -> Outs {
    auto [values, indices] = b.graph.top_k(b.input("x", {5, 64}), 6);
    return {values, indices};
  });
  add(c, OpKind::TopK, "[3, 2, 17] k=3 smallest", [](CaseBuilder& b) -> Outs {
    auto [values, indices] = b.graph.top_k(b.input("x", {3, 2, 17}), 3, false);
    return {values, indices};
  });
}

void cases_matmul(std::vector<CaseDef>& c) {
  add(c, OpKind::Matmul, "[9, 40]·[40, 24]", [](CaseBuilder& b) -> Outs {
    return {b.graph.matmul(b.input("a", {9, 40}), b.weight("b", {40, 24}))};
  });
  add(c, OpKind::Matmul, "[16, 64]·[48, 64]ᵀ", [](CaseBuilder& b) -> Outs {
    return {b.graph.matmul(b.input("a", {16, 64}), b.weight("b", {48, 64}), {false, true})};
  });
  add(c, OpKind::Matmul, "[3, 8, 20]ᵀ·[3, 8, 12] batched", [](CaseBuilder& b) -> Outs {
    return {b.graph.matmul(b.input("a", {3, 8, 20}), b.input("b", {3, 8, 12}), {true, false})};
  });
  add(c, OpKind::Matmul, "[2, 5, 32]·[32, 7] broadcast", [](CaseBuilder& b) -> Outs {
    return {b.graph.matmul(b.input("a", {2, 5, 32}), b.weight("b", {32, 7}))};
  });
  add(c, OpKind::Matmul, "[1, 256]·[256, 64] (decode)", [](CaseBuilder& b) -> Outs {
    return {b.graph.matmul(b.input("a", {1, 256}), b.weight("b", {256, 64}))};
  });
}

void cases_rope(std::vector<CaseDef>& c) {
  add(c, OpKind::Rope, "[5, 4, 32] neox", [](CaseBuilder& b) -> Outs {
    return {b.graph.rope(b.input("x", {5, 4, 32}), positions_input(b, 5, 3),
                         {10000.0f, 0, RopeLayout::NeoX, {}})};
  });
  add(c, OpKind::Rope, "[6, 2, 64] interleaved", [](CaseBuilder& b) -> Outs {
    return {b.graph.rope(b.input("x", {6, 2, 64}), positions_input(b, 6, 100),
                         {10000.0f, 0, RopeLayout::Interleaved, {}})};
  });
  add(c, OpKind::Rope, "[4, 3, 48] neox, rotary 16", [](CaseBuilder& b) -> Outs {
    return {b.graph.rope(b.input("x", {4, 3, 48}), positions_input(b, 4, 7),
                         {500000.0f, 16, RopeLayout::NeoX, {}})};
  });
  add(c, OpKind::Rope, "[3, 2, 64] interleaved YaRN (DeepSeek-V3)", [](CaseBuilder& b) -> Outs {
    RopeAttrs a;
    a.layout = RopeLayout::Interleaved;
    a.scaling = {RopeScalingType::Yarn, 40.0f, 4096, 32.0f, 1.0f, 1.0f, 1.0f};
    return {b.graph.rope(b.input("x", {3, 2, 64}), positions_input(b, 3, 5000), a)};
  });
}

void cases_embedding(std::vector<CaseDef>& c) {
  add(c, OpKind::Embedding, "[50, 24] by [7] ids", [](CaseBuilder& b) -> Outs {
    std::vector<std::int32_t> ids{0, 49, 3, 3, 17, 25, 1};
    return {b.graph.embedding(b.weight("table", {50, 24}),
                              b.exact_input("ids", Tensor::from_vector<std::int32_t>({7}, ids)))};
  });
  add(c, OpKind::Embedding, "[10, 8] by [2, 3] i64 ids", [](CaseBuilder& b) -> Outs {
    std::vector<std::int64_t> ids{9, 0, 4, 4, 2, 7};
    return {
        b.graph.embedding(b.weight("table", {10, 8}),
                          b.exact_input("ids", Tensor::from_vector<std::int64_t>({2, 3}, ids)))};
  });
}

void cases_attention(std::vector<CaseDef>& c) {
  add(c, OpKind::Attention, "q[5, 4, 32] kv[5, 2, 32] causal GQA", [](CaseBuilder& b) -> Outs {
    return {b.graph.attention(b.input("q", {5, 4, 32}), b.input("k", {5, 2, 32}),
                              b.input("v", {5, 2, 32}))};
  });
  add(c, OpKind::Attention, "q[3, 2, 48] k[7, 2, 48] v[7, 2, 32] not causal",
      [](CaseBuilder& b) -> Outs {
        return {b.graph.attention(b.input("q", {3, 2, 48}), b.input("k", {7, 2, 48}),
                                  b.input("v", {7, 2, 32}), {false, 0.1f, false})};
      });
  add(c, OpKind::Attention, "MLA-like Dk=192 Dv=128, KV cache 6 of 10", [](CaseBuilder& b) -> Outs {
    auto len = b.exact_input("cache_len", Tensor::from_vector<std::int32_t>({1}, {6}));
    return {b.graph.attention(b.input("q", {2, 2, 192}), b.input("k", {2, 2, 192}),
                              b.input("v", {2, 2, 128}), b.input("k_cache", {10, 2, 192}),
                              b.input("v_cache", {10, 2, 128}), len)};
  });
}

void cases_reshape(std::vector<CaseDef>& c) {
  add(c, OpKind::Reshape, "[4, 6] -> [2, -1, 3]", [](CaseBuilder& b) -> Outs {
    return {b.graph.reshape(b.input("x", {4, 6}), {2, -1, 3})};
  });
}

void cases_permute(std::vector<CaseDef>& c) {
  add(c, OpKind::Permute, "[2, 3, 5] perm (2, 0, 1)", [](CaseBuilder& b) -> Outs {
    return {b.graph.permute(b.input("x", {2, 3, 5}), {2, 0, 1})};
  });
  add(c, OpKind::Permute, "[7, 9] transpose", [](CaseBuilder& b) -> Outs {
    return {b.graph.permute(b.input("x", {7, 9}), {1, 0})};
  });
}

void cases_slice(std::vector<CaseDef>& c) {
  add(c, OpKind::Slice, "[6, 10] axis 1, 2:9:3", [](CaseBuilder& b) -> Outs {
    return {b.graph.slice(b.input("x", {6, 10}), 1, 2, 9, 3)};
  });
  add(c, OpKind::Slice, "[8, 4] axis 0, -5:-1", [](CaseBuilder& b) -> Outs {
    return {b.graph.slice(b.input("x", {8, 4}), 0, -5, -1)};
  });
}

void cases_concat(std::vector<CaseDef>& c) {
  add(c, OpKind::Concat, "[2, 3] [2, 5] [2, 1] axis 1", [](CaseBuilder& b) -> Outs {
    return {b.graph.concat({b.input("a", {2, 3}), b.input("b", {2, 5}), b.input("c", {2, 1})}, 1)};
  });
  add(c, OpKind::Concat, "[1, 4] [3, 4] axis 0", [](CaseBuilder& b) -> Outs {
    return {b.graph.concat({b.input("a", {1, 4}), b.input("b", {3, 4})}, 0)};
  });
}

void cases_cast(std::vector<CaseDef>& c) {
  add(c, OpKind::Cast, "[5, 7] to f32", [](CaseBuilder& b) -> Outs {
    return {b.graph.cast(b.input("x", {5, 7}, -100, 100), DType::F32)};
  });
  add(c, OpKind::Cast, "[5, 7] to bf16", [](CaseBuilder& b) -> Outs {
    return {b.graph.cast(b.input("x", {5, 7}, -100, 100), DType::BF16)};
  });
}

void cases_moe_router(std::vector<CaseDef>& c) {
  add(c, OpKind::MoeRouter, "T=9 E=16 K=4 softmax", [](CaseBuilder& b) -> Outs {
    auto r = b.graph.moe_router(b.input("logits", {9, 16}, -3, 3), moe::deepseek_v2_lite(16, 4));
    return {r.ids, r.weights, r.counts, r.offsets, r.perm, r.inv};
  });
  add(c, OpKind::MoeRouter, "T=7 E=32 K=4 DeepSeek-V3 groups 8/4, bias",
      [](CaseBuilder& b) -> Outs {
        auto r = b.graph.moe_router(b.input("logits", {7, 32}, -3, 3), moe::deepseek_v3(32, 4),
                                    b.input_f32("bias", {32}, -0.5f, 0.5f));
        return {r.ids, r.weights, r.counts, r.offsets, r.perm, r.inv};
      });
  add(c, OpKind::MoeRouter, "T=12 E=8 K=1 Switch capacity 1.0", [](CaseBuilder& b) -> Outs {
    auto r = b.graph.moe_router(b.input("logits", {12, 8}, -3, 3), moe::switch_capacity(1.0f, 8));
    return {r.ids, r.weights, r.counts, r.offsets, r.perm, r.inv, r.dropped};
  });
  add(c, OpKind::MoeRouter, "T=11 E=8 K=2 Mixtral, valid mask", [](CaseBuilder& b) -> Outs {
    auto a = moe::mixtral(8, 2);
    a.use_valid = true;
    MoeRouterInputs in;
    in.logits = b.input("logits", {11, 8}, -3, 3);
    in.valid = b.exact_input(
        "valid", Tensor::from_vector<std::int32_t>({11}, {1, 1, 0, 1, 1, 1, 0, 0, 1, 1, 1}));
    auto r = b.graph.moe_router(in, a);
    return {r.ids, r.weights, r.counts, r.offsets, r.perm, r.inv, r.nonfinite, r.mean_score};
  });
  add(c, OpKind::MoeRouter, "T=10 E=8 K=2 hash, capacity 1.0", [](CaseBuilder& b) -> Outs {
    auto a = moe::deepseek_v2_lite(8, 2);
    a.mode = moe::Mode::Hash;
    a.capacity_factor = 1.0f;
    std::vector<std::int32_t> table, tokens;
    for (std::int32_t v = 0; v < 16; ++v) table.insert(table.end(), {v % 8, (v * 3 + 1) % 8});
    for (std::int64_t t = 0; t < 10; ++t)
      tokens.push_back(static_cast<std::int32_t>(b.uniform_int(0, 15)));
    MoeRouterInputs in;
    in.logits = b.input("logits", {10, 8}, -3, 3);
    in.token_ids = b.exact_input("token_ids", Tensor::from_vector<std::int32_t>({10}, tokens));
    in.hash_table = b.exact_input("hash_table", Tensor::from_vector<std::int32_t>({16, 2}, table));
    auto r = b.graph.moe_router(in, a);
    return {r.ids, r.weights, r.counts, r.offsets, r.perm, r.inv, r.dropped};
  });
  add(c, OpKind::MoeRouter, "T=13 E=6 K=2 expert choice, block 4", [](CaseBuilder& b) -> Outs {
    auto a = moe::deepseek_v2_lite(6, 2);
    a.mode = moe::Mode::ExpertChoice;
    a.block_size = 4;
    a.renormalize = true;
    auto r = b.graph.moe_router(b.input("logits", {13, 6}, -3, 3), a);
    return {r.ids, r.weights, r.counts, r.offsets, r.perm, r.inv, r.mean_score};
  });
}

void cases_moe_permute(std::vector<CaseDef>& c) {
  add(c, OpKind::MoePermute, "T=6 H=20 E=4 K=2", [](CaseBuilder& b) -> Outs {
    auto routing = random_routing(b.rng, 6, 4, 2);
    auto x = b.input("x", {6, 20});
    return {b.graph.add_op(OpKind::MoePermute, {x, b.exact_input("perm", routing.perm)},
                           MoePermuteAttrs{2})[0]};
  });
}

void cases_grouped_matmul(std::vector<CaseDef>& c) {
  add(c, OpKind::GroupedMatmul, "P=24 H=32 N=16 E=6 (ragged, some empty)",
      [](CaseBuilder& b) -> Outs {
        auto offsets = Tensor::from_vector<std::int32_t>({7}, {0, 5, 5, 12, 20, 20, 24});
        return {b.graph.grouped_matmul(b.input("rows", {24, 32}), b.weight("w", {6, 16, 32}),
                                       b.exact_input("offsets", offsets))};
      });
}

void cases_moe_combine(std::vector<CaseDef>& c) {
  add(c, OpKind::MoeCombine, "T=5 K=3 H=24 E=6", [](CaseBuilder& b) -> Outs {
    auto routing = random_routing(b.rng, 5, 6, 3);
    auto yp = b.input("yp", {15, 24});
    return {b.graph.add_op(OpKind::MoeCombine, {yp, b.exact_input("weights", routing.weights),
                                                b.exact_input("inv", routing.inv)})[0]};
  });
}

void cases_moe_experts(std::vector<CaseDef>& c) {
  for (bool shared : {false, true}) {
    add(c, OpKind::MoeExperts,
        shared ? "T=6 H=32 I=16 E=8 K=2, gated shared expert" : "T=6 H=32 I=16 E=8 K=2",
        [shared](CaseBuilder& b) -> Outs {
          auto routing = random_routing(b.rng, 6, 8, 2);
          std::vector<Value> in{b.input("x", {6, 32}),
                                b.exact_input("weights", routing.weights),
                                b.exact_input("offsets", routing.offsets),
                                b.exact_input("perm", routing.perm),
                                b.exact_input("inv", routing.inv),
                                b.weight("gate", {8, 16, 32}),
                                b.weight("up", {8, 16, 32}),
                                b.weight("down", {8, 32, 16})};
          moe::ExpertsAttrs attrs;
          if (shared) {
            in.insert(in.end(), {b.weight("s_gate", {24, 32}), b.weight("s_up", {24, 32}),
                                 b.weight("s_down", {32, 24}), b.weight("s_gate_w", {1, 32})});
            attrs.has_shared = true;
            attrs.shared_gate = moe::SharedGate::Sigmoid;
          }
          return {b.graph.add_op(OpKind::MoeExperts, in, attrs)[0]};
        });
  }
}

const std::vector<CaseDef>& all_cases() {
  static const std::vector<CaseDef> cases = [] {
    std::vector<CaseDef> c;
#define PORTA_CHECK_OP_CASES(kind, name, ...) cases_##name(c);
    PORTA_OP_LIST(PORTA_CHECK_OP_CASES)
#undef PORTA_CHECK_OP_CASES
    return c;
  }();
  return cases;
}

}  // namespace porta::check::detail
