// matmul against a constant weight read where it is (the checkpoint mapping), never copied whole:
//
// - a few rows (decode: M <= 8) against a bf16 weight, or an f32 one stored as [N, K]: each call
//   streams the weight once through the expert kernels' dot-product loop (moe/expert_gemm.cpp:
//   every weight row loaded once for all M rows, f32 accumulation), split by output columns
//   across threads. oneDNN would instead reorder the weight into its blocked layout (a copy of
//   every weight, per graph) or, without a bf16 kernel for the ISA, widen it to f32 and stream
//   twice the bytes the model stores.
// - many rows (prefill) against a bf16 weight stored as [N, K] with f32 activations (oneDNN has
//   no f32 x bf16 matmul; rounding the activations to bf16 would cost accuracy): the expert GEMM
//   engine's large-block path with the weight as one expert, which widens it to f32 one
//   L2-sized panel at a time and runs a oneDNN f32 matmul per panel, in parallel over columns.
//
// A bf16 weight stored as [K, N] at M <= 8 is transposed once into [N, K] rows (a counted copy).
#include <algorithm>
#include <cstring>
#include <optional>

#include "cpu_util.hpp"
#include "matmul.hpp"
#include "moe/moe_cpu.hpp"

namespace porta::detail::cpu {

namespace {

bool few_rows(const ValueInfo& out) {
  return out.shape[0] >= 1 && out.shape[0] <= moe::ExpertGemm::kSmallRows;
}

class WeightRowsMatmulKernel final : public CpuKernel {
 public:
  WeightRowsMatmulKernel(CpuEnv& env, const GraphState& g, const Node& n) {
    const auto& attrs = std::get<MatmulAttrs>(n.attrs);
    const ValueInfo& a = g.input_of(n, 0);
    const ValueInfo& b = g.input_of(n, 1);
    const ValueInfo& out = g.output_of(n, 0);
    a_ = n.inputs[0];
    out_ = n.outputs[0];
    a_dtype_ = a.dtype;
    out_dtype_ = out.dtype;
    transpose_a_ = attrs.transpose_a;
    m_ = out.shape[0];
    n_ = out.shape[1];
    k_ = attrs.transpose_a ? a.shape[0] : a.shape[1];
    w_dtype_ = b.dtype;
    // [N, K] rows: the stored layout when b is transposed (an nn.Linear weight, read in place
    // from the graph's constant, which outlives the plan), else a transpose of [K, N].
    if (attrs.transpose_b) {
      rows_ = b.constant.data();
    } else {
      const std::size_t size = dtype_size(b.dtype);
      const auto* src = static_cast<const char*>(b.constant.data());
      weight_.resize(static_cast<std::size_t>(n_ * k_) * size);
      for (std::int64_t kk = 0; kk < k_; ++kk)
        for (std::int64_t j = 0; j < n_; ++j)
          std::memcpy(weight_.data() + static_cast<std::size_t>(j * k_ + kk) * size,
                      src + static_cast<std::size_t>(kk * n_ + j) * size, size);
      rows_ = weight_.data();
    }
    if (!few_rows(out)) panels_.emplace(env, n_, k_, w_dtype_);
    if (transpose_a_ || a_dtype_ != DType::F32) x_ = F32Scratch(static_cast<std::size_t>(m_ * k_));
    if (out_dtype_ != DType::F32) y_ = F32Scratch(static_cast<std::size_t>(m_ * n_));
  }

  void run(const ExecContext& ctx) override {
    const void* a = value_ptr(ctx, a_);
    const float* x = static_cast<const float*>(a);
    if (transpose_a_) {  // a is [K, M]
      float* wide = x_.data();
      for (std::int64_t kk = 0; kk < k_; ++kk)
        for (std::int64_t r = 0; r < m_; ++r)
          wide[r * k_ + kk] = load_as_f32(a, a_dtype_, static_cast<std::size_t>(kk * m_ + r));
      x = wide;
    } else if (a_dtype_ != DType::F32) {
      load_f32(a, a_dtype_, x_.data(), static_cast<std::size_t>(m_ * k_));
      x = x_.data();
    }
    void* out = value_ptr(ctx, out_);
    float* y = out_dtype_ == DType::F32 ? static_cast<float*>(out) : y_.data();
    if (panels_) {
      panels_->run_large_blocks({{0, 0, m_}}, x, moe::ExpertWeights(rows_), y);
    } else {
      // Slices of output columns, 64 weight rows at the least per thread.
      parallel_for(n_, 64, [&](std::int64_t begin, std::int64_t end) {
        moe::small_gemm(x, k_, m_, rows_, w_dtype_, k_, begin, end, y, n_);
      });
    }
    if (out_dtype_ != DType::F32) store_f32(y, out_dtype_, out, static_cast<std::size_t>(m_ * n_));
  }

  std::uint64_t weight_copy_bytes() const override { return weight_.size(); }

 private:
  ValueId a_ = 0, out_ = 0;
  DType a_dtype_ = DType::F32, out_dtype_ = DType::F32, w_dtype_ = DType::BF16;
  bool transpose_a_ = false;
  std::int64_t m_ = 0, n_ = 0, k_ = 0;
  const void* rows_ = nullptr;
  std::vector<char> weight_;  // only when b is stored [K, N]
  std::optional<moe::ExpertGemm> panels_;
  F32Scratch x_, y_;
};

}  // namespace

bool use_weight_rows_matmul(const dnnl::engine& engine, const GraphState& g, const Node& n) {
  const auto& attrs = std::get<MatmulAttrs>(n.attrs);
  const ValueInfo& a = g.input_of(n, 0);
  const ValueInfo& b = g.input_of(n, 1);
  const ValueInfo& out = g.output_of(n, 0);
  if (b.kind != ValueKind::Constant || a.shape.rank() != 2 || b.shape.rank() != 2 ||
      out.shape.rank() != 2 || out.shape[0] < 1 || out.shape[1] < 1 ||
      (a.dtype != DType::F32 && a.dtype != DType::BF16))
    return false;
  if (few_rows(out))
    return b.dtype == DType::BF16 || (b.dtype == DType::F32 && attrs.transpose_b);
  // Prefill: a bf16 [N, K] weight against activations that a native bf16 matmul cannot take.
  const bool native = a.dtype == DType::BF16 && native_bf16_matmul(engine);
  return b.dtype == DType::BF16 && attrs.transpose_b && !native;
}

std::unique_ptr<CpuKernel> lower_weight_rows_matmul(CpuEnv& env, const GraphState& g,
                                                    const Node& n) {
  return std::make_unique<WeightRowsMatmulKernel>(env, g, n);
}

}  // namespace porta::detail::cpu
