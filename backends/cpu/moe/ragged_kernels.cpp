// The cpu moe_permute (row gathers by perm, a byte copy in parallel), moe_combine (the fixed-
// order weighted sum, vectorised without fusing the multiply and the add, so that it matches the
// reference bit for bit) and the index checks every MoE kernel runs before it indexes.
#include <immintrin.h>

#include <cstring>
#include <variant>

#include <fmt/format.h>

#include <porta/error.hpp>

#include "moe/moe_cpu.hpp"

namespace porta::detail::cpu::moe {
namespace {

// One token's output row. The multiply and the add are separate instructions (no FMA), exactly
// the reference's `term = w · y; out += term` in f32.
__attribute__((target("avx2"))) void combine_row_avx2(const float* rows, std::int64_t hidden,
                                                      const float* w, const std::int32_t* inv,
                                                      std::int64_t top_k, float* out) {
  std::int64_t j = 0;
  for (; j + 8 <= hidden; j += 8) {
    __m256 acc = _mm256_setzero_ps();
    for (std::int64_t k = 0; k < top_k; ++k) {
      if (inv[k] < 0) continue;
      const __m256 term =
          _mm256_mul_ps(_mm256_set1_ps(w[k]), _mm256_loadu_ps(rows + inv[k] * hidden + j));
      acc = _mm256_add_ps(acc, term);
    }
    _mm256_storeu_ps(out + j, acc);
  }
  for (; j < hidden; ++j) {
    float acc = 0.0f;
    for (std::int64_t k = 0; k < top_k; ++k) {
      if (inv[k] < 0) continue;
      const float term = w[k] * rows[inv[k] * hidden + j];
      acc += term;
    }
    out[j] = acc;
  }
}

void combine_row_plain(const float* rows, std::int64_t hidden, const float* w,
                       const std::int32_t* inv, std::int64_t top_k, float* out) {
  std::fill_n(out, hidden, 0.0f);
  for (std::int64_t k = 0; k < top_k; ++k) {
    if (inv[k] < 0) continue;
    const float* row = rows + inv[k] * hidden;
    for (std::int64_t j = 0; j < hidden; ++j) {
      const float term = w[k] * row[j];
      out[j] += term;
    }
  }
}

const std::int32_t* indices(const TensorRef& t) { return t.host_as<const std::int32_t>(); }

class PermuteKernel final : public CpuKernel {
 public:
  PermuteKernel(const GraphState& g, const Node& n)
      : node_(n), top_k_(std::get<MoePermuteAttrs>(n.attrs).top_k), label_(node_label(g, n)) {}

  void run(const ExecContext& ctx) override {
    const TensorRef& x = ctx.input(node_, 0);
    const TensorRef& perm_ref = ctx.input(node_, 1);
    const std::int64_t rows = perm_ref.shape()[0];
    const std::int32_t* perm = indices(perm_ref);
    check_perm(label_, perm, rows);
    const std::int64_t sentinel = x.shape()[0] * top_k_;
    const std::size_t row_bytes = static_cast<std::size_t>(x.shape()[1]) * dtype_size(x.dtype());
    if (rows == 0 || row_bytes == 0) return;
    const auto* src = static_cast<const char*>(x.host());
    auto* dst = static_cast<char*>(ctx.output(node_, 0).host());
    parallel_for(rows, 16, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) {
        char* out = dst + static_cast<std::size_t>(i) * row_bytes;
        if (perm[i] >= sentinel)
          std::memset(out, 0, row_bytes);
        else
          std::memcpy(out, src + static_cast<std::size_t>(perm[i] / top_k_) * row_bytes, row_bytes);
      }
    });
  }

 private:
  Node node_;
  std::int64_t top_k_;
  std::string label_;
};

class CombineKernel final : public CpuKernel {
 public:
  CombineKernel(const GraphState& g, const Node& n) : node_(n), label_(node_label(g, n)) {}

