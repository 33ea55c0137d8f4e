// The linear layers of the quantized ops over ggml blocks: block_matmul for whole matrices, a
// single parallel loop over every weight row of the short expert blocks, and for prompts exactly
// dequantized f32 panels of weight rows through the register-tiled GEMM (moe/panel_gemm.hpp) over
// activations packed once.
#include "ggml/ggml_linear.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <vector>

#include <fmt/format.h>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

#include <porta/error.hpp>

#include "ggml/block_dot.hpp"
#include "ggml/q8_kernels.hpp"
#include "moe/dot_rows.hpp"
#include "moe/panel_gemm.hpp"

namespace porta::detail::cpu::ggml {

namespace {

// Weight rows per work item of the short expert blocks (under kGemmRows rows): each stretch of
// the block's rows of x, loaded into L1 once per item, meets this many weight rows (16 gave
// 90-98 GFLOP/s on 8-row Qwen3 gate blocks, 64 104-108; decode's items stay plentiful).
constexpr std::int64_t kSmallChunkRows = 64;

const std::byte* bytes_of(const QuantMatrix& w) { return static_cast<const std::byte*>(w.data); }

// Rows of x from which a weight matrix is multiplied as dequantized f32 panels by a GEMM. Under
// it, a panel's decoding is shared by too few rows (and the AVX-512 tile of 16 rows is mostly
// empty): at 8 rows the register kernels ran 1.1-1.6x faster, at 12 the panels 1.5x
// (porta-bench-cpu-ggml-prefill, T=128).
constexpr std::int64_t kGemmRows = 12;

// Weight rows per dequantized panel: 768 KiB of f32 (96 rows at K 2048), which with a chunk of
// packed x (512 KiB) stays in the 2 MiB L2 while the chunks pass; a whole number of the register
// tiles' 48 columns.
std::int64_t panel_rows_for(std::int64_t k) {
  const std::int64_t fit = (std::int64_t{3} << 16) / std::max<std::int64_t>(k, 1) / 48 * 48;
  return std::max<std::int64_t>(48, fit);
}

// The thread's dequantized panel and packed rows of x (the kernel's own scratch is moe's,
// thread_panel_scratch).
struct PanelScratch {
  std::vector<float> panel, packed;
  float* grow(std::vector<float>& v, std::size_t floats) {
    if (v.size() < floats) v.resize(floats);
    return v.data();
  }
};
// One per thread, grown once: allocating them per call faulted in fresh pages every prefill.
PanelScratch& panel_scratch() {
  thread_local PanelScratch scratch;
  return scratch;
}

// Weight rows [n0, n0 + count) of w dequantized exactly into f32 in the thread's panel.
const float* dequantized_panel(BlockIsa isa, const QuantMatrix& w, std::int64_t n0,
                               std::int64_t count, PanelScratch& s) {
  const std::size_t row_bytes =
      gguf::row_bytes(w.scheme.ggml_type, static_cast<std::uint64_t>(w.k));
  float* panel = s.grow(s.panel, static_cast<std::size_t>(count * w.k));
  dequantize_block_rows(isa, w.scheme.ggml_type,
                        bytes_of(w) + static_cast<std::size_t>(n0) * row_bytes, count, w.k, panel,
                        w.k);
  return panel;
}

// Prefill's dense layers: x packed once (every thread a share of its chunks), then panels of
// weight rows, each dequantized exactly into f32 by the thread that owns it and multiplied by
// every packed chunk with the register-tiled GEMM (moe/panel_gemm.hpp), so every block is decoded
// once per call. oneDNN's sgemm per 64-row panel, as before, re-packed the whole of x per panel.
// CPUs without AVX2 keep that sgemm.
void gemm_rows(const QuantMatrix& w, const float* x, std::int64_t ldx, std::int64_t rows, float* y,
               std::int64_t ldy) {
  const BlockIsa isa = best_block_isa();
  const moe::DotIsa dot = moe::best_dot_isa();
  check_block_rows(w.scheme.ggml_type, w.k);  // before the parallel region, which must not throw
  const std::int64_t panel_rows = panel_rows_for(w.k);
  const std::int64_t panels = (w.n + panel_rows - 1) / panel_rows;
  if (dot == moe::DotIsa::Plain) {
    std::atomic<int> status{dnnl_success};
#pragma omp parallel for schedule(dynamic)
    for (std::int64_t p = 0; p < panels; ++p) {
      const std::int64_t n0 = p * panel_rows, count = std::min(panel_rows, w.n - n0);
      const float* panel = dequantized_panel(isa, w, n0, count, panel_scratch());
      const dnnl_status_t s =
          dnnl_sgemm('N', 'T', rows, count, w.k, 1.0f, x, ldx, panel, w.k, 0.0f, y + n0, ldy);
      if (s != dnnl_success) status = s;
    }
    if (status != dnnl_success)
      throw Error(ErrorCode::Backend,
                  fmt::format("cpu backend: ggml {} GEMM {}x{}x{}: oneDNN sgemm failed (status {})",
                              gguf::type_name(w.scheme.ggml_type), rows, w.n, w.k,
                              static_cast<int>(status.load())));
    return;
  }
  PanelScratch& caller = panel_scratch();
  float* packed = caller.grow(caller.packed, moe::packed_x_floats(dot, rows, w.k));
  const std::int64_t chunk_rows = moe::panel_chunk_rows(dot, w.k);
  const std::int64_t chunks = (rows + chunk_rows - 1) / chunk_rows;
  std::exception_ptr error;  // the first is rethrown below
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (std::int64_t c = 0; c < chunks; ++c) moe::pack_x_chunk(dot, x, ldx, rows, w.k, c, packed);
#pragma omp for schedule(dynamic)
    for (std::int64_t p = 0; p < panels; ++p) try {
      PanelScratch& s = panel_scratch();
      const std::int64_t n0 = p * panel_rows, count = std::min(panel_rows, w.n - n0);
      const float* panel = dequantized_panel(isa, w, n0, count, s);
      moe::packed_panel_gemm(dot, packed, rows, panel, w.k, count, y + n0, ldy,
                             moe::thread_panel_scratch(dot, w.k));
    } catch (...) {  // a scratch that could not grow; never leaves the region
#pragma omp critical(porta_ggml_gemm_rows_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

// Prefill's expert blocks (kGemmRows rows and more each), all in one parallel loop over items of
// (block, run of panels of weight rows): the block's rows packed once per item, then each panel
// dequantized exactly into f32 by the thread that owns it and multiplied by them (the
// register-tiled GEMM; oneDNN's sgemm on CPUs without AVX2). Runs of panels rather than single
// panels: with one panel per item, packing the block's rows again for every 96 weight rows cost
// about a sixth of the time; a block is still split where there are too few blocks to share out.
void gemm_blocks(std::span<const quant::QuantBlock* const> blocks, const float* x, std::int64_t k,
                 std::int64_t out_features, float* y) {
  if (blocks.empty()) return;
  const moe::DotIsa dot = moe::best_dot_isa();
  const BlockIsa block_isa = best_block_isa();
  const std::int64_t panel_rows = panel_rows_for(k);
  const std::int64_t panels = (out_features + panel_rows - 1) / panel_rows;
  const auto nblocks = static_cast<std::int64_t>(blocks.size());
  const std::int64_t splits = std::clamp<std::int64_t>(
      (4 * omp_get_max_threads() + nblocks - 1) / nblocks, 1, panels);
  std::exception_ptr error;  // never leaves the OpenMP region; the first is rethrown below
#pragma omp parallel for schedule(dynamic)
  for (std::int64_t i = 0; i < nblocks * splits; ++i) try {
    PanelScratch& s = panel_scratch();
    const quant::QuantBlock& b = *blocks[static_cast<std::size_t>(i / splits)];
    const std::int64_t split = i % splits;
    const std::int64_t p0 = split * panels / splits, p1 = (split + 1) * panels / splits;
    const float* xb = x + b.first * k;
    float* packed = nullptr;
    if (dot != moe::DotIsa::Plain) {
      packed = s.grow(s.packed, moe::packed_x_floats(dot, b.count, k));
      const std::int64_t chunk_rows = moe::panel_chunk_rows(dot, k);
      for (std::int64_t c = 0; c * chunk_rows < b.count; ++c)
        moe::pack_x_chunk(dot, xb, k, b.count, k, c, packed);
    }
    for (std::int64_t p = p0; p < p1; ++p) {
      const std::int64_t n0 = p * panel_rows, count = std::min(panel_rows, out_features - n0);
      const float* panel = dequantized_panel(block_isa, b.w, n0, count, s);
      float* yb = y + b.first * out_features + n0;
      if (dot == moe::DotIsa::Plain)
        moe::panel_rows_gemm(dot, xb, k, b.count, panel, k, count, yb, out_features);
      else
        moe::packed_panel_gemm(dot, packed, b.count, panel, k, count, yb, out_features,
                               moe::thread_panel_scratch(dot, k));
    }
  } catch (...) {
#pragma omp critical(porta_ggml_gemm_blocks_error)
    if (!error) error = std::current_exception();
  }
  if (error) std::rethrow_exception(error);
}

// ---- ActivationQuant::GgmlQ8 ----

// Weight rows per work item of the integer kernels: four panels, a few KiB of blocks.
constexpr std::int64_t kQ8ChunkRows = 64;
// Rows of x up to which the integer kernels' items go to the threads in contiguous runs.
constexpr std::int64_t kStreamingRows = 4;

// The caller's rounded or quantized activations, kept between calls.
std::vector<float>& rounded_scratch() {
  thread_local std::vector<float> rounded;
  return rounded;
}
Q8Rows& q8_scratch() {
  thread_local Q8Rows rows;
  return rows;
}

// x [rows, k] rounded through the 8-bit blocks of `type` into the caller's scratch.
const float* rounded_rows(gguf::GgmlType type, const float* x, std::int64_t rows,
                          std::int64_t k) {
  const gguf::Q8Blocks blocks = gguf::q8_activation_blocks(type);
  check_block_rows(type, k);
  std::vector<float>& out = rounded_scratch();
  out.resize(static_cast<std::size_t>(rows * k));
  const bool simd = has_q8_isa();
#pragma omp parallel for schedule(static) if (rows > 8)
  for (std::int64_t r = 0; r < rows; ++r) {
    if (simd)
      round_q8_row(blocks, x + r * k, k, out.data() + r * k);
    else
      gguf::round_q8_activations(blocks, x + r * k, k, out.data() + r * k);
  }
  return out.data();
}

// x [rows, k] quantized for `type` into the caller's scratch, rows shared among the threads.
const Q8Rows& quantized_rows(gguf::GgmlType type, const float* x, std::int64_t rows,
                             std::int64_t k) {
  Q8Rows& xq = q8_scratch();
  shape_q8_rows(best_q8_isa(), type, rows, k, xq);
  const std::int64_t per = 16, chunks = (rows + per - 1) / per;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (std::int64_t c = 0; c < chunks; ++c)
    quantize_q8_rows(x, k, c * per, std::min(per, rows - c * per), xq);
  return xq;
}

// One parallel loop over (block of rows, chunk of weight rows) items of the integer kernels.
struct Q8Item {
  const std::byte* w;
  std::int64_t n_rows, first, count;
  float* y;
};
void run_q8_items(const std::vector<Q8Item>& items, const Q8Rows& xq, std::int64_t ldy) {
  std::exception_ptr error;  // never leaves the OpenMP region; the first is rethrown below
  const auto run = [&](std::size_t i) {
    try {
      const Q8Item& it = items[i];
      q8_matmul_serial(it.w, it.n_rows, xq, it.first, it.count, it.y, ldy);
    } catch (...) {
#pragma omp critical(porta_ggml_q8_error)
      if (!error) error = std::current_exception();
    }
  };
  // Decode's items (a few rows of x each, all alike) stream weights: each thread takes one
  // contiguous run of them, which the hardware prefetcher follows, where items handed out one
  // at a time left every thread jumping between 64-row pieces. The 27-layer V2-Lite-shaped
  // file decoded 1.08x faster (best of 5 interleaved runs, Zen 4). Blocks of many rows, unequal
  // in cost, are handed out dynamically.
  const bool streaming = std::all_of(items.begin(), items.end(), [&](const Q8Item& it) {
    return it.count == items.front().count && it.count <= kStreamingRows;
  });
  if (streaming) {
#pragma omp parallel for schedule(static)
    for (std::size_t i = 0; i < items.size(); ++i) run(i);
  } else {
#pragma omp parallel for schedule(dynamic)
    for (std::size_t i = 0; i < items.size(); ++i) run(i);
  }
  if (error) std::rethrow_exception(error);
}

// Items of kQ8ChunkRows weight rows of one matrix for rows [first, first + count) of x.
void add_q8_items(const QuantMatrix& w, std::int64_t first, std::int64_t count, float* y,
                  std::vector<Q8Item>& items) {
  const std::size_t row_bytes =
      gguf::row_bytes(w.scheme.ggml_type, static_cast<std::uint64_t>(w.k));
  for (std::int64_t n0 = 0; n0 < w.n; n0 += kQ8ChunkRows)
    items.push_back({bytes_of(w) + static_cast<std::size_t>(n0) * row_bytes,
                     std::min(kQ8ChunkRows, w.n - n0), first, count, y + n0});
}

}  // namespace

void blocks_linear(const float* x, std::int64_t rows, const QuantMatrix& w, float* y,
                   ActivationQuant act) {
  if (rows == 0 || w.n == 0) return;
  if (act == ActivationQuant::GgmlQ8) {
    const gguf::GgmlType type = w.scheme.ggml_type;
    if (!has_q8_kernel(type)) return blocks_linear(rounded_rows(type, x, rows, w.k), rows, w, y);
    const Q8Rows& xq = quantized_rows(type, x, rows, w.k);
    std::vector<Q8Item> items;
    add_q8_items(w, 0, rows, y, items);
    return run_q8_items(items, xq, w.n);
  }
  if (rows >= kGemmRows) return gemm_rows(w, x, w.k, rows, y, w.n);
  block_matmul(best_block_isa(), w.scheme.ggml_type, bytes_of(w), w.n, w.k, x, w.k, rows, y, w.n);
}

void blocks_linear_experts(const float* x, std::int64_t k,
                           std::span<const quant::QuantBlock> experts, std::int64_t out_features,
                           float* y, ActivationQuant act) {
  if (act == ActivationQuant::GgmlQ8) {
    std::int64_t rows = 0;
    for (const quant::QuantBlock& e : experts)
      if (e.count > 0) rows = std::max(rows, e.first + e.count);
    if (rows == 0) return;
    const gguf::GgmlType type = experts.front().w.scheme.ggml_type;
    if (!has_q8_kernel(type))
      return blocks_linear_experts(rounded_rows(type, x, rows, k), k, experts, out_features, y);
    const Q8Rows& xq = quantized_rows(type, x, rows, k);
    std::vector<Q8Item> items;
    for (const quant::QuantBlock& e : experts)
      if (e.count > 0) add_q8_items(e.w, e.first, e.count, y + e.first * out_features, items);
    return run_q8_items(items, xq, out_features);
  }
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
  // block's rows, up to eight rows of x per pass.
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
