// Internals of the cpu backend's MoE kernels: parallel_for, which runs the loops oneDNN does not
// (the router's rows, the decode-time expert dot products, permute and combine) on OpenMP's
// threads, the expert GEMM engine shared by grouped_matmul and moe_experts, and each op's lowering.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <porta/dtype.hpp>

#include "cpu_kernel.hpp"
#include "moe/dot_rows.hpp"

namespace porta::detail::cpu::moe {

// Runs body(begin, end) over [0, count) split into chunks of at least `grain`, on OpenMP's
// threads (the ones oneDNN uses; the caller works too), at most cpu_threads() of them. Returns
// when all are done; the first exception thrown by `body` is rethrown on the caller.
void parallel_for(std::int64_t count, std::int64_t grain,
                  const std::function<void(std::int64_t, std::int64_t)>& body);
// The thread count of those loops: cpu_threads().
int worker_count();

// True when this CPU has AVX2, FMA and F16C; the vector loops fall back to plain C++ otherwise.
bool has_avx2();

// y[r, n] = Σ_h x[r, h] · w[n, h] for the rows of each expert: the ragged GEMM of
// grouped_matmul and of moe_experts' three projections. Weights are [E, N, H] (nn.Linear
// layout) in f32, bf16 or f16, read where they are (never copied whole). Blocks of more than
// kSmallRows rows run expert-parallel: work items of (block, range of output columns) are
// handed to OpenMP's threads, each one single-threaded GEMM, so threads never wait for each other
// inside a small GEMM. A block of bf16 weights and up to two row chunks of porta's
// register-tiled panel kernel (panel_gemm.hpp: 128 rows with AVX-512, 48 with AVX2; an expert's
// block at prefill) runs that kernel: its rows transposed once, the weights widened a few rows at a
// time into L1, f32 accumulation. Larger blocks (a dense matmul or the shared expert over a whole
// prompt), f32 weights, and every block on CPUs without AVX2, run oneDNN's f32 sgemm, bf16 weights
// widened one L2-sized panel at a time; f16 weights take the GEMM of dequantized panels
// (panel_rows_gemm) on rows widened a panel at a time. Smaller blocks, the decode case, go to our
// own dot-product loop, which reads each weight row once for all the block's rows and reads bf16
// and f16 weights as stored (half the bytes). Where expert e's weights [N, H] are:
// TensorRef::part(e) of a (possibly stacked) weight, or matrices at a fixed stride from one address
// (a dense matmul's weight as a single expert, a batched matmul's weight with one expert per batch
// entry).
struct ExpertWeights {
  const TensorRef* ref = nullptr;
  const void* single = nullptr;
  std::size_t stride = 0;                         // bytes from one expert's matrix to the next
  ExpertWeights(const TensorRef& r) : ref(&r) {}  // NOLINT: implicit by design
  explicit ExpertWeights(const void* w, std::size_t stride_bytes = 0)
      : single(w), stride(stride_bytes) {}
  const void* at(std::int64_t e) const {
    return ref != nullptr ? ref->part(e)
                          : static_cast<const char*>(single) + static_cast<std::size_t>(e) * stride;
  }
};

class ExpertGemm {
 public:
  static constexpr std::int64_t kSmallRows = 8;
  // Widened bf16 rows per panel: half of a 2 MiB L2, next to the block's rows of x. Fewer,
  // wider panels also mean fewer re-packings of x inside the GEMM (one per panel).
  static constexpr std::int64_t kPanelBytes = 1024 * 1024;

  ExpertGemm(CpuEnv& env, std::int64_t out_features, std::int64_t in_features, DType weight_dtype);

  // `blocks` lists (expert, first row, rows); the weights of expert e are w.part(e), [N, H]
  // (a stacked weight's parts live wherever the checkpoint mapping has them); x is [rows, H] f32
  // (row stride H) and y [rows, N] f32 (row stride N).
  struct Block {
    std::int64_t expert, first, rows;
  };
  // Blocks of more than kSmallRows rows, expert-parallel. Safe to call from one thread at a
  // time per object.
  void run_large_blocks(const std::vector<Block>& blocks, const float* x, const ExpertWeights& w,
                        float* y);
  // Every small block of all experts in one parallel pass (x and y with row strides ldx, ldy).
  void run_small_blocks(const std::vector<Block>& blocks, const float* x, std::int64_t ldx,
                        const ExpertWeights& w, float* y, std::int64_t ldy) const;

  std::int64_t out_features() const { return n_; }
  std::int64_t in_features() const { return h_; }
  DType weight_dtype() const { return dtype_; }

 private:
  bool use_panel_kernel(std::int64_t rows) const;
  void run_item(const Block& b, std::int64_t n0, std::int64_t n1, const float* x,
                const void* w_expert, float* y);
  void gemm(const float* x, std::int64_t rows, const float* w, bool w_rows, std::int64_t cols,
            float* y);

