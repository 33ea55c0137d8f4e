// porta's own register-tiled GEMM for the expert blocks of prefill: y[r, n] = Σ_k x[r, k] · w[n, k]
// with f32 activations x, weights w stored [N, K] (nn.Linear layout) in bf16 or f32, f32
// accumulation. It replaces "widen a bf16 panel to f32, transposed, then a oneDNN sgemm per panel",
// which at the ~48 rows of an expert block spent its time converting and re-packing: here the
// small operand, x, is transposed once per block into an L2-resident panel [K][rows], and the
// weights are only widened (no transpose), a few rows and an L1-sized stretch of K at a time, and
// broadcast from there into a tile of f32 accumulators that lives in registers for the whole K.
// AVX-512F and AVX2+FMA implementations (one .inl compiled twice), chosen at run time.
#pragma once

#include <cstddef>
#include <cstdint>

#include <porta/dtype.hpp>

#include "dot_rows.hpp"

namespace porta::detail::cpu::moe {

// Floats of scratch one panel_gemm_isa call needs for reduction length k (per thread).
std::size_t panel_scratch_floats(DotIsa isa, std::int64_t k);
// Rows of x the kernel takes in one chunk at reduction length k (64 with AVX-512, 24 with AVX2;
// fewer where k is so long that the transposed chunk would not fit the L2). Each further chunk
// widens the weights again, so many-row GEMMs (a dense layer over a whole prompt) are better
// served by a GEMM that packs its weights once.
std::int64_t panel_chunk_rows(DotIsa isa, std::int64_t k);

// y[r, n] = Σ_j x[r, j] · w[n, j] for r < rows and n in [n_begin, n_end): x f32 with row stride
// ldx, w [N, k] row-major in bf16 or f32, y with row stride ldy (columns outside the range are not
// touched). `scratch` holds panel_scratch_floats(isa, k) floats. isa is Avx2 or Avx512 (the
// caller keeps oneDNN's sgemm for CPUs without AVX2); anything else is an Internal error.
void panel_gemm_isa(DotIsa isa, const float* x, std::int64_t ldx, std::int64_t rows, const void* w,
                    DType wdtype, std::int64_t k, std::int64_t n_begin, std::int64_t n_end,
                    float* y, std::int64_t ldy, float* scratch);

// y[m, j] = Σ_t x[m, t] · panel[j, t] for m < rows, j < cols, with f32 weight rows `panel`
// [cols, k] (a dequantized panel: prefill's weight-only and ggml blocks) on the calling thread:
// through panel_gemm_isa for expert-sized row counts on `isa`, else oneDNN's sgemm, which packs
// the panel once for all rows (expert_gemm.cpp). Its scratch is one per thread, grown once.
void panel_rows_gemm(DotIsa isa, const float* x, std::int64_t ldx, std::int64_t rows,
                     const float* panel, std::int64_t k, std::int64_t cols, float* y,
                     std::int64_t ldy);

// The calling thread's scratch for panel_gemm_isa and packed_panel_gemm at reduction length k:
// one per thread, shared by every caller (the bf16 experts' GEMM, the dequantized panels of
// quantized and ggml weights), grown once (expert_gemm.cpp).
float* thread_panel_scratch(DotIsa isa, std::int64_t k);

// x packed once for many panels: prefill's dense layers and expert blocks multiply the same rows
// by one dequantized panel of weight rows after another, and packing x per panel cost as much as
// a sixth of the GEMM. Chunks of panel_chunk_rows(isa, k) rows, packable in parallel; isa is Avx2
// or Avx512 (anything else is an Internal error).
std::size_t packed_x_floats(DotIsa isa, std::int64_t rows, std::int64_t k);
void pack_x_chunk(DotIsa isa, const float* x, std::int64_t ldx, std::int64_t rows, std::int64_t k,
                  std::int64_t chunk, float* packed);
// panel_rows_gemm's product for a packed x of `rows` rows; scratch as for panel_gemm_isa.
void packed_panel_gemm(DotIsa isa, const float* packed, std::int64_t rows, const float* panel,
                       std::int64_t k, std::int64_t cols, float* y, std::int64_t ldy,
                       float* scratch);

// The per-ISA implementations (panel_gemm_avx512.cpp, panel_gemm_avx2.cpp).
struct PanelArgs {
  const float* x;
  std::int64_t ldx, rows;
  const void* w;
  bool bf16;
  std::int64_t k, n_begin, n_end;
  float* y;
  std::int64_t ldy;
  float* scratch;
};
std::size_t panel_scratch_avx512(std::int64_t k);
std::size_t panel_scratch_avx2(std::int64_t k);
std::int64_t panel_chunk_rows_avx512(std::int64_t k);
std::int64_t panel_chunk_rows_avx2(std::int64_t k);
void panel_gemm_avx512(const PanelArgs& a);
void panel_gemm_avx2(const PanelArgs& a);
std::size_t packed_x_floats_avx512(std::int64_t rows, std::int64_t k);
std::size_t packed_x_floats_avx2(std::int64_t rows, std::int64_t k);
void pack_x_chunk_avx512(const float* x, std::int64_t ldx, std::int64_t rows, std::int64_t k,
                         std::int64_t chunk, float* packed);
void pack_x_chunk_avx2(const float* x, std::int64_t ldx, std::int64_t rows, std::int64_t k,
                       std::int64_t chunk, float* packed);
void packed_gemm_avx512(const PanelArgs& a);
void packed_gemm_avx2(const PanelArgs& a);

}  // namespace porta::detail::cpu::moe
