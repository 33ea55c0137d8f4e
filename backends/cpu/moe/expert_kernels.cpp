// The cpu grouped_matmul and moe_experts: each expert's block of rows through the ExpertGemm
// engine (oneDNN for large blocks, our weight-streaming loop for small ones), experts with no
// rows skipped, so that at decode only the active experts' weights are read. moe_experts fuses
// permute, gate/up, SwiGLU, down and combine in f32, plus the optional shared expert.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <variant>

#include <fmt/format.h>

#include <porta/error.hpp>
#include <porta/moe.hpp>

#include "moe/moe_cpu.hpp"

namespace porta::detail::cpu::moe {
namespace {

bool is_gemm_weight(DType t) { return t == DType::F32 || t == DType::BF16 || t == DType::F16; }
bool is_activation(DType t) { return t == DType::F32 || t == DType::BF16 || t == DType::F16; }

// rows [P, H] f32 times w [E, N, H] by offsets, into y [P, N] f32; rows outside every expert's
// block are zero.
void grouped_rows(ExpertGemm& gemm, const float* rows, std::int64_t num_rows, const TensorRef& w,
                  std::int64_t experts, const std::int32_t* offsets, float* y) {
  const std::int64_t n = gemm.out_features(), h = gemm.in_features();
  std::fill(y, y + offsets[0] * n, 0.0f);
  std::fill(y + static_cast<std::int64_t>(offsets[experts]) * n, y + num_rows * n, 0.0f);
  std::vector<ExpertGemm::Block> small, large;
  for (std::int64_t e = 0; e < experts; ++e) {
    const std::int64_t first = offsets[e], count = offsets[e + 1] - offsets[e];
    if (count == 0) continue;  // an idle expert's weights are never touched
    (count <= ExpertGemm::kSmallRows ? small : large).push_back({e, first, count});
  }
  gemm.run_large_blocks(large, rows, w, y);
  gemm.run_small_blocks(small, rows, h, w, y, n);
}

// e^x in f32 for x in [-87, 88] (clamped to it; NaN stays NaN): x = n ln2 + r, |r| <= ln2 / 2,
// e^r by its Taylor series to degree 7 (truncation below 6e-9): within 1 ulp of std::exp for
// every f32 in [-87, 88] (checked exhaustively when written).
__attribute__((target("avx2,fma"))) inline __m256 exp8(__m256 x) {
  x = _mm256_max_ps(_mm256_set1_ps(-87.0f), _mm256_min_ps(_mm256_set1_ps(88.0f), x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.0f / 5040);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i scale =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(scale));
}

__attribute__((target("avx2,fma"))) void swiglu_avx2(float* gate, const float* up,
                                                     std::int64_t begin, std::int64_t end) {
  const __m256 one = _mm256_set1_ps(1.0f);
  std::int64_t i = begin;
  for (; i + 8 <= end; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
    _mm256_storeu_ps(
        gate + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
  }
  for (; i < end; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

// silu(gate) · up in place into gate, in parallel (the AVX2 exp: results within a few f32 ulps
// of std::exp's, not bit-identical to the reference; for g < -87 the result is about
// g · e^-88 instead of -0).
void swiglu_in_place(float* gate, const float* up, std::int64_t count) {
  // Chunks of 16 K values: a decode step's few routed rows stay on one thread.
  parallel_for(count, 16384, [&](std::int64_t begin, std::int64_t end) {
    if (has_avx2()) return swiglu_avx2(gate, up, begin, end);
    for (std::int64_t i = begin; i < end; ++i) {
      const float g = gate[i];
      gate[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
  });
}

const float* as_f32(const TensorRef& t, std::vector<float>& scratch) {
  if (t.dtype() == DType::F32) return t.host_as<const float>();
  scratch.resize(static_cast<std::size_t>(t.shape().numel()));
  widen_to_f32(t.host(), t.dtype(), t.shape().numel(), scratch.data());
  return scratch.data();
}

class GroupedKernel final : public CpuKernel {
 public:
  GroupedKernel(CpuEnv& env, const GraphState& g, const Node& n)
      : node_(n),
        label_(node_label(g, n)),
        gemm_(env, g.input_of(n, 1).shape[1], g.input_of(n, 1).shape[2], g.input_of(n, 1).dtype) {}

  void run(const ExecContext& ctx) override {
    const TensorRef& rows_ref = ctx.input(node_, 0);
    const TensorRef& w_ref = ctx.input(node_, 1);
    const TensorRef& off_ref = ctx.input(node_, 2);
    const std::int64_t num_rows = rows_ref.shape()[0];
    const std::int64_t experts = w_ref.shape()[0];
    const std::int32_t* offsets = off_ref.host_as<const std::int32_t>();
    check_offsets(label_, offsets, experts + 1, num_rows);
    const float* rows = as_f32(rows_ref, rows_);
    const TensorRef& out_ref = ctx.output(node_, 0);
    float* y = out_ref.host_as<float>();
    if (out_ref.dtype() != DType::F32) {
      result_.resize(static_cast<std::size_t>(out_ref.shape().numel()));
      y = result_.data();
    }
    grouped_rows(gemm_, rows, num_rows, w_ref, experts, offsets, y);
    if (out_ref.dtype() != DType::F32)
      narrow_from_f32(y, out_ref.dtype(), out_ref.shape().numel(), out_ref.host());
  }

 private:
  Node node_;
  std::string label_;
  ExpertGemm gemm_;
  std::vector<float> rows_, result_;
};

class ExpertsKernel final : public CpuKernel {
 public:
  ExpertsKernel(CpuEnv& env, const GraphState& g, const Node& n)
      : x_(env.shared_scratch(0)),
        xp_(env.shared_scratch(1)),
        gate_rows_(env.shared_scratch(2)),
        up_rows_(env.shared_scratch(3)),
        down_rows_(env.shared_scratch(4)),
        result_(env.shared_scratch(5)),
        s_gate_(env.shared_scratch(6)),
        s_up_(env.shared_scratch(7)),
        s_down_(env.shared_scratch(8)),
        node_(n),
        attrs_(std::get<porta::moe::ExpertsAttrs>(n.attrs)),
        label_(node_label(g, n)),
        gate_(env, g.input_of(n, 5).shape[1], g.input_of(n, 5).shape[2], g.input_of(n, 5).dtype),
        up_(env, g.input_of(n, 6).shape[1], g.input_of(n, 6).shape[2], g.input_of(n, 6).dtype),
        down_(env, g.input_of(n, 7).shape[1], g.input_of(n, 7).shape[2], g.input_of(n, 7).dtype) {
    if (attrs_.has_shared) {
      shared_gate_.emplace(env, g.input_of(n, 8).shape[0], g.input_of(n, 8).shape[1],
                           g.input_of(n, 8).dtype);
      shared_up_.emplace(env, g.input_of(n, 9).shape[0], g.input_of(n, 9).shape[1],
                         g.input_of(n, 9).dtype);
      shared_down_.emplace(env, g.input_of(n, 10).shape[0], g.input_of(n, 10).shape[1],
                           g.input_of(n, 10).dtype);
    }
  }

  void run(const ExecContext& ctx) override {
    const TensorRef& x_ref = ctx.input(node_, 0);
    const TensorRef& w_ref = ctx.input(node_, 1);
    const std::int64_t T = x_ref.shape()[0], H = x_ref.shape()[1];
    const std::int64_t S = w_ref.shape()[1];  // assignment slots per token
    const std::int64_t E = ctx.input(node_, 5).shape()[0];
    const std::int64_t I = gate_.out_features();
    const TensorRef& perm_ref = ctx.input(node_, 3);
    const std::int64_t P = perm_ref.shape()[0];
    const auto* offsets = ctx.input(node_, 2).host_as<const std::int32_t>();
    const auto* perm = perm_ref.host_as<const std::int32_t>();
    const auto* inv = ctx.input(node_, 4).host_as<const std::int32_t>();
    check_offsets(label_, offsets, E + 1, P);
    check_perm(label_, perm, P);
    check_inv(label_, inv, T * S, P);

    const float* x = as_f32(x_ref, x_);
    // Permute: the rows of the experts' blocks (padding and unused slots are zero rows).
    xp_.resize(static_cast<std::size_t>(P * H));
    parallel_for(P, 16, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) {
        float* row = xp_.data() + i * H;
        if (perm[i] >= T * S)
          std::fill_n(row, H, 0.0f);
        else
          std::copy_n(x + static_cast<std::int64_t>(perm[i] / S) * H, H, row);
      }
    });
    gate_rows_.resize(static_cast<std::size_t>(P * I));
    up_rows_.resize(static_cast<std::size_t>(P * I));
    down_rows_.resize(static_cast<std::size_t>(P * H));
    bool decode = T <= ExpertGemm::kSmallRows;
    for (std::int64_t e = 0; e < E && decode; ++e)
      decode = offsets[e + 1] - offsets[e] <= ExpertGemm::kSmallRows;
    if (decode) {
      decode_projections(ctx, x, T, H, E, I, P, offsets);
    } else {
      grouped_rows(gate_, xp_.data(), P, ctx.input(node_, 5), E, offsets, gate_rows_.data());
      grouped_rows(up_, xp_.data(), P, ctx.input(node_, 6), E, offsets, up_rows_.data());
      swiglu_in_place(gate_rows_.data(), up_rows_.data(), P * I);
      grouped_rows(down_, gate_rows_.data(), P, ctx.input(node_, 7), E, offsets, down_rows_.data());
    }

    const TensorRef& out_ref = ctx.output(node_, 0);
    float* out = out_ref.host_as<float>();
    if (out_ref.dtype() != DType::F32) {
      result_.resize(static_cast<std::size_t>(T * H));
      out = result_.data();
    }
    combine_f32(down_rows_.data(), H, w_ref.host_as<const float>(), inv, T, S, out);
    if (attrs_.has_shared) add_shared(ctx, x, T, H, out, decode);
    if (out_ref.dtype() != DType::F32) narrow_from_f32(out, out_ref.dtype(), T * H, out_ref.host());
  }

 private:
  // Decode (every block, and the shared expert's T rows, within kSmallRows): the gate and up
  // projections of every active expert and of the shared expert in one parallel pass, SwiGLU,
  // then every down projection in a second: two barriers per layer instead of six.
  void decode_projections(const ExecContext& ctx, const float* x, std::int64_t T, std::int64_t H,
                          std::int64_t E, std::int64_t I, std::int64_t P,
                          const std::int32_t* offsets) {
    const ExpertWeights wg(ctx.input(node_, 5)), wu(ctx.input(node_, 6)), wd(ctx.input(node_, 7));
    const std::int64_t Is = attrs_.has_shared ? shared_gate_->out_features() : 0;
    if (attrs_.has_shared) {
      s_gate_.resize(static_cast<std::size_t>(T * Is));
      s_up_.resize(static_cast<std::size_t>(T * Is));
      s_down_.resize(static_cast<std::size_t>(T * H));
    }
    // Rows outside every block (padding) are zero, as grouped_rows leaves them.
    for (auto* rows : {&gate_rows_, &up_rows_}) {
      std::fill_n(rows->data(), offsets[0] * I, 0.0f);
      std::fill(rows->data() + static_cast<std::int64_t>(offsets[E]) * I, rows->data() + P * I,
                0.0f);
    }
    std::fill_n(down_rows_.data(), offsets[0] * H, 0.0f);
    std::fill(down_rows_.data() + static_cast<std::int64_t>(offsets[E]) * H,
              down_rows_.data() + P * H, 0.0f);
    std::vector<SmallJob> jobs;
    for (std::int64_t e = 0; e < E; ++e) {
      const std::int64_t first = offsets[e], rows = offsets[e + 1] - offsets[e];
      if (rows == 0) continue;
      const float* xe = xp_.data() + first * H;
      jobs.push_back(
          {xe, H, rows, wg.at(e), gate_.weight_dtype(), H, I, gate_rows_.data() + first * I, I});
      jobs.push_back(
          {xe, H, rows, wu.at(e), up_.weight_dtype(), H, I, up_rows_.data() + first * I, I});
    }
    if (attrs_.has_shared) {
      jobs.push_back({x, H, T, ExpertWeights(ctx.input(node_, 8)).at(0),
                      shared_gate_->weight_dtype(), H, Is, s_gate_.data(), Is});
      jobs.push_back({x, H, T, ExpertWeights(ctx.input(node_, 9)).at(0), shared_up_->weight_dtype(),
                      H, Is, s_up_.data(), Is});
    }
    run_small_jobs(jobs);
    swiglu_in_place(gate_rows_.data(), up_rows_.data(), P * I);
    if (attrs_.has_shared) swiglu_in_place(s_gate_.data(), s_up_.data(), T * Is);
    jobs.clear();
    for (std::int64_t e = 0; e < E; ++e) {
      const std::int64_t first = offsets[e], rows = offsets[e + 1] - offsets[e];
      if (rows == 0) continue;
      jobs.push_back({gate_rows_.data() + first * I, I, rows, wd.at(e), down_.weight_dtype(), I, H,
                      down_rows_.data() + first * H, H});
    }
    if (attrs_.has_shared)
      jobs.push_back({s_gate_.data(), Is, T, ExpertWeights(ctx.input(node_, 10)).at(0),
                      shared_down_->weight_dtype(), Is, H, s_down_.data(), H});
    run_small_jobs(jobs);
  }

  // The shared expert on every token, scaled per token by sigmoid(x · w) when gated, added on
  // (its projections already computed into s_down_ when `projected`).
  void add_shared(const ExecContext& ctx, const float* x, std::int64_t T, std::int64_t H,
                  float* out, bool projected) {
    if (!projected) {
      const std::int64_t Is = shared_gate_->out_features();
      const std::int32_t all[2] = {0, static_cast<std::int32_t>(T)};
      s_gate_.resize(static_cast<std::size_t>(T * Is));
      s_up_.resize(static_cast<std::size_t>(T * Is));
      s_down_.resize(static_cast<std::size_t>(T * H));
      grouped_rows(*shared_gate_, x, T, ctx.input(node_, 8), 1, all, s_gate_.data());
      grouped_rows(*shared_up_, x, T, ctx.input(node_, 9), 1, all, s_up_.data());
      swiglu_in_place(s_gate_.data(), s_up_.data(), T * Is);
      grouped_rows(*shared_down_, s_gate_.data(), T, ctx.input(node_, 10), 1, all, s_down_.data());
    }
    std::vector<float> factor(static_cast<std::size_t>(T), 1.0f);
    if (attrs_.shared_gate == porta::moe::SharedGate::Sigmoid) {
      const TensorRef& gw = ctx.input(node_, 11);
      std::vector<float> logit(static_cast<std::size_t>(T));
      for (std::int64_t t0 = 0; t0 < T; t0 += ExpertGemm::kSmallRows) {
        const std::int64_t rows = std::min<std::int64_t>(ExpertGemm::kSmallRows, T - t0);
        small_gemm(x + t0 * H, H, rows, gw.host(), gw.dtype(), H, 0, 1, logit.data() + t0, 1);
      }
      for (std::int64_t t = 0; t < T; ++t)
        factor[static_cast<std::size_t>(t)] =
            1.0f / (1.0f + std::exp(-logit[static_cast<std::size_t>(t)]));
    }
    parallel_for(T, 4, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t t = begin; t < end; ++t)
        for (std::int64_t j = 0; j < H; ++j)
          out[t * H + j] +=
              factor[static_cast<std::size_t>(t)] * s_down_[static_cast<std::size_t>(t * H + j)];
    });
  }

  // The plan's shared scratch (CpuEnv::shared_scratch): every MoE layer reuses the same rows.
  std::vector<float>&x_, &xp_, &gate_rows_, &up_rows_, &down_rows_, &result_, &s_gate_, &s_up_,
      &s_down_;
  Node node_;
  porta::moe::ExpertsAttrs attrs_;
  std::string label_;
  ExpertGemm gate_, up_, down_;
  std::optional<ExpertGemm> shared_gate_, shared_up_, shared_down_;
};

}  // namespace

SupportResult grouped_supports(const GraphState& g, const Node& n) {
  if (!is_activation(g.input_of(n, 0).dtype))
    return SupportResult::no("grouped_matmul rows must be f32, bf16 or f16");
  if (!is_gemm_weight(g.input_of(n, 1).dtype))
    return SupportResult::no(
        fmt::format("grouped_matmul weights of dtype {} (f32, bf16 or f16 only)",
                    dtype_name(g.input_of(n, 1).dtype)));
  if (g.input_of(n, 2).dtype != DType::I32)
    return SupportResult::no("grouped_matmul offsets must be i32");
  return SupportResult::yes();
}

std::unique_ptr<CpuKernel> lower_grouped(CpuEnv& env, const GraphState& g, const Node& n) {
  return std::make_unique<GroupedKernel>(env, g, n);
}

SupportResult experts_supports(const GraphState& g, const Node& n) {
  const auto* a = std::get_if<porta::moe::ExpertsAttrs>(&n.attrs);
  if (a == nullptr) return SupportResult::no("moe_experts node without ExpertsAttrs");
  const std::size_t expected =
      8 + (a->has_shared ? (a->shared_gate == porta::moe::SharedGate::Sigmoid ? 4 : 3) : 0);
  if (n.inputs.size() != expected)
    return SupportResult::no("moe_experts inputs do not match its attributes");
  if (!is_activation(g.input_of(n, 0).dtype))
    return SupportResult::no("moe_experts x must be f32, bf16 or f16");
  if (g.input_of(n, 1).dtype != DType::F32)
    return SupportResult::no("moe_experts routing weights must be f32");
  for (std::size_t i = 2; i < 5; ++i)
    if (g.input_of(n, i).dtype != DType::I32)
      return SupportResult::no("moe_experts offsets, perm and inv must be i32");
  return expert_weights_supported(g, n, "moe_experts");
}

SupportResult expert_weights_supported(const GraphState& g, const Node& n, std::string_view op) {
  for (std::size_t i = 5; i < n.inputs.size(); ++i)
    if (!is_gemm_weight(g.input_of(n, i).dtype))
      return SupportResult::no(fmt::format("{} weight '{}' of dtype {} (f32, bf16 or f16 only)", op,
                                           g.input_of(n, i).name,
                                           dtype_name(g.input_of(n, i).dtype)));
  if (g.input_of(n, 3).shape.numel() > std::numeric_limits<std::int32_t>::max())
    return SupportResult::no(fmt::format("{} with more than 2^31 rows", op));
  return SupportResult::yes();
}

std::unique_ptr<CpuKernel> lower_experts(CpuEnv& env, const GraphState& g, const Node& n) {
  return std::make_unique<ExpertsKernel>(env, g, n);
}

void expert_ffn_rows(ExpertGemm& gate, ExpertGemm& up, ExpertGemm& down, const float* rows,
                     std::int64_t num_rows, const TensorRef& w_gate, const TensorRef& w_up,
                     const TensorRef& w_down, std::int64_t experts, const std::int32_t* offsets,
                     std::vector<float>& gate_rows, std::vector<float>& up_rows, float* y) {
  const std::int64_t inner = gate.out_features();
  gate_rows.resize(static_cast<std::size_t>(num_rows * inner));
  up_rows.resize(static_cast<std::size_t>(num_rows * inner));
  grouped_rows(gate, rows, num_rows, w_gate, experts, offsets, gate_rows.data());
  grouped_rows(up, rows, num_rows, w_up, experts, offsets, up_rows.data());
  swiglu_in_place(gate_rows.data(), up_rows.data(), num_rows * inner);
  grouped_rows(down, gate_rows.data(), num_rows, w_down, experts, offsets, y);
}

}  // namespace porta::detail::cpu::moe
