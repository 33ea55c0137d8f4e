// The reference moe_router: every mode (token_choice, hash, expert_choice) exactly as
// docs/moe-router.md specifies it, written for clarity (full sorts, double arithmetic rounded
// once) because this is the oracle the fast backends are checked against.
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

// One row's scores s and selection values c (NaN ranked as -inf), and whether c had a NaN.
struct ScoredRow {
  std::vector<float> s, ranked;
  bool nonfinite = false;
};

ScoredRow score_and_rank(const moe::RouterAttrs& attrs, std::span<const float> row,
                         std::span<const float> bias) {
  const std::size_t experts = row.size();
  ScoredRow r{std::vector<float>(experts), std::vector<float>(experts), false};
  score_row(attrs.score, row, r.s);
  for (std::size_t e = 0; e < experts; ++e) {
    float c = attrs.select_on == moe::SelectOn::Score ? r.s[e] : row[e];
    if (!bias.empty()) c += bias[e];
    r.nonfinite = r.nonfinite || std::isnan(c);
    r.ranked[e] = rank_value(c);
  }
  return r;
}

// Step 4 for one token's chosen experts `ids` (-1 entries are skipped): w = s[id] (sigmoid of
// the logit for select_on = logit), renormalized over the chosen ones, scaled, rounded once.
void weigh(const moe::RouterAttrs& attrs, std::span<const float> row, std::span<const float> s,
           std::span<const std::int64_t> ids, std::span<float> out) {
  std::vector<double> w(ids.size(), 0.0);
  double total = 0.0;
  for (std::size_t k = 0; k < ids.size(); ++k) {
    if (ids[k] < 0) continue;
    const auto id = static_cast<std::size_t>(ids[k]);
    w[k] = attrs.select_on == moe::SelectOn::Logit ? sigmoid(row[id]) : double{s[id]};
    total += w[k];
  }
  for (std::size_t k = 0; k < ids.size(); ++k) {
    if (ids[k] < 0) continue;
    double value = w[k];
    if (attrs.renormalize) value /= total + static_cast<double>(attrs.renorm_eps);
    out[k] = static_cast<float>(value * static_cast<double>(attrs.scale));
  }
}

bool row_is_valid(const RouterInputs& in, std::int64_t t) {
  return in.valid.empty() || in.valid[static_cast<std::size_t>(t)] != 0;
}

std::int64_t count_valid(const RouterInputs& in) {
  std::int64_t n = 0;
  for (std::int64_t t = 0; t < in.tokens; ++t) n += row_is_valid(in, t) ? 1 : 0;
  return n;
}

RouterTables empty_tables(const moe::RouterAttrs& attrs, std::int64_t tokens) {
  const auto e_count = static_cast<std::size_t>(attrs.num_experts);
  const auto assignments = static_cast<std::size_t>(tokens * moe::slots_per_token(attrs));
  RouterTables r;
  r.ids.assign(assignments, -1);
  r.weights.assign(assignments, 0.0f);
  r.counts.assign(e_count, 0);
  r.offsets.assign(e_count + 1, 0);
  r.perm.assign(static_cast<std::size_t>(moe::perm_rows(attrs, tokens)),
                static_cast<std::int64_t>(assignments));  // the sentinel T·slots
  r.inv.assign(assignments, -1);
  r.dropped.assign(e_count, 0);
  r.nonfinite.assign(static_cast<std::size_t>(tokens), 0);
  r.mean_score.assign(e_count, 0.0f);
  return r;
}

// mean_score: each expert's score averaged over the valid rows.
void finish_mean(RouterTables& r, const std::vector<double>& score_sum, std::int64_t valid_rows) {
  if (valid_rows == 0) return;
  for (std::size_t e = 0; e < score_sum.size(); ++e)
    r.mean_score[e] = static_cast<float>(score_sum[e] / static_cast<double>(valid_rows));
}

// Step 6: capacity, first come first served in assignment order a = t·K + k.
void apply_capacity(RouterTables& r, std::int64_t capacity) {
  if (capacity < 0) return;
  std::vector<std::int64_t> used(r.counts.size(), 0);
  for (std::size_t a = 0; a < r.ids.size(); ++a) {
    if (r.ids[a] < 0) continue;
    const auto e = static_cast<std::size_t>(r.ids[a]);
    if (used[e] >= capacity) {
      ++r.dropped[e];
      r.ids[a] = -1;
      r.weights[a] = 0.0f;
    } else {
      ++used[e];
    }
  }
}

