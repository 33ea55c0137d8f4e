// Matrix products straight from GGML's packed blocks (Q8_0, Q4_0, Q4_K, Q6_K): the weight rows
// stay as stored in the GGUF mapping and are decoded in registers, block by block, while the
// activations stay f32. One implementation per instruction set (plain C++, AVX2+FMA+F16C,
// AVX-512F/BW/VL), the best chosen at run time; tests force each one.
//
// Numerics (docs/gguf.md): the plain path is the definition, dequantize each block exactly
// (gguf::dequantize) and accumulate Σ w·x in f32 in element order. The SIMD paths factor each
// block's scale out of its sum (Σ d·q·x = d·Σ q·x, and Q4_K's min term dmin·m·Σx) and add in
// lanes, so they differ from it by f32 rounding only.
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

// Σ_k dequantize(row)[k] · x[k]: `row` is one weight row of k elements (k a whole number of
// blocks), as stored.
float block_dot(BlockIsa isa, gguf::GgmlType type, const std::byte* row, const float* x,
                std::int64_t k);

// y[r·ldy + n] = Σ_k W[n, k] · x[r·ldx + k] for r < rows and n < n_rows, W rows of
// row_bytes(type, k) bytes each. Few rows (decode) stream the blocks once per row of x; many rows
// (prefill) decode each weight row once into f32 and run the f32 decode loop (moe/dot_rows.hpp) on
// it, 8 rows of x at a time. Threads split n.
void block_matmul(BlockIsa isa, gguf::GgmlType type, const std::byte* w, std::int64_t n_rows,
                  std::int64_t k, const float* x, std::int64_t ldx, std::int64_t rows, float* y,
                  std::int64_t ldy);

// Per-ISA row kernels (block_dot_avx2.cpp, block_dot_avx512.cpp); only called when the CPU has
// the instructions.
float block_dot_avx2(gguf::GgmlType type, const std::byte* row, const float* x, std::int64_t k);
float block_dot_avx512(gguf::GgmlType type, const std::byte* row, const float* x, std::int64_t k);

}  // namespace porta::detail::cpu::ggml
