// The expert GEMM engine (moe_cpu.hpp): large blocks expert-parallel, each work item one
// single-threaded oneDNN f32 matmul (bf16 weights widened a cache-sized panel at a time), and
// the weight-streaming dot-product loop of dot_rows.cpp for the small blocks of decode, which
// reads bf16 weights as bf16. Also the dtype widening and narrowing the MoE kernels share.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <unordered_map>

#include <fmt/format.h>
#include <oneapi/dnnl/dnnl.h>

#include <porta/error.hpp>

#include "moe/dot_rows.hpp"
#include "moe/moe_cpu.hpp"
#include "moe/panel_gemm.hpp"

namespace porta::detail::cpu::moe {
namespace {

__attribute__((target("avx2,fma"))) inline __m256 load8(const std::uint16_t* p) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
}

__attribute__((target("avx512f"))) void widen_bf16_avx512(const std::uint16_t* src,
                                                          std::int64_t count, float* dst) {
  std::int64_t i = 0;
  for (; i + 16 <= count; i += 16) {
    const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    const __m512i wide = _mm512_maskz_cvtepu16_epi32(0xFFFF, raw);
    _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xFFFF, wide, 16)));
  }
  for (; i < count; ++i) dst[i] = bf16_bits_to_f32(src[i]);
}

__attribute__((target("avx2,fma"))) void widen_bf16_avx2(const std::uint16_t* src,
                                                         std::int64_t count, float* dst) {
  std::int64_t i = 0;
  for (; i + 8 <= count; i += 8) _mm256_storeu_ps(dst + i, load8(src + i));
  for (; i < count; ++i) dst[i] = bf16_bits_to_f32(src[i]);
}

__attribute__((target("avx512f"))) void widen_f16_avx512(const std::uint16_t* src,
                                                         std::int64_t count, float* dst) {
  std::int64_t i = 0;
  for (; i + 16 <= count; i += 16)
    _mm512_storeu_ps(dst + i,
                     _mm512_maskz_cvtph_ps(
                         0xFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i))));
  for (; i < count; ++i) dst[i] = f16_bits_to_f32(src[i]);
}

__attribute__((target("avx2,fma,f16c"))) void widen_f16_avx2(const std::uint16_t* src,
                                                             std::int64_t count, float* dst) {
  std::int64_t i = 0;
  for (; i + 8 <= count; i += 8)
    _mm256_storeu_ps(dst + i,
                     _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  for (; i < count; ++i) dst[i] = f16_bits_to_f32(src[i]);
}

// rows x k bf16 weights [rows, k] widened into f32 [k, rows] (B in oneDNN's untransposed layout:
// its sgemm packs that ~30 % faster than the [rows, k] one at the ~48 rows of a prefill expert
// block, measured single-threaded on the AVX-512 Xeon). 8 x 8 tiles transposed in registers.
__attribute__((target("avx2,fma"))) void widen_transposed_avx2(const std::uint16_t* src,
                                                               std::int64_t rows, std::int64_t k,
                                                               float* dst) {
  const std::int64_t r8 = rows - rows % 8, k8 = k - k % 8;
  for (std::int64_t r0 = 0; r0 < r8; r0 += 8)
    for (std::int64_t k0 = 0; k0 < k8; k0 += 8) {
      __m256 v[8];
      for (int i = 0; i < 8; ++i) v[i] = load8(src + (r0 + i) * k + k0);
      const __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
      const __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
      const __m256 t4 = _mm256_unpacklo_ps(v[4], v[5]), t5 = _mm256_unpackhi_ps(v[4], v[5]);
      const __m256 t6 = _mm256_unpacklo_ps(v[6], v[7]), t7 = _mm256_unpackhi_ps(v[6], v[7]);
      const __m256 u0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
      const __m256 u1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
      const __m256 u2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
      const __m256 u3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
      const __m256 u4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
      const __m256 u5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
      const __m256 u6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
      const __m256 u7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
      float* d = dst + k0 * rows + r0;
      _mm256_storeu_ps(d + 0 * rows, _mm256_permute2f128_ps(u0, u4, 0x20));
      _mm256_storeu_ps(d + 1 * rows, _mm256_permute2f128_ps(u1, u5, 0x20));
      _mm256_storeu_ps(d + 2 * rows, _mm256_permute2f128_ps(u2, u6, 0x20));
      _mm256_storeu_ps(d + 3 * rows, _mm256_permute2f128_ps(u3, u7, 0x20));
      _mm256_storeu_ps(d + 4 * rows, _mm256_permute2f128_ps(u0, u4, 0x31));
      _mm256_storeu_ps(d + 5 * rows, _mm256_permute2f128_ps(u1, u5, 0x31));
      _mm256_storeu_ps(d + 6 * rows, _mm256_permute2f128_ps(u2, u6, 0x31));
      _mm256_storeu_ps(d + 7 * rows, _mm256_permute2f128_ps(u3, u7, 0x31));
    }
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t j = r < r8 ? k8 : 0; j < k; ++j)
      dst[j * rows + r] = bf16_bits_to_f32(src[r * k + j]);
}

