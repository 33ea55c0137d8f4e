// The cpu moe_router: one pass per row (no sort of the E values: a K-entry insertion list keeps
// the best experts, a TG-entry one the best groups), rows in parallel, then the capacity walk and
// a counting sort for perm. Token choice and hash mode; expert choice stays on the reference.
//
// Integer outputs must equal the reference's exactly, so every value that decides a ranking is
// computed by the same arithmetic as lib/reference/moe_router.cpp: scores in double rounded once
// to f32, the selection value c in f32, group values from the same two best members.
#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <variant>

#include <fmt/format.h>

#include <porta/error.hpp>
#include <porta/moe.hpp>

#include "moe/moe_cpu.hpp"
#include "moe/router_math.hpp"
#include "moe/router_rank.hpp"

namespace porta::detail::cpu::moe {
namespace {

namespace pm = porta::moe;
constexpr float kMinusInf = -std::numeric_limits<float>::infinity();

// s = score(x) for one row with the reference's arithmetic; sigmoid and softmax vectorised
// (router_math.hpp: still bit-identical). `work` holds n doubles.
void score_row(pm::Score score, const float* x, std::int64_t n, float* s, double* work) {
  switch (score) {
    case pm::Score::Softmax: {
      bool has_nan = false;
      for (std::int64_t i = 0; i < n; ++i) has_nan = has_nan || std::isnan(x[i]);
      if (has_nan) {
        std::fill_n(s, n, std::numeric_limits<float>::quiet_NaN());
        return;
      }
      softmax_scores(x, n, s, work);
      return;
    }
    case pm::Score::Sigmoid: sigmoid_scores(x, n, s); return;
    case pm::Score::SqrtSoftplus:
      for (std::int64_t i = 0; i < n; ++i) {
        const double v = x[i];
        s[i] = static_cast<float>(std::sqrt(std::max(v, 0.0) + std::log1p(std::exp(-std::abs(v)))));
      }
      return;
    case pm::Score::Identity: std::copy_n(x, n, s); return;
  }
}

struct Inputs {
  const void* logits = nullptr;
  DType logits_dtype = DType::F32;
  const float* bias = nullptr;
  const void* valid = nullptr;
  DType valid_dtype = DType::I32;
  const void* token_ids = nullptr;
  DType token_dtype = DType::I32;
  const std::int32_t* table = nullptr;
  std::int64_t vocab = 0;
};

std::int64_t integer_at(const void* p, DType t, std::int64_t i) {
  switch (t) {
    case DType::I8: return static_cast<const std::int8_t*>(p)[i];
    case DType::I32: return static_cast<const std::int32_t*>(p)[i];
    case DType::I64: return static_cast<const std::int64_t*>(p)[i];
    case DType::F32:
    case DType::F16:
    case DType::BF16:
    case DType::F8E4M3: break;
  }
  throw Error(ErrorCode::Internal,
              fmt::format("moe_router: token ids of dtype {} reached the kernel", dtype_name(t)));
}

class RouterKernel final : public CpuKernel {
 public:
  RouterKernel(const GraphState& g, const Node& n)
      : node_(n), attrs_(std::get<pm::RouterAttrs>(n.attrs)), label_(node_label(g, n)) {}