  void run(const ExecContext& ctx) override {
    const TensorRef& rows_ref = ctx.input(node_, 0);
    const TensorRef& w_ref = ctx.input(node_, 1);
    const std::int64_t tokens = w_ref.shape()[0], top_k = w_ref.shape()[1];
    const std::int64_t hidden = rows_ref.shape()[1];
    const std::int32_t* inv = indices(ctx.input(node_, 2));
    check_inv(label_, inv, tokens * top_k, rows_ref.shape()[0]);
    const float* rows = rows_ref.host_as<const float>();
    if (rows_ref.dtype() != DType::F32) {
      widened_.resize(static_cast<std::size_t>(rows_ref.shape().numel()));
      widen_to_f32(rows_ref.host(), rows_ref.dtype(), rows_ref.shape().numel(), widened_.data());
      rows = widened_.data();
    }
    const TensorRef& out_ref = ctx.output(node_, 0);
    float* out = out_ref.host_as<float>();
    if (out_ref.dtype() != DType::F32) {
      result_.resize(static_cast<std::size_t>(tokens * hidden));
      out = result_.data();
    }
    combine_f32(rows, hidden, w_ref.host_as<const float>(), inv, tokens, top_k, out);
    if (out_ref.dtype() != DType::F32)
      narrow_from_f32(out, out_ref.dtype(), tokens * hidden, out_ref.host());
  }

 private:
  Node node_;
  std::string label_;
  std::vector<float> widened_, result_;
};

}  // namespace

void combine_f32(const float* rows, std::int64_t hidden, const float* weights,
                 const std::int32_t* inv, std::int64_t tokens, std::int64_t top_k, float* out) {
  const bool avx2 = has_avx2();
  parallel_for(tokens, 4, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t t = begin; t < end; ++t) {
      if (avx2)
        combine_row_avx2(rows, hidden, weights + t * top_k, inv + t * top_k, top_k,
                         out + t * hidden);
      else
        combine_row_plain(rows, hidden, weights + t * top_k, inv + t * top_k, top_k,
                          out + t * hidden);
    }
  });
}

std::string node_label(const GraphState& g, const Node& n) {
  (void)g;
  return fmt::format("{} '{}'", op_name(n.op), n.name);
}

void check_offsets(const std::string& label, const std::int32_t* offsets, std::int64_t count,
                   std::int64_t rows) {
  if (count == 0) return;
  if (offsets[0] < 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{}: offsets[0] = {} is negative", label, offsets[0]));
  for (std::int64_t e = 1; e < count; ++e)
    if (offsets[e] < offsets[e - 1])
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("{}: offsets must be non-decreasing, but offsets[{}] = {} < "
                              "offsets[{}] = {}",
                              label, e, offsets[e], e - 1, offsets[e - 1]));
  if (offsets[count - 1] > rows)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{}: offsets[{}] = {} exceeds the {} rows", label, count - 1,
                            offsets[count - 1], rows));
}

void check_perm(const std::string& label, const std::int32_t* perm, std::int64_t count) {
  for (std::int64_t i = 0; i < count; ++i)
    if (perm[i] < 0)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("{}: perm[{}] = {} is negative (entries are assignment indices, or "
                              "the sentinel T*K for padding)",
                              label, i, perm[i]));
}

void check_inv(const std::string& label, const std::int32_t* inv, std::int64_t count,
               std::int64_t rows) {
  for (std::int64_t a = 0; a < count; ++a)
    if (inv[a] < -1 || inv[a] >= rows)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("{}: inv[{}] = {} is neither -1 nor a row in [0, {})", label, a,
                              inv[a], rows));
}

SupportResult permute_supports(const GraphState& g, const Node& n) {
  if (!std::holds_alternative<MoePermuteAttrs>(n.attrs) ||
      std::get<MoePermuteAttrs>(n.attrs).top_k < 1)
    return SupportResult::no("moe_permute needs MoePermuteAttrs with top_k >= 1");
  if (g.input_of(n, 1).dtype != DType::I32)
    return SupportResult::no("moe_permute perm must be i32");
  if (g.input_of(n, 0).dtype != g.output_of(n, 0).dtype)
    return SupportResult::no("moe_permute output dtype differs from its input's");
  return SupportResult::yes();
}

std::unique_ptr<CpuKernel> lower_permute(CpuEnv& env, const GraphState& g, const Node& n) {
  (void)env;
  return std::make_unique<PermuteKernel>(g, n);
}

SupportResult combine_supports(const GraphState& g, const Node& n) {
  const DType rows = g.input_of(n, 0).dtype;
  if (rows != DType::F32 && rows != DType::BF16 && rows != DType::F16)
    return SupportResult::no(fmt::format("moe_combine rows of dtype {}", dtype_name(rows)));
  if (g.input_of(n, 1).dtype != DType::F32 || g.input_of(n, 2).dtype != DType::I32)
    return SupportResult::no("moe_combine needs f32 weights and i32 inv");
  return SupportResult::yes();
}

std::unique_ptr<CpuKernel> lower_combine(CpuEnv& env, const GraphState& g, const Node& n) {
  (void)env;
  return std::make_unique<CombineKernel>(g, n);
}

}  // namespace porta::detail::cpu::moe