void widen_transposed(const std::uint16_t* src, std::int64_t rows, std::int64_t k, float* dst) {
  if (has_avx2()) return widen_transposed_avx2(src, rows, k, dst);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t j = 0; j < k; ++j) dst[j * rows + r] = bf16_bits_to_f32(src[r * k + j]);
}

}  // namespace

bool has_avx2() {
  static const bool supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                                __builtin_cpu_supports("f16c");
  return supported;
}

void widen_to_f32(const void* src, DType dtype, std::int64_t count, float* dst) {
  if (count <= 0) return;
  switch (dtype) {
    case DType::F32: std::memcpy(dst, src, static_cast<std::size_t>(count) * 4); return;
    case DType::BF16:
      if (best_dot_isa() == DotIsa::Avx512)
        return widen_bf16_avx512(static_cast<const std::uint16_t*>(src), count, dst);
      if (has_avx2()) return widen_bf16_avx2(static_cast<const std::uint16_t*>(src), count, dst);
      for (std::int64_t i = 0; i < count; ++i)
        dst[i] = bf16_bits_to_f32(static_cast<const std::uint16_t*>(src)[i]);
      return;
    case DType::F16:
      if (best_dot_isa() == DotIsa::Avx512)
        return widen_f16_avx512(static_cast<const std::uint16_t*>(src), count, dst);
      if (has_avx2()) return widen_f16_avx2(static_cast<const std::uint16_t*>(src), count, dst);
      for (std::int64_t i = 0; i < count; ++i)
        dst[i] = f16_bits_to_f32(static_cast<const std::uint16_t*>(src)[i]);
      return;
    case DType::F8E4M3:
    case DType::I8:
    case DType::I32:
    case DType::I64:
      for (std::int64_t i = 0; i < count; ++i) dst[i] = load_as_f32(src, dtype, i);
      return;
  }
}

void narrow_from_f32(const float* src, DType dtype, std::int64_t count, void* dst) {
  if (count <= 0) return;
  if (dtype == DType::F32) {
    std::memcpy(dst, src, static_cast<std::size_t>(count) * 4);
    return;
  }
  for (std::int64_t i = 0; i < count; ++i) store_from_f32(dst, dtype, i, src[i]);
}

ExpertGemm::ExpertGemm(CpuEnv& env, std::int64_t out_features, std::int64_t in_features,
                       DType weight_dtype)
    : env_(env),
      n_(out_features),
      h_(in_features),
      dtype_(weight_dtype),
      isa_(best_dot_isa()) {
  if (dtype_ != DType::F32 && dtype_ != DType::BF16 && dtype_ != DType::F16)
    throw Error(ErrorCode::Internal,
                fmt::format("ExpertGemm: weights of dtype {}", dtype_name(dtype_)));
  if (n_ == 0 || h_ == 0) return;
  // A multiple of 8 rows.
  panel_rows_ =
      std::clamp<std::int64_t>(kPanelBytes / (h_ * 4) / 8 * 8, 8, std::max<std::int64_t>(n_, 8));
}

void ExpertGemm::gemm(const float* x, std::int64_t rows, const float* w, bool w_rows,
                      std::int64_t cols, float* y) {
  // oneDNN's row-major sgemm, the kernel its run-time-shaped f32 matmul dispatches to, without
  // building memory objects and an argument map per call (thousands of calls per prefill);
  // single-threaded inside our parallel region. w is [cols, H] (w_rows) or [H, cols].
  const dnnl_status_t status = dnnl_sgemm('N', w_rows ? 'T' : 'N', rows, cols, h_, 1.0f, x, h_, w,
                                          w_rows ? h_ : cols, 0.0f, y, n_);
  if (status != dnnl_success)
    throw Error(ErrorCode::Backend, fmt::format("cpu backend: expert GEMM {}x{}x{}: oneDNN sgemm "
                                                "failed (status {})",
                                                rows, cols, h_, static_cast<int>(status)));
}

