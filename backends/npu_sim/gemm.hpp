// The cube unit's numerics on the host, fast enough to run whole MoE layers: operands are widened
// once from their storage dtype (already the device's fp16/bf16, or f32) into f32 panels, products
// accumulate in f32 in a blocked, vectorised loop, and the caller rounds the f32 result once into
// the output dtype (FixPipe's cast, round to nearest even). No K-split or reordering changes the
// rounding of the output, only the f32 summation order, which is within the documented tolerance.
#pragma once

#include <cstdint>
#include <vector>

#include <porta/dtype.hpp>

namespace porta::detail::npu_sim {

inline constexpr std::int64_t kPanelWidth = 16;  // columns of B per packed panel

// B [K, N] packed into panels of 16 columns (K x 16 contiguous, zero-padded past N).
struct PackedB {
  std::vector<float> data;
  std::int64_t k = 0, n = 0;
  std::int64_t panels() const { return (n + kPanelWidth - 1) / kPanelWidth; }
};

// Widens `count` elements of `src` (stored as `dtype`) into f32; values already in the device
// dtype convert exactly. When `round_to` is f16 or bf16 and the source is f32, each value is
// first rounded to it, as the device's input cast does.
void widen(const void* src, DType dtype, std::int64_t count, float* dst,
           DType round_to = DType::F32);

// Packs B from row-major [K, N] (`b_is_nk` false) or from nn.Linear's [N, K] (`b_is_nk` true).
PackedB pack_b(const void* b, DType dtype, std::int64_t k, std::int64_t n, bool b_is_nk,
               DType round_to = DType::F32);

// c[M, N] (row stride ldc) = a[M, K] (row stride lda) . B, f32 accumulation.
void gemm_f32(const float* a, std::int64_t lda, const PackedB& b, std::int64_t m, float* c,
              std::int64_t ldc);

// c[M, N] (ldc) = a[M, K] (lda) . w[N, K]^T with w stored as `w_dtype` and used as it is (no
// rounding). Reads w in place when the CPU has AVX2 and w is f16 or f32 (an nn.Linear weight needs
// no packing then); packs it otherwise.
void gemm_nt(const float* a, std::int64_t lda, const void* w, DType w_dtype, std::int64_t n,
             std::int64_t k, std::int64_t m, float* c, std::int64_t ldc);

// int8 x int8 -> int32, exact.
void gemm_i8(const std::int8_t* a, const std::int8_t* b, std::int64_t m, std::int64_t k,
             std::int64_t n, std::int32_t* c);

// The kernel variants (gemm_kernel_avx2.cpp is compiled with -mavx2 -mfma -mf16c).
namespace kernels {
void panel_avx2(const float* a, std::int64_t lda, const float* panel, std::int64_t rows,
                std::int64_t k_begin, std::int64_t k_end, float* c, std::int64_t ldc,
                std::int64_t cols);
// c[M, N] = a[M, K] . w[N, K]^T with w in f16 or f32, no packing (AVX2 + FMA + F16C).
void gemm_nt_avx2(const float* a, std::int64_t lda, const void* w, bool w_is_f16, std::int64_t n,
                  std::int64_t k, std::int64_t m, float* c, std::int64_t ldc);
void widen_f16_avx2(const std::uint16_t* src, std::int64_t count, float* dst);
void panel_generic(const float* a, std::int64_t lda, const float* panel, std::int64_t rows,
                   std::int64_t k_begin, std::int64_t k_end, float* c, std::int64_t ldc,
                   std::int64_t cols);
}  // namespace kernels

}  // namespace porta::detail::npu_sim
