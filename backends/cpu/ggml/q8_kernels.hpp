// llama.cpp's numerics on ggml blocks (ActivationQuant::GgmlQ8) with integer dot products: the
// activations quantized once per call to the 8-bit blocks the weight type meets in ggml
// (gguf::q8_activation_blocks), the weights' codes multiplied by them in integer registers, the
// integer sub-block scales applied in int32 and the float scales in f32 once per super-block.
// Two implementations, the best the CPU runs chosen at run time (tests run each):
//
// - AVX-512 VNNI (q8_kernels_avx512.cpp): vpdpbusd, 64 unsigned-by-signed byte products per
//   instruction, exact in int32. For blocks of kQ8PanelRows rows and more, weight rows are taken
//   16 at a time into a panel: their codes made unsigned bytes (q + 128 for signed codes),
//   interleaved four consecutive codes of each of the 16 rows per 64-byte vector, so that one
//   vpdpbusd with four broadcast activation codes advances 16 output columns; the integer
//   sub-block scales, the min terms (dmin·m, or d·offset for centred codes) and the super scales
//   d beside them.
// - AVX2 (q8_kernels_avx2.cpp, CPUs without AVX-512 VNNI): vpmaddubsw (32 unsigned-by-signed
//   byte products summed in pairs into int16) then vpmaddwd (pairs of int16 into int32, by one
//   or by the sub-block scales). vpmaddubsw saturates, so the codes it meets must keep each pair
//   within int16: 4- to 6-bit codes (q4_K, q5_K, q6_K's 0..63, q4_0's 0..15) go in unsigned as
//   stored, with their offsets (q6_K's 32, q4_0's 8) taken out as integer or min terms; q8_0's
//   signed codes go in as |w| against x with w's sign (vpsignb), since q + 128 up to 255 times
//   127, twice, overflows. Panels of 8 weight rows (one int32 lane each) under the same scheme.
//
// The sum is then, per output (row r of x, weight row c):
//   y = Σ_super dx·d_c · Σ_sub sc_c · Σ q_c·qx  −  Σ_sub (min_c) · (dx · Σ qx)
// which equals Σ w·x̂ (x̂ the rounded activations, w the exact weights) up to f32 rounding of
// the scale products: within 1e-6 relative of the reference's product (docs/gguf.md).
//
// PORTA_GGML_ISA (environment, read once, on first use): `avx2` caps porta's own ggml block
// kernels at AVX2 (the f32 kernels' best_block_isa() and best_q8_isa() below), `plain` at the
// plain C++ f32 kernels (no integer kernel: ggml_q8 rounds the activations through the f32
// ones); unset or empty takes the best the CPU has. Any other value is a porta::Error naming
// the variable. For benchmarks and for comparing the paths on one machine.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <porta/ggml_quants.hpp>

