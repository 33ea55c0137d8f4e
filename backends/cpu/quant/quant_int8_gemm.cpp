// Prefill-sized W8A8 blocks through oneDNN's integer GEMM (dnnl_gemm_s8s8s32): C = Σ_k q·w in
// exact int32 for the block's rows against a range of weight rows, read where they are (the
// [N, K] weight is op(B) = Bᵀ, no copy kept). oneDNN packs both operands per call, which costs
// little next to the ~48-row GEMM of a prefill expert, and runs single-threaded inside porta's
// parallel region. The centring (zero points, a static offset) is added to C in int64 and the
// result scaled exactly as int8_output does for one group, so it equals the reference's float.
//
// Only per-channel weights (one group: oneDNN has no per-group sums) and only on VNNI CPUs:
// without VNNI oneDNN's int8 GEMM multiplies with vpmaddubsw, whose int16 pair sums saturate.
// GCC 12 flags the _mm512_undefined operands of unmasked AVX-512 intrinsics as maybe
// uninitialised once inlined (the lanes they stand for are all written).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <oneapi/dnnl/dnnl.h>

#include <cstdint>
#include <vector>

#include <fmt/format.h>

#include <porta/error.hpp>

#include "quant/quant_cpu.hpp"

namespace porta::detail::cpu::quant {
namespace {

// y[j] = int8_output_one_group(acc[j], s[j], x_scale) for j < n, 16 at a time: the same two
// roundings (a contracted fma(f32(acc), s, 0) rounds as the product does).
__attribute__((target("avx512f"))) void scale_row_avx512(const std::int32_t* acc, const float* s,
                                                         std::int64_t n, float x_scale, float* y) {
  const __m512 vx = _mm512_set1_ps(x_scale);
  std::int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512 v =
        _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_loadu_si512(acc + j)), _mm512_loadu_ps(s + j));
    _mm512_storeu_ps(y + j, _mm512_mul_ps(_mm512_add_ps(_mm512_setzero_ps(), v), vx));
  }
  for (; j < n; ++j) y[j] = int8_output_one_group(acc[j], s[j], x_scale);
}

}  // namespace

bool onednn_int8_fits(QuantIsa isa, const QuantMatrix& w) {
  if (isa != QuantIsa::Avx512Vnni || w.scheme.format != QuantFormat::Int8 || w.groups() != 1 ||
      w.k == 0)
    return false;
  // DNNL_MAX_CPU_ISA may hold oneDNN below VNNI even where the CPU has it.
  static const bool vnni = [] {
    const auto isa_bits = static_cast<unsigned>(dnnl_get_effective_cpu_isa());
    const auto want = static_cast<unsigned>(dnnl_cpu_isa_avx512_core_vnni);
    return (isa_bits & want) == want;
  }();
  return vnni;
}

void onednn_int8_rows(const QuantizedRows& a, std::int64_t m0, std::int64_t count,
                      const QuantMatrix& w, std::int64_t n_begin, std::int64_t n_end, float* y,
                      std::int64_t ldy) {
  const std::int64_t cols = n_end - n_begin, k = w.k;
  if (count <= 0 || cols <= 0) return;
  thread_local std::vector<std::int32_t> c;
  c.resize(static_cast<std::size_t>(count * cols));
  const auto* weights = static_cast<const std::int8_t*>(w.data) + n_begin * k;
  const std::int32_t no_offset = 0;
  const dnnl_status_t status =
      dnnl_gemm_s8s8s32('N', 'T', 'F', count, cols, k, 1.0f, a.row(m0), a.ld, 0, weights, k, 0,
                        0.0f, c.data(), cols, &no_offset);
  if (status != dnnl_success)
    throw Error(ErrorCode::Backend,
                fmt::format("cpu backend: W8A8 GEMM {}x{}x{}: oneDNN gemm_s8s8s32 failed "
                            "(status {})",
                            count, cols, k, static_cast<int>(status)));
  std::vector<float> scales(static_cast<std::size_t>(cols));
  for (std::int64_t j = 0; j < cols; ++j)
    widen_scales(w, n_begin + j, &scales[static_cast<std::size_t>(j)]);
  if (w.zero == nullptr && a.offset == 0) {
    // Symmetric weights and activations: C is already the centred sum.
    for (std::int64_t m = 0; m < count; ++m)
      scale_row_avx512(c.data() + m * cols, scales.data(), cols,
                       a.scales[static_cast<std::size_t>(m0 + m)], y + (m0 + m) * ldy + n_begin);
    return;
  }
  // Σ_k w of each weight row, for a static offset only.
  std::vector<std::int64_t> wsum;
  if (a.offset != 0) {
    wsum.assign(static_cast<std::size_t>(cols), 0);
    for (std::int64_t j = 0; j < cols; ++j) {
      std::int64_t sum = 0;
      for (std::int64_t t = 0; t < k; ++t) sum += weights[j * k + t];
      wsum[static_cast<std::size_t>(j)] = sum;
    }
  }
  for (std::int64_t j = 0; j < cols; ++j) {
    const std::int64_t n = n_begin + j;
    const std::int8_t* zeros = zero_row(w, n);
    const std::int64_t z = zeros == nullptr ? 0 : zeros[0];
    const std::int64_t ws = wsum.empty() ? 0 : wsum[static_cast<std::size_t>(j)];
    for (std::int64_t m = 0; m < count; ++m) {
      const std::int64_t acc =
          centred_sum(a, m0 + m, 0, z, c[static_cast<std::size_t>(m * cols + j)], ws);
      y[(m0 + m) * ldy + n] = int8_output_one_group(acc, scales[static_cast<std::size_t>(j)],
                                                    a.scales[static_cast<std::size_t>(m0 + m)]);
    }
  }
}

}  // namespace porta::detail::cpu::quant
