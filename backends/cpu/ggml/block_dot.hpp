// Matrix products straight from GGML's packed blocks (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL,
// Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS: every type gguf::dequantize reads): the weight rows
// stay as stored in the GGUF mapping and are decoded in registers, block by block, while the
// activations stay f32; a block is decoded once for up to eight rows of activations (four with
// AVX2). One implementation per instruction set (plain C++, AVX2+FMA+F16C, AVX-512F/BW/VL), the
// best chosen at run time; tests force each one.
//
// Numerics (docs/gguf.md): the plain path is the definition, dequantize each block exactly
// (gguf::dequantize) and accumulate Σ w·x in f32 in element order. The SIMD paths compute each
// weight with the dequantizer's own operations (so the same f32 value) and accumulate Σ w·x in
// f32 lanes: they differ from the definition by the order of the sum only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <porta/ggml_quants.hpp>

namespace porta::detail::cpu::ggml {

enum class BlockIsa { Plain, Avx2, Avx512 };

// The implementations this CPU can run, Plain first; best_block_isa() is the last of them.
std::vector<BlockIsa> available_block_isas();
BlockIsa best_block_isa();
const char* block_isa_name(BlockIsa isa);

// The block types with kernels here.
bool has_block_kernel(gguf::GgmlType type);
// Throws unless `type` has a kernel and k is a positive whole number of its blocks (what every
// product below checks first; callers that run block_matmul_serial inside a parallel loop check
// before it).
void check_block_rows(gguf::GgmlType type, std::int64_t k);

// Σ_k dequantize(row)[k] · x[k]: `row` is one weight row of k elements (k a whole number of
// blocks), as stored.
float block_dot(BlockIsa isa, gguf::GgmlType type, const std::byte* row, const float* x,
                std::int64_t k);

// y[r·ldy + n] = Σ_k W[n, k] · x[r·ldx + k] for r < rows and n < n_rows, W rows of
// row_bytes(type, k) bytes each: each weight row streamed once per eight rows of x (four with
// AVX2), K in L1-sized stretches past eight rows of 1536 (a kernel for decode and short blocks;
// long prompts want a GEMM on dequantized panels, ggml_linear.hpp).
// block_matmul's threads split n; block_matmul_serial runs on the calling thread, for callers
// that own the parallel loop.
void block_matmul(BlockIsa isa, gguf::GgmlType type, const std::byte* w, std::int64_t n_rows,
                  std::int64_t k, const float* x, std::int64_t ldx, std::int64_t rows, float* y,
                  std::int64_t ldy);
void block_matmul_serial(BlockIsa isa, gguf::GgmlType type, const std::byte* w,
                         std::int64_t n_rows, std::int64_t k, const float* x, std::int64_t ldx,
                         std::int64_t rows, float* y, std::int64_t ldy);

// out[n·ldo + j] = dequantize(W)[n, j] for n < n_rows, j < k, on the calling thread: the SIMD
// decoders' weights (equal to gguf::dequantize's bit for bit) stored, for GEMMs on dequantized
// panels.
void dequantize_block_rows(BlockIsa isa, gguf::GgmlType type, const std::byte* w,
                           std::int64_t n_rows, std::int64_t k, float* out, std::int64_t ldo);

// Per-ISA kernels (block_dot_avx2.cpp, block_dot_avx512.cpp) of block_matmul_serial and
// dequantize_block_rows, for a type with a kernel and whole blocks; only called when the CPU has
// the instructions.
void matmul_blocks_avx2(gguf::GgmlType type, const std::byte* w, std::size_t row_bytes,
                        std::int64_t n_rows, std::int64_t k, const float* x, std::int64_t ldx,
                        std::int64_t rows, float* y, std::int64_t ldy);
void matmul_blocks_avx512(gguf::GgmlType type, const std::byte* w, std::size_t row_bytes,
                          std::int64_t n_rows, std::int64_t k, const float* x, std::int64_t ldx,
                          std::int64_t rows, float* y, std::int64_t ldy);
void dequantize_blocks_avx2(gguf::GgmlType type, const std::byte* w, std::size_t row_bytes,
                            std::int64_t n_rows, std::int64_t k, float* out, std::int64_t ldo);
void dequantize_blocks_avx512(gguf::GgmlType type, const std::byte* w, std::size_t row_bytes,
                              std::int64_t n_rows, std::int64_t k, float* out, std::int64_t ldo);

}  // namespace porta::detail::cpu::ggml