  CpuEnv& env_;
  std::int64_t n_, h_;
  DType dtype_;
  DotIsa isa_;                   // the panel kernel's (panel_gemm.hpp); Plain: oneDNN's sgemm
  std::int64_t panel_rows_ = 0;  // bf16 or f16 weight rows widened at a time
};

// One small GEMM y[r, n] = Σ_h x[r, h] · w[n, h] (r < rows <= kSmallRows, n < n_out) of a batch
// that run_small_jobs() runs in a single parallel pass.
struct SmallJob {
  const float* x;
  std::int64_t ldx, rows;
  const void* w;
  DType wdtype;
  std::int64_t h, n_out;
  float* y;
  std::int64_t ldy;
};
// Every job, split into slices of 32 weight rows, in one parallel region: decode runs all of a
// MoE layer's gate and up projections (routed and shared) in one pass, then all down ones,
// instead of a region (and a barrier) per projection.
void run_small_jobs(const std::vector<SmallJob>& jobs);

// The small-block dot products for rows [n_begin, n_end) of one expert's weights.
void small_gemm(const float* x, std::int64_t ldx, std::int64_t rows, const void* w, DType wdtype,
                std::int64_t h, std::int64_t n_begin, std::int64_t n_end, float* y,
                std::int64_t ldy);

// Widens `count` elements of f32, bf16 or f16 into f32.
void widen_to_f32(const void* src, DType dtype, std::int64_t count, float* dst);
// Rounds `count` f32 values into `dtype` (f32, bf16, f16) exactly as porta's conversions do.
void narrow_from_f32(const float* src, DType dtype, std::int64_t count, void* dst);

// out[t] = Σ_k (ascending) w[t, k] · rows[inv[t·K + k]] in f32, one multiply then one add per
// term (never fused), skipping inv = -1: bit-identical to the reference backend and run to run.
void combine_f32(const float* rows, std::int64_t hidden, const float* weights,
                 const std::int32_t* inv, std::int64_t tokens, std::int64_t top_k, float* out);

// The routed experts' SwiGLU FFN, y = down(silu(gate·x) ⊙ up·x), on rows already grouped by
// expert (offsets [experts + 1]): moe_experts' prefill path, for callers that permute the rows
// themselves (moe_experts_ep, backends/cpu/moe_ep.cpp). gate_rows and up_rows are scratch.
void expert_ffn_rows(ExpertGemm& gate, ExpertGemm& up, ExpertGemm& down, const float* rows,
                     std::int64_t num_rows, const TensorRef& w_gate, const TensorRef& w_up,
                     const TensorRef& w_down, std::int64_t experts, const std::int32_t* offsets,
                     std::vector<float>& gate_rows, std::vector<float>& up_rows, float* y);

// Reads and checks the routing tables a kernel indexes with (throws InvalidArgument naming the
// node): offsets non-decreasing within [0, rows], perm >= 0, inv in [-1, rows).
void check_offsets(const std::string& label, const std::int32_t* offsets, std::int64_t count,
                   std::int64_t rows);
void check_perm(const std::string& label, const std::int32_t* perm, std::int64_t count);
void check_inv(const std::string& label, const std::int32_t* inv, std::int64_t count,
               std::int64_t rows);

// "moe_router 'router' (logits f32[4, 8])" style label of a node for run-time errors.
std::string node_label(const GraphState& g, const Node& n);

// The lowerings, one per op (moe_lowerings.cpp lists them).
SupportResult router_supports(const GraphState& g, const Node& n);
std::unique_ptr<CpuKernel> lower_router(CpuEnv& env, const GraphState& g, const Node& n);
SupportResult permute_supports(const GraphState& g, const Node& n);
std::unique_ptr<CpuKernel> lower_permute(CpuEnv& env, const GraphState& g, const Node& n);
SupportResult combine_supports(const GraphState& g, const Node& n);
std::unique_ptr<CpuKernel> lower_combine(CpuEnv& env, const GraphState& g, const Node& n);
SupportResult grouped_supports(const GraphState& g, const Node& n);
std::unique_ptr<CpuKernel> lower_grouped(CpuEnv& env, const GraphState& g, const Node& n);
SupportResult experts_supports(const GraphState& g, const Node& n);
// What moe_experts and moe_experts_ep (named `op` in the reason) both need of their expert
// inputs: f32 or bf16 weights from input 5 on, and at most 2^31 routed rows (input 3, perm).
SupportResult expert_weights_supported(const GraphState& g, const Node& n, std::string_view op);
std::unique_ptr<CpuKernel> lower_experts(CpuEnv& env, const GraphState& g, const Node& n);

}  // namespace porta::detail::cpu::moe
