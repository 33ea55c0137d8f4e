// The linear layers of the quantized ops over ggml blocks: block_matmul for whole matrices, a
// single parallel loop over every weight row of the short expert blocks, and dequantized f32
// panels through oneDNN's sgemm for long prompts and through the register-tiled expert GEMM for
// prefill's expert blocks.
#include "ggml/ggml_linear.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <vector>

#include <fmt/format.h>
#include <oneapi/dnnl/dnnl.h>

#include <porta/error.hpp>

#include "ggml/block_dot.hpp"
#include "moe/dot_rows.hpp"
#include "moe/panel_gemm.hpp"

namespace porta::detail::cpu::ggml {

namespace {

// Weight rows per work item of the short expert blocks (under kGemmRows rows).
constexpr std::int64_t kSmallChunkRows = 16;

const std::byte* bytes_of(const QuantMatrix& w) { return static_cast<const std::byte*>(w.data); }

// Rows of x from which a weight matrix is multiplied as dequantized f32 panels by a GEMM.
constexpr std::int64_t kGemmRows = 16;
// Weight rows per panel: 64 rows of 2048 f32 are 512 KiB, in L2 while every row of x meets them.
constexpr std::int64_t kSgemmPanelRows = 64;

// Prefill: panels of weight rows, each dequantized exactly into f32 by the thread that owns it
// and multiplied by every row of x with oneDNN's row-major sgemm (single-threaded inside the
// region, as moe/expert_gemm.cpp does), so long prompts run at f32 GEMM speed and every block
// is decoded once per call.
void gemm_rows(const QuantMatrix& w, const float* x, std::int64_t ldx, std::int64_t rows, float* y,
               std::int64_t ldy) {
  const std::size_t row_bytes =
      gguf::row_bytes(w.scheme.ggml_type, static_cast<std::uint64_t>(w.k));
  const std::int64_t panels = (w.n + kSgemmPanelRows - 1) / kSgemmPanelRows;
  const BlockIsa isa = best_block_isa();
  check_block_rows(w.scheme.ggml_type, w.k);  // before the parallel region, which must not throw
  std::atomic<int> status{dnnl_success};
#pragma omp parallel
  {
    std::vector<float> panel(static_cast<std::size_t>(kSgemmPanelRows * w.k));
#pragma omp for schedule(dynamic)
    for (std::int64_t p = 0; p < panels; ++p) {
      const std::int64_t n0 = p * kSgemmPanelRows, count = std::min(kSgemmPanelRows, w.n - n0);
      dequantize_block_rows(isa, w.scheme.ggml_type,
                            bytes_of(w) + static_cast<std::size_t>(n0) * row_bytes, count, w.k,
                            panel.data(), w.k);
      const dnnl_status_t s = dnnl_sgemm('N', 'T', rows, count, w.k, 1.0f, x, ldx, panel.data(),
                                         w.k, 0.0f, y + n0, ldy);
      if (s != dnnl_success) status = s;
    }
  }
  if (status != dnnl_success)
    throw Error(ErrorCode::Backend,
                fmt::format("cpu backend: ggml {} GEMM {}x{}x{}: oneDNN sgemm failed (status {})",
                            gguf::type_name(w.scheme.ggml_type), rows, w.n, w.k,
                            static_cast<int>(status.load())));
}

// Prefill's expert blocks (16 rows and more each), all in one parallel loop over items of (block,
// panel of weight rows): each panel dequantized exactly into f32 by the thread that owns it,
// then multiplied by the block's rows by moe::panel_rows_gemm (the register-tiled GEMM of the
// bf16 experts for expert-sized blocks, oneDNN's sgemm for longer ones or CPUs without AVX2).
// One expert at a time through gemm_rows took an OpenMP region and a re-packing of the block's
// rows per 64 weight rows.
void gemm_blocks(std::span<const quant::QuantBlock* const> blocks, const float* x, std::int64_t k,
                 std::int64_t out_features, float* y) {
  if (blocks.empty()) return;
  const moe::DotIsa isa = moe::best_dot_isa();
  const BlockIsa block_isa = best_block_isa();
  // 1 MiB of f32 weight rows per panel, a whole number of the register tiles' 48 columns.
  const std::int64_t panel_rows = std::max<std::int64_t>(
      48, (std::int64_t{1} << 18) / std::max<std::int64_t>(k, 1) / 48 * 48);
  const std::int64_t per_block = (out_features + panel_rows - 1) / panel_rows;
  const auto items = static_cast<std::int64_t>(blocks.size()) * per_block;
  std::exception_ptr error;  // never leaves the OpenMP region; the first is rethrown below
#pragma omp parallel for schedule(dynamic)
  for (std::int64_t i = 0; i < items; ++i) try {
    thread_local std::vector<float> panel;
    const quant::QuantBlock& b = *blocks[static_cast<std::size_t>(i / per_block)];
    const std::int64_t n0 = (i % per_block) * panel_rows;
    const std::int64_t count = std::min(panel_rows, out_features - n0);
    const std::size_t row_bytes =
        gguf::row_bytes(b.w.scheme.ggml_type, static_cast<std::uint64_t>(k));
    panel.resize(std::max(panel.size(), static_cast<std::size_t>(panel_rows * k)));
    dequantize_block_rows(block_isa, b.w.scheme.ggml_type,
                          bytes_of(b.w) + static_cast<std::size_t>(n0) * row_bytes, count, k,
                          panel.data(), k);
    moe::panel_rows_gemm(isa, x + b.first * k, k, b.count, panel.data(), k, count,
                         y + b.first * out_features + n0, out_features);
  } catch (...) {
#pragma omp critical(porta_ggml_gemm_blocks_error)
    if (!error) error = std::current_exception();
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace

void blocks_linear(const float* x, std::int64_t rows, const QuantMatrix& w, float* y) {
  if (rows == 0 || w.n == 0) return;
  if (rows >= kGemmRows) return gemm_rows(w, x, w.k, rows, y, w.n);
  block_matmul(best_block_isa(), w.scheme.ggml_type, bytes_of(w), w.n, w.k, x, w.k, rows, y, w.n);
}

void blocks_linear_experts(const float* x, std::int64_t k,
                           std::span<const quant::QuantBlock> experts, std::int64_t out_features,
                           float* y) {
  std::vector<const quant::QuantBlock*> small, large;
  for (const quant::QuantBlock& e : experts) {
    if (e.count == 0) continue;
    if (e.count >= kGemmRows) {
      large.push_back(&e);
      continue;
    }
    check_block_rows(e.w.scheme.ggml_type, k);  // before the parallel loop, which must not throw
    small.push_back(&e);
  }
  gemm_blocks(large, x, k, out_features, y);
  if (small.empty()) return;
  // One parallel loop over (block, chunk of weight rows): each chunk streamed once for the
  // block's rows, four rows of x per pass.
  const BlockIsa isa = best_block_isa();
  const std::int64_t per_block = (out_features + kSmallChunkRows - 1) / kSmallChunkRows;
  const auto items = static_cast<std::int64_t>(small.size()) * per_block;
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < items; ++i) {
    const quant::QuantBlock& e = *small[static_cast<std::size_t>(i / per_block)];
    const std::int64_t n0 = (i % per_block) * kSmallChunkRows;
    const std::size_t row_bytes =
        gguf::row_bytes(e.w.scheme.ggml_type, static_cast<std::uint64_t>(k));
    block_matmul_serial(isa, e.w.scheme.ggml_type,
                        bytes_of(e.w) + static_cast<std::size_t>(n0) * row_bytes,
                        std::min(kSmallChunkRows, out_features - n0), k, x + e.first * k, k,
                        e.count, y + e.first * out_features + n0, out_features);
  }
}

}  // namespace porta::detail::cpu::ggml