  void run(const ExecContext& ctx) override {
    const TensorRef& logits = ctx.input(node_, 0);
    const std::int64_t T = logits.shape()[0];
    const std::int64_t E = attrs_.num_experts;
    const std::int64_t K = attrs_.top_k;
    Inputs in;
    in.logits = logits.host();
    in.logits_dtype = logits.dtype();
    std::size_t next = 1;
    if (attrs_.use_bias) in.bias = ctx.input(node_, next++).host_as<const float>();
    if (attrs_.use_valid) {
      const TensorRef& v = ctx.input(node_, next++);
      in.valid = v.host();
      in.valid_dtype = v.dtype();
    }
    if (attrs_.mode == pm::Mode::Hash) {
      const TensorRef& tok = ctx.input(node_, next++);
      const TensorRef& table = ctx.input(node_, next++);
      in.token_ids = tok.host();
      in.token_dtype = tok.dtype();
      in.table = table.host_as<const std::int32_t>();
      in.vocab = table.shape()[0];
    }
    auto* ids = ctx.output(node_, 0).host_as<std::int32_t>();
    auto* weights = ctx.output(node_, 1).host_as<float>();
    auto* counts = ctx.output(node_, 2).host_as<std::int32_t>();
    auto* offsets = ctx.output(node_, 3).host_as<std::int32_t>();
    const TensorRef& perm_ref = ctx.output(node_, 4);
    auto* perm = perm_ref.host_as<std::int32_t>();
    auto* inv = ctx.output(node_, 5).host_as<std::int32_t>();
    auto* dropped = ctx.output(node_, 6).host_as<std::int32_t>();
    auto* nonfinite = ctx.output(node_, 7).host_as<std::int32_t>();
    auto* mean_score = ctx.output(node_, 8).host_as<float>();

    const auto valid = [&](std::int64_t t) {
      return in.valid == nullptr || integer_at(in.valid, in.valid_dtype, t) != 0;
    };
    if (attrs_.mode == pm::Mode::Hash) check_hash(in, T, valid);

    scores_.resize(static_cast<std::size_t>(T * E));
    ScoreSums sums(E);
    parallel_for(T, 8, [&](std::int64_t begin, std::int64_t end) {
      ScoreSums part(E);
      std::vector<float> row(static_cast<std::size_t>(E)), c(static_cast<std::size_t>(E));
      std::vector<float> group_value(static_cast<std::size_t>(3 * attrs_.num_groups));
      std::vector<float> kept(static_cast<std::size_t>(std::max(K, attrs_.num_groups)));
      std::vector<std::int64_t> chosen(static_cast<std::size_t>(std::max(K, attrs_.num_groups)));
      std::vector<double> work(static_cast<std::size_t>(E));
      for (std::int64_t t = begin; t < end; ++t) {
        std::int32_t* row_ids = ids + t * K;
        float* row_w = weights + t * K;
        nonfinite[t] = 0;
        if (!valid(t)) {
          std::fill_n(row_ids, K, -1);
          std::fill_n(row_w, K, 0.0f);
          continue;
        }
        const float* x = static_cast<const float*>(in.logits) + t * E;
        if (in.logits_dtype != DType::F32) {
          widen_to_f32(static_cast<const char*>(in.logits) +
                           static_cast<std::size_t>(t * E) * dtype_size(in.logits_dtype),
                       in.logits_dtype, E, row.data());
          x = row.data();
        }
        float* s = scores_.data() + t * E;
        score_row(attrs_.score, x, E, s, work.data());
        part.add(s);
        if (attrs_.mode == pm::Mode::Hash) {
          bool nan = false;
          for (std::int64_t e = 0; e < E; ++e)
            nan = nan || std::isnan(attrs_.select_on == pm::SelectOn::Score ? s[e] : x[e]);
          nonfinite[t] = nan ? 1 : 0;
          const std::int64_t token = integer_at(in.token_ids, in.token_dtype, t);
          for (std::int64_t k = 0; k < K; ++k)
            chosen[static_cast<std::size_t>(k)] = in.table[token * K + k];
        } else {
          select_token_choice(x, s, in.bias, c.data(), group_value.data(), kept.data(),
                              chosen.data(), nonfinite[t]);
        }
        // Step 4 exactly as the reference: double weights, summed in k order, rounded once.
        double w[64];
        std::vector<double> w_big;
        double* wk = w;
        if (K > 64) {
          w_big.resize(static_cast<std::size_t>(K));
          wk = w_big.data();
        }
        double total = 0.0;
        for (std::int64_t k = 0; k < K; ++k) {
          const auto id = chosen[static_cast<std::size_t>(k)];
          wk[k] =
              attrs_.select_on == pm::SelectOn::Logit ? sigmoid_reference(x[id]) : double{s[id]};
          total += wk[k];
        }
        for (std::int64_t k = 0; k < K; ++k) {
          double value = wk[k];
          if (attrs_.renormalize) value /= total + static_cast<double>(attrs_.renorm_eps);
          row_w[k] = static_cast<float>(value * static_cast<double>(attrs_.scale));
          row_ids[k] = static_cast<std::int32_t>(chosen[static_cast<std::size_t>(k)]);
        }
      }
      std::lock_guard lock(sums_mutex_);
      sums.merge(part);
    });

    // mean_score: the reference sums each expert's scores in double in row order. When no
    // partial sum can round (ScoreSums::exact), the per-chunk sums above, added in any order, are
    // those exact sums; otherwise each expert's scores are summed in row order, walking the
    // score matrix row by row (a slice of experts per thread, each with its own running sums).
    std::int64_t valid_rows = 0;
    for (std::int64_t t = 0; t < T; ++t) valid_rows += valid(t) ? 1 : 0;
    const double rows = static_cast<double>(valid_rows);
    if (sums.exact(valid_rows)) {
      for (std::int64_t e = 0; e < E; ++e)
        mean_score[e] = valid_rows == 0
                            ? 0.0f
                            : static_cast<float>(sums.sum[static_cast<std::size_t>(e)] / rows);
    } else {
      parallel_for(E, 64, [&](std::int64_t begin, std::int64_t end) {
        std::vector<double> sum(static_cast<std::size_t>(end - begin), 0.0);
        double* acc = sum.data();
        const std::int64_t width = end - begin;
        for (std::int64_t t = 0; t < T; ++t) {
          if (!valid(t)) continue;
          const float* row = scores_.data() + t * E + begin;
          for (std::int64_t e = 0; e < width; ++e) acc[e] += row[e];
        }
        for (std::int64_t e = 0; e < width; ++e)
          mean_score[begin + e] = valid_rows == 0 ? 0.0f : static_cast<float>(acc[e] / rows);
      });
    }

    // Capacity in assignment order, then perm by a counting sort (stable by construction).
    const std::int64_t A = T * K;
    const std::int64_t capacity = pm::expert_capacity(attrs_, valid_rows);
    std::fill_n(counts, E, 0);
    std::fill_n(dropped, E, 0);
    for (std::int64_t a = 0; a < A; ++a) {
      const std::int32_t e = ids[a];
      if (e < 0) continue;
      if (capacity >= 0 && counts[e] >= capacity) {
        ++dropped[e];
        ids[a] = -1;
        weights[a] = 0.0f;
      } else {
        ++counts[e];
      }
    }
    const std::int64_t block = std::max<std::int64_t>(attrs_.block_size, 1);
    std::int64_t cursor = 0;
    cursor_.resize(static_cast<std::size_t>(E));
    for (std::int64_t e = 0; e < E; ++e) {
      offsets[e] = static_cast<std::int32_t>(cursor);
      cursor_[static_cast<std::size_t>(e)] = cursor;
      cursor += counts[e];
      cursor += (block - cursor % block) % block;
    }
    offsets[E] = static_cast<std::int32_t>(cursor);
    std::fill_n(perm, perm_ref.shape().numel(), static_cast<std::int32_t>(A));
    for (std::int64_t a = 0; a < A; ++a) {
      const std::int32_t e = ids[a];
      if (e < 0) {
        inv[a] = -1;
        continue;
      }
      const std::int64_t slot = cursor_[static_cast<std::size_t>(e)]++;
      perm[slot] = static_cast<std::int32_t>(a);
      inv[a] = static_cast<std::int32_t>(slot);
    }
  }

