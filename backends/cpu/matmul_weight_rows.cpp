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
//   engine's large-block path with the weight as one expert (moe_cpu.hpp: up to ~128 rows
//   porta's panel kernel, more a oneDNN f32 sgemm per L2-sized widened panel), in parallel over
//   columns.
//
// - an f16 weight stored as [N, K] at any M (oneDNN 2.6 has no f16 matmul without AVX512-FP16):
//   the same two paths, its rows widened by vcvtph2ps (dot rows; panels of the sgemm path).
//
// A bf16 weight stored as [K, N] at M <= 8 is transposed once into [N, K] rows (a counted copy).
//
// Batched 3-D matmuls [B, M, K] x [B, N, K]ᵀ against a constant weight (MLA's per-head absorbed
// projections) run the same way per batch entry: each batch entry is one "expert" of the GEMM
// engine, its weight at a fixed stride, so a bf16 weight is never widened whole (it was: 134 MB of
// f32 copies at compile for the 8-layer V2-Lite, streamed at twice the bytes in decode).
#include <algorithm>
#include <cstring>
#include <optional>

#include <fmt/format.h>

#include "cpu_util.hpp"
#include "lowering_log.hpp"
#include "matmul.hpp"
#include "moe/dot_rows.hpp"
#include "moe/moe_cpu.hpp"

namespace porta::detail::cpu {

namespace {

// The row count of each batch entry: out is [M, N] or [B, M, N].
std::int64_t rows_of(const ValueInfo& out) { return out.shape[out.shape.rank() - 2]; }

bool few_rows(const ValueInfo& out) {
  return rows_of(out) >= 1 && rows_of(out) <= moe::ExpertGemm::kSmallRows;
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
    const int rank = static_cast<int>(out.shape.rank());
    batch_ = rank == 3 ? out.shape[0] : 1;
    m_ = out.shape[rank - 2];
    n_ = out.shape[rank - 1];
    k_ = attrs.transpose_a ? a.shape[rank - 2] : a.shape[rank - 1];
    w_dtype_ = b.dtype;
    // [N, K] rows: the stored layout when b is transposed (an nn.Linear weight, read in place
    // from the graph's constant, which outlives the plan), else a transpose of [K, N].
    if (attrs.transpose_b) {
      rows_ = b.constant.data();
    } else {
      const std::size_t size = dtype_size(b.dtype);
      const auto* src = static_cast<const char*>(b.constant.data());
      weight_.resize(static_cast<std::size_t>(batch_ * n_ * k_) * size);
      for (std::int64_t e = 0; e < batch_; ++e)
        for (std::int64_t kk = 0; kk < k_; ++kk)
          for (std::int64_t j = 0; j < n_; ++j)
            std::memcpy(weight_.data() + static_cast<std::size_t>((e * n_ + j) * k_ + kk) * size,
                        src + static_cast<std::size_t>((e * k_ + kk) * n_ + j) * size, size);
      rows_ = weight_.data();
    }
    weight_stride_ = static_cast<std::size_t>(n_ * k_) * dtype_size(b.dtype);
    if (!few_rows(out)) panels_.emplace(env, n_, k_, w_dtype_);
    log_choice(panels_ ? fmt::format("porta weight-rows matmul: {} panels, oneDNN sgemm",
                                     dtype_name(w_dtype_))
                       : fmt::format("porta weight-rows matmul: {} dot rows ({})",
                                     dtype_name(w_dtype_), moe::dot_isa_name(moe::best_dot_isa())));
    if (transpose_a_ || a_dtype_ != DType::F32)
      x_ = F32Scratch(static_cast<std::size_t>(batch_ * m_ * k_));
    if (out_dtype_ != DType::F32) y_ = F32Scratch(static_cast<std::size_t>(batch_ * m_ * n_));
  }

