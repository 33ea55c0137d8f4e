// The reference moe_router: token-choice routing exactly as docs/moe-router.md specifies it,
// written for clarity (a full sort per row) because this is the oracle the fast backends are
// checked against.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <optional>
#include <variant>

#include <fmt/format.h>

#include <porta/error.hpp>

#include "reference/kernel_util.hpp"
#include "reference/moe_internal.hpp"

namespace porta::detail::reference {
namespace {

constexpr float kMinusInf = -std::numeric_limits<float>::infinity();

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// log(1 + e^x) without overflow for large x or cancellation for very negative x.
double softplus(double x) { return std::max(x, 0.0) + std::log1p(std::exp(-std::abs(x))); }

// s = score(x) for one row, computed in double and rounded once to f32 (the spec's "score in
// f32"). A NaN anywhere in a softmax row makes the whole row NaN, as PyTorch's softmax does.
void score_row(moe::Score score, std::span<const float> x, std::span<float> s) {
  switch (score) {
    case moe::Score::Softmax: {
      float row_max = kMinusInf;
      bool has_nan = false;
      for (float v : x) {
        has_nan = has_nan || std::isnan(v);
        row_max = std::max(row_max, v);
      }
      double sum = 0.0;
      std::vector<double> e(x.size());
      for (std::size_t i = 0; i < x.size(); ++i) {
        e[i] = std::exp(static_cast<double>(x[i]) - static_cast<double>(row_max));
        sum += e[i];
      }
      for (std::size_t i = 0; i < x.size(); ++i)
        s[i] = has_nan ? std::numeric_limits<float>::quiet_NaN() : static_cast<float>(e[i] / sum);
      return;
    }
    case moe::Score::Sigmoid:
      for (std::size_t i = 0; i < x.size(); ++i) s[i] = static_cast<float>(sigmoid(x[i]));
      return;
    case moe::Score::SqrtSoftplus:
      for (std::size_t i = 0; i < x.size(); ++i)
        s[i] = static_cast<float>(std::sqrt(softplus(x[i])));
      return;
    case moe::Score::Identity: std::copy(x.begin(), x.end(), s.begin()); return;
  }
}

// The value an expert (or group) is ranked by: NaN ranks as -inf, so every order is total.
float rank_value(float c) { return std::isnan(c) ? kMinusInf : c; }

// Indices 0..n-1 ordered by (value descending, index ascending).
std::vector<std::int64_t> order_descending(std::span<const float> values) {
  std::vector<std::int64_t> order(values.size());
  std::iota(order.begin(), order.end(), std::int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
    return values[static_cast<std::size_t>(a)] > values[static_cast<std::size_t>(b)];
  });
  return order;
}

// Step 2: every expert outside the TG best groups gets -inf (not 0: with negative in-group
// values a zero would outrank the kept experts).
void mask_groups(const moe::RouterAttrs& attrs, std::span<float> ranked) {
  const auto groups = static_cast<std::size_t>(attrs.num_groups);
  const std::size_t per_group = ranked.size() / groups;
  std::vector<float> group_value(groups);
  for (std::size_t grp = 0; grp < groups; ++grp) {
    std::vector<float> members(ranked.begin() + static_cast<std::ptrdiff_t>(grp * per_group),
                               ranked.begin() + static_cast<std::ptrdiff_t>((grp + 1) * per_group));
    std::sort(members.begin(), members.end(), std::greater<float>());
    float value = members[0];
    if (attrs.group_score == moe::GroupScore::Top2Sum) value = members[0] + members[1];
    group_value[grp] = rank_value(value);  // +inf + -inf is NaN: rank it last
  }
  const auto group_order = order_descending(group_value);
  std::vector<bool> kept(groups, false);
  for (std::size_t i = 0; i < static_cast<std::size_t>(attrs.topk_groups); ++i)
    kept[static_cast<std::size_t>(group_order[i])] = true;
  for (std::size_t e = 0; e < ranked.size(); ++e)
    if (!kept[e / per_group]) ranked[e] = kMinusInf;
}

// C = ceil(factor · T · K / E), evaluated in f32 so that a factor written as 1.1 (stored as
// 1.10000002f) does not round 11.0000002 slots up to 12. Never more than T·K, which keeps the
// conversion to an integer in range for any factor.
std::int64_t capacity_slots(float factor, std::int64_t assignments, std::int64_t experts) {
  const float slots =
      std::ceil(factor * static_cast<float>(assignments) / static_cast<float>(experts));
  if (!(slots < static_cast<float>(assignments))) return assignments;
  return static_cast<std::int64_t>(slots);
}

}  // namespace

std::int64_t router_perm_rows(std::int64_t tokens, std::int64_t top_k, std::int64_t experts,
                              std::int64_t block_size) {
  return tokens * top_k + (block_size > 1 ? experts * (block_size - 1) : 0);
}

