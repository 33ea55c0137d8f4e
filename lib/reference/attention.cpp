// attention: softmax(scale · q·kᵀ) · v per query head, causal or not, grouped-query (each kv head
// serves Hq / Hkv query heads), optionally after a KV cache prefix. Scores, the softmax and the
// weighted sum of values are computed in double; each output is rounded once.

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include <porta/error.hpp>

#include "reference/kernel_util.hpp"
#include "reference/kernels.hpp"

namespace porta::detail::reference {

namespace {

struct AttentionDims {
  std::int64_t q_tokens, q_heads, kv_tokens, kv_heads, key_dim, value_dim;
  std::int64_t cache_capacity = 0;  // S; 0 without a cache
};

AttentionDims check_dims(const Node& n, const ExecContext& ctx, bool with_cache) {
  const Shape& q = ctx.input(n, 0).shape();
  const Shape& k = ctx.input(n, 1).shape();
  const Shape& v = ctx.input(n, 2).shape();
  const auto mismatch = [&](const std::string& why) {
    return Error(ErrorCode::ShapeMismatch,
                 fmt::format("{}: {} (q{}, k{}, v{})", node_label(n), why, q.to_string(),
                             k.to_string(), v.to_string()));
  };
  if (q.rank() != 3 || k.rank() != 3 || v.rank() != 3)
    throw mismatch("q, k and v must be [tokens, heads, dim]");
  AttentionDims d{q[0], q[1], k[0], k[1], q[2], v[2]};
  if (k[2] != d.key_dim || v[0] != d.kv_tokens || v[1] != d.kv_heads)
    throw mismatch("k must be [Tk, Hkv, Dk] and v [Tk, Hkv, Dv]");
  if (d.kv_heads == 0 ? d.q_heads != 0 : d.q_heads % d.kv_heads != 0)
    throw mismatch("the query heads must be a multiple of the kv heads");
  if (with_cache) {
    const Shape& kc = ctx.input(n, 3).shape();
    const Shape& vc = ctx.input(n, 4).shape();
    if (kc.rank() != 3 || vc.rank() != 3 || kc[1] != d.kv_heads || kc[2] != d.key_dim ||
        vc[0] != kc[0] || vc[1] != d.kv_heads || vc[2] != d.value_dim)
      throw mismatch(fmt::format("k_cache{} / v_cache{} must be [S, Hkv, Dk] / [S, Hkv, Dv]",
                                 kc.to_string(), vc.to_string()));
    d.cache_capacity = kc[0];
  }
  return d;
}

std::int64_t read_cache_len(const Node& n, const ExecContext& ctx, std::int64_t capacity) {
  const auto values = load_i64(ctx.input(n, 5));
  if (values.size() != 1)
    throw Error(ErrorCode::ShapeMismatch,
                fmt::format("{}: cache_len must hold one value, it holds {}", node_label(n),
                            values.size()));
  const std::int64_t len = values[0];
  if (len < 0 || len > capacity)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{}: cache_len {} is outside [0, {}] (the cache holds {} positions)",
                            node_label(n), len, capacity, capacity));
  return len;
}

}  // namespace

void run_attention(const GraphState&, const Node& n, const ExecContext& ctx) {
  const auto& attrs = std::get<AttentionAttrs>(n.attrs);
  const AttentionDims d = check_dims(n, ctx, attrs.kv_cache);
  const std::int64_t cached = attrs.kv_cache ? read_cache_len(n, ctx, d.cache_capacity) : 0;
  const std::int64_t keys = cached + d.kv_tokens;  // N
  const double scale = attrs.scale != 0.0f ? static_cast<double>(attrs.scale)
                                           : 1.0 / std::sqrt(static_cast<double>(d.key_dim));

  const F32Input q(ctx.input(n, 0));
  const F32Input k(ctx.input(n, 1));
  const F32Input v(ctx.input(n, 2));
  std::optional<F32Input> k_cache;
  std::optional<F32Input> v_cache;
  if (attrs.kv_cache) {
    k_cache.emplace(ctx.input(n, 3));
    v_cache.emplace(ctx.input(n, 4));
  }

  // Key/value row j of kv head g: the cache for j < cache_len, the new tokens after it.
  const auto key_row = [&](std::int64_t j, std::int64_t g) -> const float* {
    if (j < cached) return k_cache->data() + (j * d.kv_heads + g) * d.key_dim;
    return k.data() + ((j - cached) * d.kv_heads + g) * d.key_dim;
  };
  const auto value_row = [&](std::int64_t j, std::int64_t g) -> const float* {
    if (j < cached) return v_cache->data() + (j * d.kv_heads + g) * d.value_dim;
    return v.data() + ((j - cached) * d.kv_heads + g) * d.value_dim;
  };

  std::vector<float> result(static_cast<std::size_t>(d.q_tokens * d.q_heads * d.value_dim), 0.0f);
  const std::int64_t group = d.kv_heads == 0 ? 1 : d.q_heads / d.kv_heads;
  std::vector<double> weights(static_cast<std::size_t>(keys));
  std::vector<double> accumulator(static_cast<std::size_t>(d.value_dim));
  for (std::int64_t i = 0; i < d.q_tokens; ++i) {
    // Causal: the queries are the last q_tokens positions, so query i sees keys up to
    // (keys - q_tokens) + i. A query that sees no key keeps its zero output.
    const std::int64_t visible =
        attrs.causal ? std::clamp<std::int64_t>(keys - d.q_tokens + i + 1, 0, keys) : keys;
    if (visible == 0) continue;
    for (std::int64_t h = 0; h < d.q_heads; ++h) {
      const std::int64_t g = h / group;
      const float* query = q.data() + (i * d.q_heads + h) * d.key_dim;
      double max_score = -std::numeric_limits<double>::infinity();
      for (std::int64_t j = 0; j < visible; ++j) {
        const float* key = key_row(j, g);
        double dot = 0.0;
        for (std::int64_t c = 0; c < d.key_dim; ++c) dot += static_cast<double>(query[c]) * key[c];
        weights[static_cast<std::size_t>(j)] = dot * scale;
        max_score = std::max(max_score, dot * scale);
      }
      double sum = 0.0;
      for (std::int64_t j = 0; j < visible; ++j) {
        auto& w = weights[static_cast<std::size_t>(j)];
        w = std::exp(w - max_score);
        sum += w;
      }
      std::fill(accumulator.begin(), accumulator.end(), 0.0);
      for (std::int64_t j = 0; j < visible; ++j) {
        const float* value = value_row(j, g);
        const double w = weights[static_cast<std::size_t>(j)] / sum;
        for (std::int64_t c = 0; c < d.value_dim; ++c)
          accumulator[static_cast<std::size_t>(c)] += w * value[c];
      }
      float* out = result.data() + (i * d.q_heads + h) * d.value_dim;
      for (std::int64_t c = 0; c < d.value_dim; ++c)
        out[c] = static_cast<float>(accumulator[static_cast<std::size_t>(c)]);
    }
  }
  store_f32(ctx.output(n, 0), result);
}

}  // namespace porta::detail::reference