// counts, offsets, perm and inv from the final ids: each expert's kept assignments in ascending
// order, its block padded to a multiple of block_size (the padding already holds the sentinel).
void build_perm(RouterTables& r, std::int64_t block_size) {
  const std::size_t experts = r.counts.size();
  std::vector<std::vector<std::int64_t>> rows_of_expert(experts);
  for (std::size_t a = 0; a < r.ids.size(); ++a)
    if (r.ids[a] >= 0)
      rows_of_expert[static_cast<std::size_t>(r.ids[a])].push_back(static_cast<std::int64_t>(a));
  const std::int64_t block = std::max<std::int64_t>(block_size, 1);
  std::int64_t cursor = 0;
  for (std::size_t e = 0; e < experts; ++e) {
    r.offsets[e] = cursor;
    r.counts[e] = static_cast<std::int64_t>(rows_of_expert[e].size());
    for (std::int64_t a : rows_of_expert[e]) {
      r.perm[static_cast<std::size_t>(cursor)] = a;
      r.inv[static_cast<std::size_t>(a)] = cursor;
      ++cursor;
    }
    cursor += (block - cursor % block) % block;
  }
  r.offsets[experts] = cursor;
}

RouterTables route_token_choice(const RouterInputs& in, const moe::RouterAttrs& attrs) {
  const auto e_count = static_cast<std::size_t>(attrs.num_experts);
  const auto k_count = static_cast<std::size_t>(attrs.top_k);
  RouterTables r = empty_tables(attrs, in.tokens);
  std::vector<double> score_sum(e_count, 0.0);
  for (std::int64_t t = 0; t < in.tokens; ++t) {
    if (!row_is_valid(in, t)) continue;  // step 5: ids -1, weights 0, not counted
    const auto ti = static_cast<std::size_t>(t);
    const auto row = in.logits.subspan(ti * e_count, e_count);
    // Step 1: score, and the values experts are selected on.
    ScoredRow sr = score_and_rank(attrs, row, in.bias);
    for (std::size_t e = 0; e < e_count; ++e) score_sum[e] += sr.s[e];
    r.nonfinite[ti] = sr.nonfinite ? 1 : 0;
    // Step 2: group-limited routing.
    if (attrs.num_groups > 1) mask_groups(attrs, sr.ranked);
    // Step 3: the K best by (c descending, index ascending); always K distinct valid experts.
    const auto order = order_descending(sr.ranked);
    const auto ids = std::span(r.ids).subspan(ti * k_count, k_count);
    std::copy(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k_count), ids.begin());
    // Step 4: weights from the unbiased scores.
    weigh(attrs, row, sr.s, ids, std::span(r.weights).subspan(ti * k_count, k_count));
  }
  finish_mean(r, score_sum, count_valid(in));
  apply_capacity(r, moe::expert_capacity(attrs, count_valid(in)));
  build_perm(r, attrs.block_size);
  return r;
}

// Hash layers: ids = hash_table[token_ids[t]], then the weights of step 4 and the capacity walk.
RouterTables route_hash(const RouterInputs& in, const moe::RouterAttrs& attrs) {
  const auto e_count = static_cast<std::size_t>(attrs.num_experts);
  const auto k_count = static_cast<std::size_t>(attrs.top_k);
  const auto vocab = static_cast<std::int64_t>(in.hash_table.size() / k_count);
  RouterTables r = empty_tables(attrs, in.tokens);
  std::vector<double> score_sum(e_count, 0.0);
  for (std::int64_t t = 0; t < in.tokens; ++t) {
    if (!row_is_valid(in, t)) continue;  // a padding row's token id is never looked up
    const auto ti = static_cast<std::size_t>(t);
    const std::int64_t token = in.token_ids[ti];
    if (token < 0 || token >= vocab)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("{}: token_ids[{}] = {} is outside the hash table's {} rows",
                              in.label, t, token, vocab));
    const auto table_row =
        in.hash_table.subspan(static_cast<std::size_t>(token) * k_count, k_count);
    for (std::size_t k = 0; k < k_count; ++k) {
      const std::int64_t e = table_row[k];
      if (e < 0 || e >= attrs.num_experts)
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("{}: hash_table[{}, {}] = {} is not an expert in [0, {})", in.label,
                                token, k, e, attrs.num_experts));
      for (std::size_t j = 0; j < k; ++j)
        if (table_row[j] == e)
          throw Error(ErrorCode::InvalidArgument,
                      fmt::format("{}: hash_table row {} names expert {} twice (a token's "
                                  "experts must be distinct)",
                                  in.label, token, e));
    }
    const auto row = in.logits.subspan(ti * e_count, e_count);
    std::vector<float> s(e_count);
    score_row(attrs.score, row, s);
    bool nonfinite = false;
    for (std::size_t e = 0; e < e_count; ++e) {
      score_sum[e] += s[e];
      nonfinite = nonfinite || std::isnan(attrs.select_on == moe::SelectOn::Score ? s[e] : row[e]);
    }
    r.nonfinite[ti] = nonfinite ? 1 : 0;
    const auto ids = std::span(r.ids).subspan(ti * k_count, k_count);
    std::copy(table_row.begin(), table_row.end(), ids.begin());
    weigh(attrs, row, s, ids, std::span(r.weights).subspan(ti * k_count, k_count));
  }
  finish_mean(r, score_sum, count_valid(in));
  apply_capacity(r, moe::expert_capacity(attrs, count_valid(in)));
  build_perm(r, attrs.block_size);
  return r;
}