namespace porta::detail::cpu::ggml {

// The cap PORTA_GGML_ISA puts on the ggml kernels' instruction set.
enum class GgmlIsaCap { None, Avx2, Plain };
// The environment's cap, read once; an invalid value throws (again at every call).
GgmlIsaCap ggml_isa_cap();
// One value of PORTA_GGML_ISA (null or empty: None); throws porta::Error for any other than
// `avx2` and `plain`.
GgmlIsaCap parse_ggml_isa_cap(const char* value);

enum class Q8Isa { Avx2, Avx512Vnni };

// The integer implementations this CPU runs, weakest first, whatever PORTA_GGML_ISA says (the
// tests run each); AVX2 means AVX2 with FMA and F16C, AVX-512 VNNI also AVX-512F/BW/VL.
std::vector<Q8Isa> available_q8_isas();
// Whether an integer implementation is available under PORTA_GGML_ISA's cap, and the best one
// (best_q8_isa() throws without one); has_q8_kernel: whether `isa` (by default best_q8_isa(),
// false without one) has a kernel for `type`. Other block types, and CPUs without AVX2, take
// the rounded activations through the exact f32 kernels (same numbers).
bool has_q8_isa();
Q8Isa best_q8_isa();
const char* q8_isa_name(Q8Isa isa);
bool has_q8_kernel(Q8Isa isa, gguf::GgmlType type);
bool has_q8_kernel(gguf::GgmlType type);

// Activation rows quantized for one weight type, in the layout `isa`'s kernels read: codes
// [rows, k], block scales [rows, k / super], and per sub-block of the weight type dx · Σ qx
// [rows, k / sub].
// Avx512Vnni: for the row kernel (short blocks), the 32-element types whose codes are stored
// with an offset (q8_0's 128, q4_0's 8, ...) also keep −offset · Σ of each four codes [rows,
// k / 4], the starting value of its integer sums, and the 32-element types d expanded to one
// per lane of each 64 codes [rows, ⌈k / 64⌉, 16]. (q6_K's offset comes off per sub-block, from
// code_sums: an int32 per four codes doubled what decode keeps of x in L1.)
// q4_K (and q6_K on Avx512Vnni): the codes again, each super-block's in the order of the row
// kernel's lanes, so that one vector of the weight's codes meets them (lane_codes [rows, k]).
// Avx512Vnni: per step i < 4 of a super-block, q4_K's lane l = 8·nib + 2·g + h holds codes
// 32·(2g + nib) + 16·h + 4·i .. + 3, q6_K's lane l codes 16·l + 4·i .. + 3.
// Avx2: per step m < 8, lane i holds codes 4m .. 4m + 3 of sub-block kQ4kLaneSub[i].
// Both, for the types whose codes the panels take with an offset (AVX-512: q8_0, q4_0, q5_0,
// iq4_nl, q6_K; AVX2: q4_0, q5_0, q6_K): Σ qx per sub-block as int16 (code_sums [rows, k /
// sub]), so that the offset comes out in integers, exactly: as a float term offset·d·Σx̂ it
// cancels against the sums, and blocks of codes at the offset (weights near zero) lost their
// digits to it.
struct Q8Rows {
  Q8Isa isa = Q8Isa::Avx512Vnni;
  gguf::GgmlType weight_type = gguf::GgmlType::Q8_0;
  std::int64_t rows = 0, k = 0, super = 0, sub = 0;
  std::vector<std::int8_t> q;
  std::vector<float> d, sums;
  std::vector<std::int32_t> init;
  std::vector<float> lane_d;
  std::vector<std::int8_t> lane_codes;
  std::vector<std::int16_t> code_sums;
  const std::int8_t* codes(std::int64_t r) const { return q.data() + r * k; }
};

// Sizes `out` for `isa`'s kernels and rows of k elements of `type` (has_q8_kernel) without
// filling it.
void shape_q8_rows(Q8Isa isa, gguf::GgmlType type, std::int64_t rows, std::int64_t k,
                   Q8Rows& out);
// Fills rows [first, first + count) of `out` from x (row r at x + r·ldx): the same codes and
// scales as gguf::quantize_q8_activations, on the calling thread.
void quantize_q8_rows(const float* x, std::int64_t ldx, std::int64_t first, std::int64_t count,
                      Q8Rows& out);

// out = x rounded through the blocks (gguf::round_q8_activations, bit for bit) for rows of k
// elements, on the calling thread, with best_q8_isa()'s quantizer; needs has_q8_isa().
void round_q8_row(gguf::Q8Blocks blocks, const float* x, std::int64_t k, float* out);

// y[r·ldy + n] = Σ_k W[n, k] · x̂[first + r, k] for r < count and n < n_rows, on the calling
// thread, by x.isa's kernels: W rows of `type` blocks (row_bytes each) from w. From kQ8PanelRows
// rows of x (AVX-512's q4_K and q6_K from 16; AVX2's q5_K and q6_K from 32, its q4_K only where
// 8 rows of x overflow the row kernel's L1 budget), weight rows are packed into panels (16 with
// AVX-512, tiled two at a time; 8 with AVX2: their codes interleaved, so that one integer dot
// product instruction feeds a whole vector of outputs); under it each weight row is decoded in
// registers and multiplied by a few rows of x at a time (up to eight with AVX-512; four with
// AVX2, eight for its q4_K and q6_K).
inline constexpr std::int64_t kQ8PanelRows = 10;
void q8_matmul_serial(const std::byte* w, std::int64_t n_rows, const Q8Rows& x, std::int64_t first,
                      std::int64_t count, float* y, std::int64_t ldy);

// Per-ISA entry points (q8_kernels_avx512.cpp, q8_kernels_avx2.cpp) of the functions above, for
// a type with a kernel; only called when the CPU has the instructions. The shapes leave
// Q8Rows::isa to shape_q8_rows, and take what every layout holds (the codes, d and dx·Σq, for
// blocks of `super` elements and sub-blocks of `sub`) from shape_q8_common, which checks k.
void shape_q8_common(gguf::GgmlType type, std::int64_t rows, std::int64_t k, std::int64_t super,
                     std::int64_t sub, Q8Rows& out);
// Row r's dx·Σq per sub-block (sums) and, where the layout keeps them, Σq (code_sums), from its
// codes and block scales: the part of quantize_q8_rows every ISA shares.
void fill_sub_block_sums(std::int64_t r, Q8Rows& out);
void shape_q8_rows_avx512(gguf::GgmlType type, std::int64_t rows, std::int64_t k, Q8Rows& out);
void quantize_q8_rows_avx512(const float* x, std::int64_t ldx, std::int64_t first,
                             std::int64_t count, Q8Rows& out);
void round_q8_row_avx512(gguf::Q8Blocks blocks, const float* x, std::int64_t k, float* out);
void q8_matmul_avx512(const std::byte* w, std::int64_t n_rows, const Q8Rows& x, std::int64_t first,
                      std::int64_t count, float* y, std::int64_t ldy);
void shape_q8_rows_avx2(gguf::GgmlType type, std::int64_t rows, std::int64_t k, Q8Rows& out);
void quantize_q8_rows_avx2(const float* x, std::int64_t ldx, std::int64_t first,
                           std::int64_t count, Q8Rows& out);
void round_q8_row_avx2(gguf::Q8Blocks blocks, const float* x, std::int64_t k, float* out);
void q8_matmul_avx2(const std::byte* w, std::int64_t n_rows, const Q8Rows& x, std::int64_t first,
                    std::int64_t count, float* y, std::int64_t ldy);

}  // namespace porta::detail::cpu::ggml
