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

#include <porta/error.hpp>

#include "moe/moe_cpu.hpp"

namespace porta::detail::cpu::moe {
namespace {

using dt = dnnl::memory::data_type;
using dims = dnnl::memory::dims;

// [M, K] · [K, N] with M and N given at run time, the weights as [N, K] row-major (strides
// {1, K}), the result with row stride ldy; a user-managed scratchpad, since several threads run
// the primitive at once.
dnnl::matmul::primitive_desc matmul_desc(CpuEnv& env, std::int64_t k, std::int64_t ldy) {
  const dnnl::memory::desc src({DNNL_RUNTIME_DIM_VAL, k}, dt::f32, dims{k, 1});
  const dnnl::memory::desc wei({k, DNNL_RUNTIME_DIM_VAL}, dt::f32, dims{1, k});
  const dnnl::memory::desc dst({DNNL_RUNTIME_DIM_VAL, DNNL_RUNTIME_DIM_VAL}, dt::f32, dims{ldy, 1});
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, wei, dst), attr, env.engine);
}

__attribute__((target("avx2,fma"))) inline __m256 load8(const std::uint16_t* p) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
}

__attribute__((target("avx2,fma"))) void widen_bf16_avx2(const std::uint16_t* src,
                                                         std::int64_t count, float* dst) {
  std::int64_t i = 0;
  for (; i + 8 <= count; i += 8) _mm256_storeu_ps(dst + i, load8(src + i));
  for (; i < count; ++i) dst[i] = bf16_bits_to_f32(src[i]);
}

}  // namespace

bool has_avx2() {
  static const bool supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return supported;
}

void widen_to_f32(const void* src, DType dtype, std::int64_t count, float* dst) {
  if (count <= 0) return;
  switch (dtype) {
    case DType::F32: std::memcpy(dst, src, static_cast<std::size_t>(count) * 4); return;
    case DType::BF16:
      if (has_avx2()) return widen_bf16_avx2(static_cast<const std::uint16_t*>(src), count, dst);
      for (std::int64_t i = 0; i < count; ++i)
        dst[i] = bf16_bits_to_f32(static_cast<const std::uint16_t*>(src)[i]);
      return;
    case DType::F16:
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
    : env_(env), n_(out_features), h_(in_features), dtype_(weight_dtype) {
  if (dtype_ != DType::F32 && dtype_ != DType::BF16)
    throw Error(ErrorCode::Internal,
                fmt::format("ExpertGemm: weights of dtype {}", dtype_name(dtype_)));
  if (n_ == 0 || h_ == 0) return;
  const auto pd = matmul_desc(env_, h_, n_);
  scratchpad_bytes_ = pd.scratchpad_desc().get_size();
  matmul_ = dnnl::matmul(pd);
  // A panel of widened rows fills half of a 1 MiB L2 next to the block's rows of x; a multiple
  // of 8 rows.
  panel_rows_ =
      std::clamp<std::int64_t>(kPanelBytes / (h_ * 4) / 8 * 8, 8, std::max<std::int64_t>(n_, 8));
}

void ExpertGemm::gemm(ThreadState& ts, const float* x, std::int64_t rows, const float* w,
                      std::int64_t cols, float* y) {
  const dnnl::memory src({{rows, h_}, dt::f32, dims{h_, 1}}, env_.engine, const_cast<float*>(x));
  const dnnl::memory wei({{h_, cols}, dt::f32, dims{1, h_}}, env_.engine, const_cast<float*>(w));
  const dnnl::memory dst({{rows, cols}, dt::f32, dims{n_, 1}}, env_.engine, y);
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}};
  if (scratchpad_bytes_ > 0)
    args.emplace(
        DNNL_ARG_SCRATCHPAD,
        dnnl::memory({{static_cast<dnnl::memory::dim>(scratchpad_bytes_)}, dt::u8, dims{1}},
                     env_.engine, ts.scratchpad.data()));
  matmul_.execute(ts.stream, args);
  ts.stream.wait();
}

void ExpertGemm::run_item(ThreadState& ts, const Block& b, std::int64_t n0, std::int64_t n1,
                          const float* x, const void* w_expert, float* y) {
  const float* xb = x + b.first * h_;
  float* yb = y + b.first * n_;
  if (dtype_ == DType::F32) {
    gemm(ts, xb, b.rows, static_cast<const float*>(w_expert) + n0 * h_, n1 - n0, yb + n0);
    return;
  }
  const auto* bits = static_cast<const std::uint16_t*>(w_expert);
  for (std::int64_t p = n0; p < n1; p += panel_rows_) {
    const std::int64_t count = std::min(panel_rows_, n1 - p);
    widen_to_f32(bits + p * h_, DType::BF16, count * h_, ts.panel.data());
    gemm(ts, xb, b.rows, ts.panel.data(), count, yb + p);
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
  const std::int64_t width = std::max<std::int64_t>(8, (n_ + splits - 1) / splits + 7) / 8 * 8;
  const std::int64_t per_block = (n_ + width - 1) / width;
  const std::int64_t items = count * per_block;
  while (static_cast<std::int64_t>(threads_.size()) < threads) {
    threads_.push_back(
        {dnnl::stream(env_.engine), std::vector<std::uint8_t>(scratchpad_bytes_), {}});
    if (dtype_ == DType::BF16)
      threads_.back().panel.resize(static_cast<std::size_t>(panel_rows_ * h_));
  }
  const int team = static_cast<int>(std::min(threads, items));
  std::exception_ptr error;
#pragma omp parallel for schedule(dynamic, 1) num_threads(team)
  for (std::int64_t i = 0; i < items; ++i) {
    try {
      const Block& b = blocks[static_cast<std::size_t>(i / per_block)];
      const std::int64_t n0 = (i % per_block) * width;
      run_item(threads_[static_cast<std::size_t>(omp_get_thread_num())], b, n0,
               std::min(n_, n0 + width), x, w.at(b.expert), y);
    } catch (...) {
#pragma omp critical(porta_moe_expert_gemm_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
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
