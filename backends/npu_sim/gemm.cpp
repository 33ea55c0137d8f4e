// The functional GEMM: operand widening and packing, the blocked f32 loop, and the exact int8
// GEMM. The inner kernel is chosen once from the CPU's features.
#include "gemm.hpp"

#include <algorithm>
#include <cstring>

namespace porta::detail::npu_sim {

namespace kernels {

void panel_generic(const float* a, std::int64_t lda, const float* panel, std::int64_t rows,
                   std::int64_t k_begin, std::int64_t k_end, float* c, std::int64_t ldc,
                   std::int64_t cols) {
  for (std::int64_t i = 0; i < rows; ++i) {
    float acc[kPanelWidth];
    for (std::int64_t j = 0; j < kPanelWidth; ++j) acc[j] = j < cols ? c[i * ldc + j] : 0.0f;
    for (std::int64_t p = k_begin; p < k_end; ++p) {
      const float av = a[i * lda + p];
      const float* b = panel + p * kPanelWidth;
      for (std::int64_t j = 0; j < kPanelWidth; ++j) acc[j] += av * b[j];
    }
    for (std::int64_t j = 0; j < cols; ++j) c[i * ldc + j] = acc[j];
  }
}

}  // namespace kernels

namespace {

bool has_avx2() {
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
  }();
  return yes;
}

float round_through(float v, DType t) {
  switch (t) {
    case DType::F16: return f16_bits_to_f32(f32_to_f16_bits(v));
    case DType::BF16: return bf16_bits_to_f32(f32_to_bf16_bits(v));
    case DType::F32:
    case DType::F8E4M3:
    case DType::I8:
    case DType::I32:
    case DType::I64: return v;  // no rounding asked for
  }
  return v;
}

constexpr std::int64_t kBlockK = 256;
constexpr std::int64_t kBlockM = 96;

}  // namespace

void widen(const void* src, DType dtype, std::int64_t count, float* dst, DType round_to) {
  if (count <= 0) return;
  switch (dtype) {
    case DType::F32:
      std::memcpy(dst, src, static_cast<std::size_t>(count) * sizeof(float));
      if (round_to == DType::F16 || round_to == DType::BF16)
        for (std::int64_t i = 0; i < count; ++i) dst[i] = round_through(dst[i], round_to);
      return;
    case DType::F16: {
      const auto* h = static_cast<const std::uint16_t*>(src);
      if (has_avx2()) return kernels::widen_f16_avx2(h, count, dst);
      for (std::int64_t i = 0; i < count; ++i) dst[i] = f16_bits_to_f32(h[i]);
      return;
    }
    case DType::BF16: {
      const auto* h = static_cast<const std::uint16_t*>(src);
      for (std::int64_t i = 0; i < count; ++i) dst[i] = bf16_bits_to_f32(h[i]);
      if (round_to == DType::F16)
        for (std::int64_t i = 0; i < count; ++i) dst[i] = round_through(dst[i], round_to);
      return;
    }
    case DType::F8E4M3:
    case DType::I8:
    case DType::I32:
    case DType::I64:
      for (std::int64_t i = 0; i < count; ++i)
        dst[i] = round_through(load_as_f32(src, dtype, static_cast<std::size_t>(i)), round_to);
      return;
  }
}

PackedB pack_b(const void* b, DType dtype, std::int64_t k, std::int64_t n, bool b_is_nk,
               DType round_to) {
  PackedB packed;
  packed.k = k;
  packed.n = n;
  packed.data.assign(static_cast<std::size_t>(packed.panels() * k * kPanelWidth), 0.0f);
  const auto* bytes = static_cast<const char*>(b);
  const std::size_t esize = dtype_size(dtype);
  if (b_is_nk) {
    // Sixteen rows of B^T at a time widened, then written panel-sequentially.
    std::vector<float> rows(static_cast<std::size_t>(kPanelWidth * k));
    for (std::int64_t p0 = 0; p0 < packed.panels(); ++p0) {
      const std::int64_t cols = std::min(kPanelWidth, n - p0 * kPanelWidth);
      for (std::int64_t j = 0; j < cols; ++j)
        widen(bytes + static_cast<std::size_t>((p0 * kPanelWidth + j) * k) * esize, dtype, k,
              rows.data() + j * k, round_to);
      float* panel = packed.data.data() + p0 * k * kPanelWidth;
      for (std::int64_t p = 0; p < k; ++p)
        for (std::int64_t j = 0; j < cols; ++j)
          panel[p * kPanelWidth + j] = rows[static_cast<std::size_t>(j * k + p)];
    }
  } else {
    std::vector<float> row(static_cast<std::size_t>(n));
    for (std::int64_t p = 0; p < k; ++p) {
      widen(bytes + static_cast<std::size_t>(p * n) * esize, dtype, n, row.data(), round_to);
      for (std::int64_t j = 0; j < n; ++j)
        packed.data[static_cast<std::size_t>((j / kPanelWidth) * k * kPanelWidth + p * kPanelWidth +
                                             j % kPanelWidth)] = row[static_cast<std::size_t>(j)];
    }
  }
  return packed;
}

void gemm_f32(const float* a, std::int64_t lda, const PackedB& b, std::int64_t m, float* c,
              std::int64_t ldc) {
  const std::int64_t k = b.k, n = b.n;
  for (std::int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
  if (k == 0 || n == 0 || m == 0) return;
  const auto panel_fn = has_avx2() ? kernels::panel_avx2 : kernels::panel_generic;
  for (std::int64_t k0 = 0; k0 < k; k0 += kBlockK) {
    const std::int64_t k1 = std::min(k, k0 + kBlockK);
    for (std::int64_t i0 = 0; i0 < m; i0 += kBlockM) {
      const std::int64_t rows = std::min(kBlockM, m - i0);
      for (std::int64_t p = 0; p < b.panels(); ++p) {
        const std::int64_t cols = std::min(kPanelWidth, n - p * kPanelWidth);
        panel_fn(a + i0 * lda, lda, b.data.data() + p * k * kPanelWidth, rows, k0, k1,
                 c + i0 * ldc + p * kPanelWidth, ldc, cols);
      }
    }
  }
}

void gemm_nt(const float* a, std::int64_t lda, const void* w, DType w_dtype, std::int64_t n,
             std::int64_t k, std::int64_t m, float* c, std::int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k == 0) {
    for (std::int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
    return;
  }
  if (has_avx2() && (w_dtype == DType::F16 || w_dtype == DType::F32))
    return kernels::gemm_nt_avx2(a, lda, w, w_dtype == DType::F16, n, k, m, c, ldc);
  gemm_f32(a, lda, pack_b(w, w_dtype, k, n, true), m, c, ldc);
}

void gemm_i8(const std::int8_t* a, const std::int8_t* b, std::int64_t m, std::int64_t k,
             std::int64_t n, std::int32_t* c) {
  std::fill(c, c + m * n, 0);
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t p = 0; p < k; ++p) {
      const std::int32_t av = a[i * k + p];
      const std::int8_t* brow = b + p * n;
      std::int32_t* crow = c + i * n;
      for (std::int64_t j = 0; j < n; ++j) crow[j] += av * static_cast<std::int32_t>(brow[j]);
    }
}

}  // namespace porta::detail::npu_sim