 private:
  // Steps 1 to 3 for one valid row: c, the group mask, the K best.
  void select_token_choice(const float* row, const float* s, const float* bias, float* c,
                           float* group_value, float* kept, std::int64_t* chosen,
                           std::int32_t& nonfinite) const {
    const std::int64_t E = attrs_.num_experts;
    const float* v = attrs_.select_on == pm::SelectOn::Score ? s : row;
    const bool nan = selection_values(v, bias, E, c);
    nonfinite = nan ? 1 : 0;
    const std::int64_t G = attrs_.num_groups;
    if (G > 1) {
      const std::int64_t per = E / G;
      // group_value holds G values, then each group's best and second member.
      float* best = group_value + G;
      float* second = best + G;
      group_top2(c, G, per, best, second);
      const bool top2 = attrs_.group_score == pm::GroupScore::Top2Sum;
      for (std::int64_t grp = 0; grp < G; ++grp) {
        // A group of one has no second member.
        const float value = top2 ? best[grp] + (per > 1 ? second[grp] : 0.0f) : best[grp];
        group_value[grp] = std::isnan(value) ? kMinusInf : value;
      }
      const std::int64_t TG = attrs_.topk_groups;
      select_best(group_value, 0, G, TG, chosen, kept);
      // The kept groups in ascending order, so that scanning them alone visits experts in index
      // order. When they hold K values above −inf, the K best of the masked row (every other
      // expert at −inf) are exactly the K best among them; otherwise (NaN or −inf rows) the
      // full masked row is scanned, where −inf experts of dropped groups can be chosen.
      std::int64_t kept_groups[64];
      std::vector<std::int64_t> kept_large;
      std::int64_t* order = kept_groups;
      if (TG > 64) {
        kept_large.resize(static_cast<std::size_t>(TG));
        order = kept_large.data();
      }
      std::copy_n(chosen, TG, order);
      std::sort(order, order + TG);
      // Each kept group has two members at least as large as its second best, so with
      // K <= 2 TG at least K experts reach the smallest of those: nothing below it can be
      // among the K best, and the scan skips it.
      const std::int64_t K = attrs_.top_k;
      float floor = kMinusInf;
      if (K <= 2 * TG && per > 1) {
        floor = second[order[0]];
        for (std::int64_t i = 1; i < TG; ++i) floor = std::min(floor, second[order[i]]);
      }
      std::int64_t size = 0;
      for (std::int64_t i = 0; i < TG; ++i)
        size = select_best(c, order[i] * per, (order[i] + 1) * per, K, chosen, kept, size, floor);
      if (size == K && kept[K - 1] > kMinusInf) return;
      std::int64_t next = 0;
      for (std::int64_t grp = 0; grp < G; ++grp) {
        if (next < TG && order[next] == grp) {
          ++next;
          continue;
        }
        std::fill(c + grp * per, c + (grp + 1) * per, kMinusInf);
      }
    }
    select_best(c, 0, E, attrs_.top_k, chosen, kept);
  }