bool ExpertGemm::use_panel_kernel(std::int64_t rows) const {
  // bf16 weights in blocks of up to two chunks (an expert block at prefill: ~48 rows at T = 512,
  // top-6 of 64): the register-tiled kernel, where oneDNN's sgemm re-packed a freshly widened
  // panel for few rows. Beyond, the weights would be widened once per chunk of rows, and oneDNN,
  // which packs them once for all rows, is faster (a dense layer or the shared expert over a
  // 512-token prompt: the dense MLP's largest matmul, K up to 10944, ran 1.6-2.8x slower
  // through the panel kernel). f32 weights need no widening: sgemm reads them in place, as fast or faster
  // (porta-bench-cpu-moe-layer, T = 512: 58-67 % of the GEMM rate through the panel kernel,
  // 64 % through sgemm, on the loaded 2-core Xeon).
  return isa_ != DotIsa::Plain && dtype_ == DType::BF16 && rows <= 2 * panel_chunk_rows(isa_, h_);
}

// One worker thread's scratch, shared by every ExpertGemm of the process (they run one at a
// time on it): the panel kernel's, and the widened bf16 panel of the sgemm path. One set per
// object cost a prefill ~1.5 MB of freshly faulted pages per matmul and thread (~0.2 GB on the
// 8-layer V2-Lite shape), and as much resident memory.
namespace {
struct ThreadScratch {
  std::vector<float> panel_kernel, widened;
};
ThreadScratch& thread_scratch() {
  thread_local ThreadScratch scratch;
  return scratch;
}
}  // namespace

float* thread_panel_scratch(DotIsa isa, std::int64_t k) {
  std::vector<float>& scratch = thread_scratch().panel_kernel;
  scratch.resize(std::max(scratch.size(), panel_scratch_floats(isa, k)));
  return scratch.data();
}

void ExpertGemm::run_item(const Block& b, std::int64_t n0, std::int64_t n1,
                          const float* x, const void* w_expert, float* y) {
  const float* xb = x + b.first * h_;
  float* yb = y + b.first * n_;
  if (use_panel_kernel(b.rows)) {
    panel_gemm_isa(isa_, xb, h_, b.rows, w_expert, dtype_, h_, n0, n1, yb, n_,
                   thread_panel_scratch(isa_, h_));
    return;
  }
  if (dtype_ == DType::F32) {
    gemm(xb, b.rows, static_cast<const float*>(w_expert) + n0 * h_, true, n1 - n0, yb + n0);
    return;
  }
  const auto* bits = static_cast<const std::uint16_t*>(w_expert);
  std::vector<float>& panel = thread_scratch().widened;
  panel.resize(std::max(panel.size(), static_cast<std::size_t>(panel_rows_ * h_)));
  if (dtype_ == DType::F16) {  // rows widened as stored: the GEMM of dequantized panels
    for (std::int64_t p = n0; p < n1; p += panel_rows_) {
      const std::int64_t count = std::min(panel_rows_, n1 - p);
      widen_to_f32(bits + p * h_, DType::F16, count * h_, panel.data());
      panel_rows_gemm(isa_, xb, h_, b.rows, panel.data(), h_, count, yb + p, n_);
    }
    return;
  }
  for (std::int64_t p = n0; p < n1; p += panel_rows_) {
    const std::int64_t count = std::min(panel_rows_, n1 - p);
    widen_transposed(bits + p * h_, count, h_, panel.data());
    gemm(xb, b.rows, panel.data(), false, count, yb + p);
  }
}

