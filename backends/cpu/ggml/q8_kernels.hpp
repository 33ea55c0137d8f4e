// llama.cpp's numerics on ggml blocks (ActivationQuant::GgmlQ8) with integer dot products: the
// activations quantized once per call to the 8-bit blocks the weight type meets in ggml
// (gguf::q8_activation_blocks), the weights' codes multiplied by them with AVX-512 VNNI
// (vpdpbusd: 64 unsigned-by-signed byte products per instruction, exact in int32), the integer
// sub-block scales applied in int32 and the float scales in f32 once per super-block.
//
// For blocks of kQ8PanelRows rows and more, weight rows are taken 16 at a time into a panel: their codes made unsigned bytes (q + 128 for
// signed codes), interleaved four consecutive codes of each of the 16 rows per 64-byte vector,
// so that one vpdpbusd with four broadcast activation codes advances 16 output columns; the
// integer sub-block scales, the min terms (dmin·m, or d·offset for centred codes) and the super
// scales d beside them. The sum is then, per output (row r of x, weight row c):
//   y = Σ_super dx·d_c · Σ_sub sc_c · Σ q_c·qx  −  Σ_sub (min_c) · (dx · Σ qx)
// which equals Σ w·x̂ (x̂ the rounded activations, w the exact weights) up to f32 rounding of
// the scale products: within 1e-6 relative of the reference's product (docs/gguf.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <porta/ggml_quants.hpp>

namespace porta::detail::cpu::ggml {

// Whether this CPU runs the integer kernels (AVX-512F/BW/VL with VNNI) and whether `type` has
// one (q8_0, q4_0, q4_K, q5_K, q6_K); other block types take the rounded activations through
// the exact f32 kernels (same numbers).
bool has_q8_isa();
bool has_q8_kernel(gguf::GgmlType type);

// Activation rows quantized for one weight type: codes [rows, k], block scales
// [rows, k / super], and per sub-block of the weight type dx · Σ qx [rows, k / sub].
// For the row kernel (short blocks), weight types whose codes are stored with an offset (q8_0's
// 128, q4_0's 8, q6_K's 32) also keep −offset · Σ of each four codes [rows, k / 4], the starting
// value of its integer sums, and the 32-element types d expanded to one per lane of each 64
// codes [rows, ⌈k / 64⌉, 16].
struct Q8Rows {
  gguf::GgmlType weight_type = gguf::GgmlType::Q8_0;
  std::int64_t rows = 0, k = 0, super = 0, sub = 0;
  std::vector<std::int8_t> q;
  std::vector<float> d, sums;
  std::vector<std::int32_t> init;
  std::vector<float> lane_d;
  const std::int8_t* codes(std::int64_t r) const { return q.data() + r * k; }
};

// Sizes `out` for rows of k elements of `type` (has_q8_kernel) without filling it.
void shape_q8_rows(gguf::GgmlType type, std::int64_t rows, std::int64_t k, Q8Rows& out);
// Fills rows [first, first + count) of `out` from x (row r at x + r·ldx): the same codes and
// scales as gguf::quantize_q8_activations, on the calling thread.
void quantize_q8_rows(const float* x, std::int64_t ldx, std::int64_t first, std::int64_t count,
                      Q8Rows& out);

// out = x rounded through the blocks (gguf::round_q8_activations, bit for bit) for rows of k
// elements, on the calling thread; needs has_q8_isa().
void round_q8_row(gguf::Q8Blocks blocks, const float* x, std::int64_t k, float* out);

// y[r·ldy + n] = Σ_k W[n, k] · x̂[first + r, k] for r < count and n < n_rows, on the calling
// thread: W rows of `type` blocks (row_bytes each) from w. From kQ8PanelRows rows of x, 16 weight
// rows at a time are packed into a panel (their codes interleaved, so that one vpdpbusd feeds 16
// outputs); under it each weight row is decoded in registers and multiplied by up to eight rows
// of x, 64 codes at a time (the integer sums per four codes, scaled per sub-block with vpmaddwd).
inline constexpr std::int64_t kQ8PanelRows = 10;
void q8_matmul_serial(const std::byte* w, std::int64_t n_rows, const Q8Rows& x, std::int64_t first,
                      std::int64_t count, float* y, std::int64_t ldy);

}  // namespace porta::detail::cpu::ggml