  template <class Valid>
  void check_hash(const Inputs& in, std::int64_t T, const Valid& valid) const {
    const std::int64_t K = attrs_.top_k;
    for (std::int64_t t = 0; t < T; ++t) {
      if (!valid(t)) continue;
      const std::int64_t token = integer_at(in.token_ids, in.token_dtype, t);
      if (token < 0 || token >= in.vocab)
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("{}: token_ids[{}] = {} is outside the hash table's {} rows",
                                label_, t, token, in.vocab));
      const std::int32_t* row = in.table + token * K;
      for (std::int64_t k = 0; k < K; ++k) {
        if (row[k] < 0 || row[k] >= attrs_.num_experts)
          throw Error(ErrorCode::InvalidArgument,
                      fmt::format("{}: hash_table[{}, {}] = {} is not an expert in [0, {})", label_,
                                  token, k, row[k], attrs_.num_experts));
        for (std::int64_t j = 0; j < k; ++j)
          if (row[j] == row[k])
            throw Error(ErrorCode::InvalidArgument,
                        fmt::format("{}: hash_table row {} names expert {} twice (a token's "
                                    "experts must be distinct)",
                                    label_, token, row[k]));
      }
    }
  }

  Node node_;
  pm::RouterAttrs attrs_;
  std::string label_;
  std::vector<float> scores_;
  std::mutex sums_mutex_;
  std::vector<std::int64_t> cursor_;
};

}  // namespace

SupportResult router_supports(const GraphState& g, const Node& n) {
  const auto* a = std::get_if<pm::RouterAttrs>(&n.attrs);
  if (a == nullptr) return SupportResult::no("moe_router node without RouterAttrs");
  if (a->mode == pm::Mode::ExpertChoice)
    return SupportResult::no(
        "moe_router mode expert_choice has no cpu kernel (the reference backend runs it)");
  const std::size_t expected =
      1 + (a->use_bias ? 1 : 0) + (a->use_valid ? 1 : 0) + (a->mode == pm::Mode::Hash ? 2 : 0);
  if (n.inputs.size() != expected || n.outputs.size() != 9)
    return SupportResult::no("moe_router inputs or outputs do not match its attributes");
  const ValueInfo& logits = g.input_of(n, 0);
  if (logits.dtype != DType::F32 && logits.dtype != DType::BF16 && logits.dtype != DType::F16)
    return SupportResult::no(
        fmt::format("moe_router logits of dtype {}", dtype_name(logits.dtype)));
  if (logits.shape.rank() != 2 || logits.shape[1] != a->num_experts || a->num_experts < 1 ||
      a->top_k < 1 || a->top_k > a->num_experts || a->num_groups < 1 ||
      a->num_experts % a->num_groups != 0 || a->topk_groups < 1 || a->topk_groups > a->num_groups)
    return SupportResult::no("moe_router attributes do not fit its logits");
  if (logits.shape[0] * a->top_k > std::numeric_limits<std::int32_t>::max())
    return SupportResult::no("moe_router with more than 2^31 assignments");
  for (std::size_t i = 0; i < n.outputs.size(); ++i) {
    const DType want = i == 1 || i == 8 ? DType::F32 : DType::I32;
    if (g.output_of(n, i).dtype != want)
      return SupportResult::no("moe_router outputs of unexpected dtypes");
  }
  if (g.output_of(n, 4).shape.numel() != pm::perm_rows(*a, logits.shape[0]))
    return SupportResult::no("moe_router perm output does not match perm_rows");
  std::size_t next = 1;
  if (a->use_bias && g.input_of(n, next++).dtype != DType::F32)
    return SupportResult::no("moe_router bias must be f32");
  if (a->use_valid) {
    const DType v = g.input_of(n, next++).dtype;
    if (v != DType::I8 && v != DType::I32 && v != DType::I64)
      return SupportResult::no("moe_router valid must be i8, i32 or i64");
  }
  if (a->mode == pm::Mode::Hash) {
    const DType t = g.input_of(n, next).dtype;
    if ((t != DType::I32 && t != DType::I64) || g.input_of(n, next + 1).dtype != DType::I32)
      return SupportResult::no("moe_router hash inputs must be i32/i64 token ids and an i32 table");
  }
  return SupportResult::yes();
}

std::unique_ptr<CpuKernel> lower_router(CpuEnv& env, const GraphState& g, const Node& n) {
  (void)env;
  return std::make_unique<RouterKernel>(g, n);
}

}  // namespace porta::detail::cpu::moe