  void run(const ExecContext& ctx) override {
    const void* a = value_ptr(ctx, a_);
    const float* x = static_cast<const float*>(a);
    if (transpose_a_) {  // a is [B, K, M]
      float* wide = x_.data();
      for (std::int64_t e = 0; e < batch_; ++e)
        for (std::int64_t kk = 0; kk < k_; ++kk)
          for (std::int64_t r = 0; r < m_; ++r)
            wide[(e * m_ + r) * k_ + kk] =
                load_as_f32(a, a_dtype_, static_cast<std::size_t>((e * k_ + kk) * m_ + r));
      x = wide;
    } else if (a_dtype_ != DType::F32) {
      load_f32(a, a_dtype_, x_.data(), static_cast<std::size_t>(batch_ * m_ * k_));
      x = x_.data();
    }
    void* out = value_ptr(ctx, out_);
    float* y = out_dtype_ == DType::F32 ? static_cast<float*>(out) : y_.data();
    const moe::ExpertWeights weights(rows_, weight_stride_);
    if (panels_) {
      blocks_.clear();
      for (std::int64_t e = 0; e < batch_; ++e) blocks_.push_back({e, e * m_, m_});
      panels_->run_large_blocks(blocks_, x, weights, y);
    } else {
      // Items of (batch entry, a slice of 64 output columns), handed out dynamically: a thread
      // the OS descheduled holds up only its current slice, not a static half of the weight.
      const std::int64_t slices = (n_ + 63) / 64;
      moe::parallel_for(batch_ * slices, 1, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t i = begin; i < end; ++i) {
          const std::int64_t e = i / slices, n0 = (i % slices) * 64;
          moe::small_gemm(x + e * m_ * k_, k_, m_, weights.at(e), w_dtype_, k_, n0,
                          std::min(n_, n0 + 64), y + e * m_ * n_, n_);
        }
      });
    }
    if (out_dtype_ != DType::F32)
      store_f32(y, out_dtype_, out, static_cast<std::size_t>(batch_ * m_ * n_));
  }

  std::uint64_t weight_copy_bytes() const override { return weight_.size(); }

 private:
  ValueId a_ = 0, out_ = 0;
  DType a_dtype_ = DType::F32, out_dtype_ = DType::F32, w_dtype_ = DType::BF16;
  bool transpose_a_ = false;
  std::int64_t batch_ = 1, m_ = 0, n_ = 0, k_ = 0;
  const void* rows_ = nullptr;
  std::size_t weight_stride_ = 0;  // bytes between batch entries' [N, K] weights
  std::vector<moe::ExpertGemm::Block> blocks_;
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
  const auto rank = out.shape.rank();
  if (b.kind != ValueKind::Constant || (rank != 2 && rank != 3) || a.shape.rank() != rank ||
      b.shape.rank() != rank || rows_of(out) < 1 || out.shape[rank - 1] < 1 ||
      (a.dtype != DType::F32 && a.dtype != DType::BF16))
    return false;
  // Batched: the same batch count everywhere (no broadcast), at least one entry.
  if (rank == 3 && (out.shape[0] < 1 || a.shape[0] != out.shape[0] || b.shape[0] != out.shape[0]))
    return false;
  // f16 weights (a GGUF's F16 matrices) only here: oneDNN has no f16 matmul on most CPUs.
  if (b.dtype == DType::F16) return attrs.transpose_b;
  if (few_rows(out)) return b.dtype == DType::BF16 || (b.dtype == DType::F32 && attrs.transpose_b);
  // Prefill: a bf16 [N, K] weight against activations that a native bf16 matmul cannot take.
  const bool native = a.dtype == DType::BF16 && native_bf16_matmul(engine);
  return b.dtype == DType::BF16 && attrs.transpose_b && !native;
}

std::unique_ptr<CpuKernel> lower_weight_rows_matmul(CpuEnv& env, const GraphState& g,
                                                    const Node& n) {
  return std::make_unique<WeightRowsMatmulKernel>(env, g, n);
}

}  // namespace porta::detail::cpu