// Expert choice: each expert takes its C best valid tokens by c (ties to the lower token); a
// token's slots then list the experts that took it by (c descending, expert ascending), -1 after.
RouterTables route_expert_choice(const RouterInputs& in, const moe::RouterAttrs& attrs) {
  const auto e_count = static_cast<std::size_t>(attrs.num_experts);
  const auto t_count = static_cast<std::size_t>(in.tokens);
  RouterTables r = empty_tables(attrs, in.tokens);
  std::vector<ScoredRow> rows(t_count);
  std::vector<std::int64_t> candidates;  // the valid tokens, ascending
  std::vector<double> score_sum(e_count, 0.0);
  for (std::size_t t = 0; t < t_count; ++t) {
    if (!row_is_valid(in, static_cast<std::int64_t>(t))) continue;
    rows[t] = score_and_rank(attrs, in.logits.subspan(t * e_count, e_count), in.bias);
    for (std::size_t e = 0; e < e_count; ++e) score_sum[e] += rows[t].s[e];
    r.nonfinite[t] = rows[t].nonfinite ? 1 : 0;
    candidates.push_back(static_cast<std::int64_t>(t));
  }
  const auto capacity = static_cast<std::size_t>(
      moe::expert_capacity(attrs, static_cast<std::int64_t>(candidates.size())));
  std::vector<std::vector<bool>> taken(t_count, std::vector<bool>(e_count, false));
  for (std::size_t e = 0; e < e_count; ++e) {
    std::vector<std::int64_t> order = candidates;
    std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
      return rows[static_cast<std::size_t>(a)].ranked[e] >
             rows[static_cast<std::size_t>(b)].ranked[e];
    });
    for (std::size_t i = 0; i < std::min(capacity, order.size()); ++i)
      taken[static_cast<std::size_t>(order[i])][e] = true;
  }
  for (std::int64_t token : candidates) {
    const auto t = static_cast<std::size_t>(token);
    const auto order = order_descending(rows[t].ranked);
    const auto ids = std::span(r.ids).subspan(t * e_count, e_count);
    std::size_t slot = 0;
    for (std::int64_t e : order)
      if (taken[t][static_cast<std::size_t>(e)]) ids[slot++] = e;
    weigh(attrs, in.logits.subspan(t * e_count, e_count), rows[t].s, ids,
          std::span(r.weights).subspan(t * e_count, e_count));
  }
  finish_mean(r, score_sum, static_cast<std::int64_t>(candidates.size()));
  build_perm(r, attrs.block_size);
  return r;
}

}  // namespace

RouterTables route(const RouterInputs& in, const moe::RouterAttrs& attrs) {
  switch (attrs.mode) {
    case moe::Mode::TokenChoice: return route_token_choice(in, attrs);
    case moe::Mode::Hash: return route_hash(in, attrs);
    case moe::Mode::ExpertChoice: return route_expert_choice(in, attrs);
  }
  throw Error(ErrorCode::InvalidArgument, fmt::format("{}: unknown router mode", in.label));
}

RouterTables route_tokens(std::span<const float> logits, std::int64_t tokens,
                          std::span<const float> bias, const moe::RouterAttrs& attrs) {
  RouterInputs in;
  in.logits = logits;
  in.tokens = tokens;
  in.bias = bias;
  in.label = "moe_router";
  return route(in, attrs);
}

void run_moe_router(const GraphState& g, const Node& n, const ExecContext& ctx) {
  (void)g;
  const auto& attrs = std::get<moe::RouterAttrs>(n.attrs);
  const TensorRef& logits_ref = ctx.input(n, 0);
  if (logits_ref.shape().rank() != 2 || logits_ref.shape()[1] != attrs.num_experts)
    throw Error(ErrorCode::Internal,
                fmt::format("{}: logits {} do not match num_experts {}", node_label(n),
                            logits_ref.shape().to_string(), attrs.num_experts));
  RouterInputs in;
  in.tokens = logits_ref.shape()[0];
  in.label = node_label(n);
  const F32Input logits(logits_ref);
  in.logits = std::span<const float>(logits.data(), logits.size());
  std::size_t next = 1;
  std::optional<F32Input> bias_values;
  if (attrs.use_bias) {
    bias_values.emplace(ctx.input(n, next++));
    in.bias = std::span<const float>(bias_values->data(), bias_values->size());
  }
  std::vector<std::int64_t> valid, token_ids, hash_table;
  if (attrs.use_valid) valid = load_i64(ctx.input(n, next++));
  if (attrs.mode == moe::Mode::Hash) {
    token_ids = load_i64(ctx.input(n, next++));
    hash_table = load_indices(n, ctx.input(n, next++), "hash_table");
  }
  in.valid = valid;
  in.token_ids = token_ids;
  in.hash_table = hash_table;
  const RouterTables r = route(in, attrs);
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
