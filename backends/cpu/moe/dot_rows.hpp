// The weight-streaming dot-product loop of decode (a few activation rows against many weight
// rows), with one implementation per instruction set: plain C++, AVX2+FMA and AVX-512F. The best
// one this CPU has is chosen at run time; tests run each available one against a scalar
// reference.
#pragma once

#include <cstdint>
#include <vector>

#include <porta/dtype.hpp>

namespace porta::detail::cpu::moe {

enum class DotIsa { Plain, Avx2, Avx512 };

// The implementations this CPU can run, Plain first; best_dot_isa() is the last of them.
std::vector<DotIsa> available_dot_isas();
DotIsa best_dot_isa();
const char* dot_isa_name(DotIsa isa);

// y[r, n] = Σ_h x[r, h] · w[n, h] for r < rows and n in [n_begin, n_end): x f32 with row stride
// ldx, w [N, h] row-major in f32, bf16 or f16 (widened exactly; f32 accumulation), y with row
// stride ldy. Each weight row is read once for all the rows (at most 8 at a time).
void small_gemm_isa(DotIsa isa, const float* x, std::int64_t ldx, std::int64_t rows,
                    const void* w, DType wdtype, std::int64_t h, std::int64_t n_begin,
                    std::int64_t n_end, float* y, std::int64_t ldy);

}  // namespace porta::detail::cpu::moe