void ExpertGemm::run_large_blocks(const std::vector<Block>& blocks, const float* x,
                                  const ExpertWeights& w, float* y) {
  if (blocks.empty() || n_ == 0) return;
  if (h_ == 0) {
    for (const Block& b : blocks) std::fill_n(y + b.first * n_, b.rows * n_, 0.0f);
    return;
  }
  // At least four items per thread, for balance: with fewer blocks (the shared expert, a
  // prefill that reaches few experts) each block's columns are split, in multiples of 8.
  const auto threads = static_cast<std::int64_t>(omp_in_parallel() ? 1 : omp_get_max_threads());
  const auto count = static_cast<std::int64_t>(blocks.size());
  const std::int64_t splits = std::max<std::int64_t>(1, (4 * threads + count - 1) / count);
  // Multiples of 48 columns where there are enough (whole register tiles of the panel kernel,
  // whose groups are 6, 8, 12 or 16 weight rows), else of 8.
  const std::int64_t grain = n_ >= 48 * splits ? 48 : 8;
  const std::int64_t width =
      std::max<std::int64_t>(grain, (n_ + splits - 1) / splits + grain - 1) / grain * grain;
  const std::int64_t per_block = (n_ + width - 1) / width;
  const std::int64_t items = count * per_block;
  const int team = static_cast<int>(std::min(threads, items));
  std::exception_ptr error;
#pragma omp parallel for schedule(dynamic, 1) num_threads(team)
  for (std::int64_t i = 0; i < items; ++i) {
    try {
      const Block& b = blocks[static_cast<std::size_t>(i / per_block)];
      const std::int64_t n0 = (i % per_block) * width;
      run_item(b, n0,
               std::min(n_, n0 + width), x, w.at(b.expert), y);
    } catch (...) {
#pragma omp critical(porta_moe_expert_gemm_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

void panel_rows_gemm(DotIsa isa, const float* x, std::int64_t ldx, std::int64_t rows,
                     const float* panel, std::int64_t k, std::int64_t cols, float* y,
                     std::int64_t ldy) {
  if (rows <= 0 || cols <= 0) return;
  if (isa != DotIsa::Plain && rows <= 2 * panel_chunk_rows(isa, k)) {
    panel_gemm_isa(isa, x, ldx, rows, panel, DType::F32, k, 0, cols, y, ldy,
                   thread_panel_scratch(isa, k));
    return;
  }
  const dnnl_status_t status =
      dnnl_sgemm('N', 'T', rows, cols, k, 1.0f, x, ldx, panel, k, 0.0f, y, ldy);
  if (status != dnnl_success)
    throw Error(ErrorCode::Backend,
                fmt::format("cpu backend: dequantized-panel GEMM {}x{}x{}: oneDNN sgemm failed "
                            "(status {})",
                            rows, cols, k, static_cast<int>(status)));
}

void run_small_jobs(const std::vector<SmallJob>& jobs) {
  constexpr std::int64_t kSlice = 32;
  std::vector<std::int64_t> first_item(jobs.size() + 1, 0);
  for (std::size_t j = 0; j < jobs.size(); ++j)
    first_item[j + 1] = first_item[j] + (jobs[j].n_out + kSlice - 1) / kSlice;
  parallel_for(first_item.back(), 1, [&](std::int64_t begin, std::int64_t end) {
    std::size_t j = static_cast<std::size_t>(
        std::upper_bound(first_item.begin(), first_item.end(), begin) - first_item.begin() - 1);
    for (std::int64_t i = begin; i < end; ++i) {
      while (i >= first_item[j + 1]) ++j;
      const SmallJob& job = jobs[j];
      const std::int64_t n0 = (i - first_item[j]) * kSlice;
      const std::int64_t n1 = std::min(job.n_out, n0 + kSlice);
      if (job.h == 0) {
        for (std::int64_t r = 0; r < job.rows; ++r)
          std::fill(job.y + r * job.ldy + n0, job.y + r * job.ldy + n1, 0.0f);
        continue;
      }
      small_gemm(job.x, job.ldx, job.rows, job.w, job.wdtype, job.h, n0, n1, job.y, job.ldy);
    }
  });
}

void ExpertGemm::run_small_blocks(const std::vector<Block>& blocks, const float* x,
                                  std::int64_t ldx, const ExpertWeights& w_ref, float* y,
                                  std::int64_t ldy) const {
  if (blocks.empty() || n_ == 0) return;
  // Work items: (block, a slice of 32 weight rows), so that one pass covers every active expert.
  constexpr std::int64_t kSlice = 32;
  const std::int64_t slices = (n_ + kSlice - 1) / kSlice;
  const std::int64_t items = static_cast<std::int64_t>(blocks.size()) * slices;
  parallel_for(items, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) {
      const Block& b = blocks[static_cast<std::size_t>(i / slices)];
      const std::int64_t n0 = (i % slices) * kSlice;
      const void* w = w_ref.at(b.expert);
      if (h_ == 0) {
        for (std::int64_t r = 0; r < b.rows; ++r)
          std::fill(y + (b.first + r) * ldy + n0,
                    y + (b.first + r) * ldy + std::min(n_, n0 + kSlice), 0.0f);
        continue;
      }
      small_gemm(x + b.first * ldx, ldx, b.rows, w, dtype_, h_, n0, std::min(n_, n0 + kSlice),
                 y + b.first * ldy, ldy);
    }
  });
}

}  // namespace porta::detail::cpu::moe
