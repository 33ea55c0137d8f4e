// matmul of a few rows (decode: M <= 8) against a constant bf16 weight, where this oneDNN has no
// bf16 matmul for the ISA (AVX2). The general path widens such a weight to f32 once at compile
// time, so every decode step streams twice the bytes the model stores. Here the weight stays
// bf16, laid out once as [N, K] rows, and each call streams it once through the expert kernels'
// dot-product loop (moe/expert_gemm.cpp: every weight row loaded once for all M rows, f32
// accumulation), split by output columns across threads.
#include <algorithm>
#include <cstring>

#include "cpu_util.hpp"
#include "matmul.hpp"
#include "moe/moe_cpu.hpp"

namespace porta::detail::cpu {

namespace {

class Bf16RowsMatmulKernel final : public CpuKernel {
 public:
  Bf16RowsMatmulKernel(const GraphState& g, const Node& n) {
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
    // [N, K] bf16 rows: the stored layout when b is transposed ([N, K]), else a transpose of [K,
    // N].
    const auto* bits = static_cast<const std::uint16_t*>(b.constant.data());
    weight_.resize(static_cast<std::size_t>(n_ * k_));
    if (attrs.transpose_b) {
      std::memcpy(weight_.data(), bits, weight_.size() * sizeof(std::uint16_t));
    } else {
      for (std::int64_t kk = 0; kk < k_; ++kk)
        for (std::int64_t j = 0; j < n_; ++j)
          weight_[static_cast<std::size_t>(j * k_ + kk)] = bits[kk * n_ + j];
    }
    x_ = F32Scratch(static_cast<std::size_t>(m_ * k_));
    if (out_dtype_ != DType::F32) y_ = F32Scratch(static_cast<std::size_t>(m_ * n_));
  }

  void run(const ExecContext& ctx) override {
    const void* a = value_ptr(ctx, a_);
    float* x = x_.data();
    if (transpose_a_) {  // a is [K, M]
      for (std::int64_t kk = 0; kk < k_; ++kk)
        for (std::int64_t r = 0; r < m_; ++r)
          x[r * k_ + kk] = load_as_f32(a, a_dtype_, static_cast<std::size_t>(kk * m_ + r));
    } else {
      load_f32(a, a_dtype_, x, static_cast<std::size_t>(m_ * k_));
    }
    void* out = value_ptr(ctx, out_);
    float* y = out_dtype_ == DType::F32 ? static_cast<float*>(out) : y_.data();
    // Slices of output columns, 64 weight rows (K bf16 each) at the least per thread.
    parallel_for(n_, 64, [&](std::int64_t begin, std::int64_t end) {
      moe::small_gemm(x, k_, m_, weight_.data(), DType::BF16, k_, begin, end, y, n_);
    });
    if (out_dtype_ != DType::F32) store_f32(y, out_dtype_, out, static_cast<std::size_t>(m_ * n_));
  }

 private:
  ValueId a_ = 0, out_ = 0;
  DType a_dtype_ = DType::F32, out_dtype_ = DType::F32;
  bool transpose_a_ = false;
  std::int64_t m_ = 0, n_ = 0, k_ = 0;
  std::vector<std::uint16_t> weight_;
  F32Scratch x_, y_;
};

}  // namespace

bool use_bf16_rows_matmul(const dnnl::engine& engine, const GraphState& g, const Node& n) {
  const ValueInfo& a = g.input_of(n, 0);
  const ValueInfo& b = g.input_of(n, 1);
  const ValueInfo& out = g.output_of(n, 0);
  return b.kind == ValueKind::Constant && b.dtype == DType::BF16 && a.shape.rank() == 2 &&
         b.shape.rank() == 2 && out.shape.rank() == 2 && out.shape[0] >= 1 &&
         out.shape[0] <= moe::ExpertGemm::kSmallRows && out.shape[1] > 0 &&
         (a.dtype == DType::F32 || a.dtype == DType::BF16) && !native_bf16_matmul(engine);
}

std::unique_ptr<CpuKernel> lower_bf16_rows_matmul(const GraphState& g, const Node& n) {
  return std::make_unique<Bf16RowsMatmulKernel>(g, n);
}

}  // namespace porta::detail::cpu