RouterTables route_tokens(std::span<const float> logits, std::int64_t tokens,
                          std::span<const float> bias, const moe::RouterAttrs& attrs) {
  const std::int64_t E = attrs.num_experts;
  const std::int64_t K = attrs.top_k;
  const auto e_count = static_cast<std::size_t>(E);
  const auto k_count = static_cast<std::size_t>(K);
  const std::int64_t assignments = tokens * K;
  const std::int64_t sentinel = assignments;

  RouterTables r;
  r.ids.assign(static_cast<std::size_t>(assignments), -1);
  r.weights.assign(static_cast<std::size_t>(assignments), 0.0f);
  r.counts.assign(e_count, 0);
  r.offsets.assign(e_count + 1, 0);
  r.perm.assign(static_cast<std::size_t>(router_perm_rows(tokens, K, E, attrs.block_size)),
                sentinel);
  r.inv.assign(static_cast<std::size_t>(assignments), -1);
  r.dropped.assign(e_count, 0);
  r.nonfinite.assign(static_cast<std::size_t>(tokens), 0);
  r.mean_score.assign(e_count, 0.0f);

  std::vector<double> score_sum(e_count, 0.0);
  std::vector<float> s(e_count), ranked(e_count);
  for (std::int64_t t = 0; t < tokens; ++t) {
    const auto row = logits.subspan(static_cast<std::size_t>(t) * e_count, e_count);
    // Step 1: score, and the values experts are selected on.
    score_row(attrs.score, row, s);
    for (std::size_t e = 0; e < e_count; ++e) {
      score_sum[e] += s[e];
      float c = attrs.select_on == moe::SelectOn::Score ? s[e] : row[e];
      if (!bias.empty()) c += bias[e];
      if (std::isnan(c)) r.nonfinite[static_cast<std::size_t>(t)] = 1;
      ranked[e] = rank_value(c);
    }
    // Step 2: group-limited routing.
    if (attrs.num_groups > 1) mask_groups(attrs, ranked);
    // Step 3: the K best by (c descending, index ascending); always K distinct valid experts.
    const auto order = order_descending(ranked);
    // Step 4: weights from the unbiased scores, renormalized and scaled, rounded once.
    std::vector<double> w(k_count);
    double total = 0.0;
    for (std::size_t k = 0; k < k_count; ++k) {
      const auto id = static_cast<std::size_t>(order[k]);
      w[k] = attrs.select_on == moe::SelectOn::Logit ? sigmoid(row[id]) : double{s[id]};
      total += w[k];
    }
    for (std::size_t k = 0; k < k_count; ++k) {
      double value = w[k];
      if (attrs.renormalize) value /= total + static_cast<double>(attrs.renorm_eps);
      value *= static_cast<double>(attrs.scale);
      const auto a = static_cast<std::size_t>(t) * k_count + k;
      r.ids[a] = order[k];
      r.weights[a] = static_cast<float>(value);
    }
  }
  if (tokens > 0)
    for (std::size_t e = 0; e < e_count; ++e)
      r.mean_score[e] = static_cast<float>(score_sum[e] / static_cast<double>(tokens));

  // Step 6: capacity, first come first served in assignment order a = t·K + k.
  const std::int64_t capacity = attrs.capacity_factor > 0.0f && E > 0
                                    ? capacity_slots(attrs.capacity_factor, assignments, E)
                                    : assignments;
  std::vector<std::vector<std::int64_t>> rows_of_expert(e_count);
  for (std::int64_t a = 0; a < assignments; ++a) {
    const auto ai = static_cast<std::size_t>(a);
    const auto e = static_cast<std::size_t>(r.ids[ai]);
    if (r.counts[e] >= capacity) {
      ++r.dropped[e];
      r.ids[ai] = -1;
      r.weights[ai] = 0.0f;
      continue;
    }
    ++r.counts[e];
    rows_of_expert[e].push_back(a);
  }

  // perm: each expert's kept assignments in order, its block padded to a multiple of block_size.
  const std::int64_t block = std::max<std::int64_t>(attrs.block_size, 1);
  std::int64_t cursor = 0;
  for (std::size_t e = 0; e < e_count; ++e) {
    r.offsets[e] = cursor;
    for (std::int64_t a : rows_of_expert[e]) {
      r.perm[static_cast<std::size_t>(cursor)] = a;
      r.inv[static_cast<std::size_t>(a)] = cursor;
      ++cursor;
    }
    cursor += (block - cursor % block) % block;  // the padding slots already hold the sentinel
  }
  r.offsets[e_count] = cursor;
  return r;
}

void run_moe_router(const GraphState& g, const Node& n, const ExecContext& ctx) {
  (void)g;
  const auto& attrs = std::get<moe::RouterAttrs>(n.attrs);
  const TensorRef& logits_ref = ctx.input(n, 0);
  if (logits_ref.shape().rank() != 2 || logits_ref.shape()[1] != attrs.num_experts)
    throw Error(ErrorCode::Internal,
                fmt::format("{}: logits {} do not match num_experts {}", node_label(n),
                            logits_ref.shape().to_string(), attrs.num_experts));
  const std::int64_t tokens = logits_ref.shape()[0];
  const F32Input logits(logits_ref);
  std::span<const float> bias;
  std::optional<F32Input> bias_values;
  if (attrs.use_bias) {
    bias_values.emplace(ctx.input(n, 1));
    bias = std::span<const float>(bias_values->data(), bias_values->size());
  }
  const RouterTables r =
      route_tokens(std::span<const float>(logits.data(), logits.size()), tokens, bias, attrs);
  store_i64(ctx.output(n, 0), r.ids);
  store_f32(ctx.output(n, 1), r.weights);
  store_i64(ctx.output(n, 2), r.counts);
  store_i64(ctx.output(n, 3), r.offsets);
  store_i64(ctx.output(n, 4), r.perm);
  store_i64(ctx.output(n, 5), r.inv);
  store_i64(ctx.output(n, 6), r.dropped);
  store_i64(ctx.output(n, 7), r.nonfinite);
  store_f32(ctx.output(n, 8), r.mean_score);
}

}  // namespace porta::detail::reference
