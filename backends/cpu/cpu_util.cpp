// Shared helpers of the cpu kernels: descriptions, support checks, errors, conversions, threads.
#include "cpu_util.hpp"

#include <omp.h>

#include <charconv>
#include <cstdlib>
#include <cstring>
#include <new>

#include <fmt/format.h>

#ifndef PORTA_CPU_THREADS
#define PORTA_CPU_THREADS 0
#endif

namespace porta::detail::cpu {

std::optional<dnnl::memory::data_type> dnnl_type(DType t) {
  using dt = dnnl::memory::data_type;
  switch (t) {
    case DType::F32: return dt::f32;
    case DType::F16: return dt::f16;
    case DType::BF16: return dt::bf16;
    case DType::I8: return dt::s8;
    case DType::I32: return dt::s32;
    case DType::I64:
    case DType::F8E4M3: break;  // oneDNN 2.6 has neither
  }
  return std::nullopt;
}

dnnl::memory::dims padded_dims(const Shape& s, int rank) {
  rank = std::max({rank, s.rank(), 1});
  dnnl::memory::dims dims(static_cast<std::size_t>(rank), 1);
  const auto offset = static_cast<std::size_t>(rank - s.rank());
  for (std::size_t i = 0; i < s.dims().size(); ++i) dims[offset + i] = s.dims()[i];
  return dims;
}

dnnl::memory::dims dense_strides(const dnnl::memory::dims& dims) {
  dnnl::memory::dims strides(dims.size(), 1);
  for (std::size_t i = dims.size(); i-- > 1;)
    strides[i - 1] = strides[i] * std::max<dnnl::memory::dim>(dims[i], 1);
  return strides;
}

dnnl::memory::desc plain_desc(const Shape& s, dnnl::memory::data_type t, int rank) {
  const auto dims = padded_dims(s, rank);
  return dnnl::memory::desc(dims, t, dense_strides(dims));
}

dnnl::memory::desc plain_desc(const Shape& s, DType t, int rank) {
  return plain_desc(s, dnnl_type(t).value_or(dnnl::memory::data_type::f32), rank);
}

bool is_f32_or_bf16(DType t) { return t == DType::F32 || t == DType::BF16; }

SupportResult float_dtype_refusal(DType t) {
  return SupportResult::no(
      fmt::format("{} is not supported by the cpu backend (it runs f32 and bf16)", dtype_name(t)));
}

SupportResult require_f32_bf16(std::initializer_list<DType> dtypes) {
  for (DType t : dtypes)
    if (!is_f32_or_bf16(t)) return float_dtype_refusal(t);
  return SupportResult::yes();
}

void throw_node_error(const GraphState& g, const Node& n, const std::string& what, ErrorCode code) {
  throw Error(code, fmt::format("cpu backend: {}: {}", describe_node(g, n), what));
}

void widen_bf16(const std::uint16_t* src, float* dst, std::size_t count) {
  parallel_for(static_cast<std::int64_t>(count), 1 << 18, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i) {
      const std::uint32_t bits = static_cast<std::uint32_t>(src[i]) << 16;
      std::memcpy(dst + i, &bits, sizeof bits);
    }
  });
}

void narrow_to_bf16(const float* src, std::uint16_t* dst, std::size_t count) {
  parallel_for(static_cast<std::int64_t>(count), 1 << 18, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i) {
      std::uint32_t x;
      std::memcpy(&x, src + i, sizeof x);
      // Branch-free so it vectorises: NaN keeps its top bits and becomes quiet; the rest rounds
      // to nearest, ties to even (porta::f32_to_bf16_bits, bit for bit).
      const std::uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
      const std::uint32_t nan = (x >> 16) | 0x40u;
      dst[i] = static_cast<std::uint16_t>((x & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
    }
  });
}

void load_f32(const void* src, DType t, float* dst, std::size_t count) {
  if (t == DType::BF16)
    widen_bf16(static_cast<const std::uint16_t*>(src), dst, count);
  else if (count > 0 && src != dst)
    std::memcpy(dst, src, count * sizeof(float));
}

void store_f32(const float* src, DType t, void* dst, std::size_t count) {
  if (t == DType::BF16)
    narrow_to_bf16(src, static_cast<std::uint16_t*>(dst), count);
  else if (count > 0 && src != dst)
    std::memcpy(dst, src, count * sizeof(float));
}

F32Scratch::F32Scratch(std::size_t count) : count_(count) {
  if (count == 0) return;
  const std::size_t bytes = (count * sizeof(float) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, bytes);
  if (p == nullptr)
    throw Error(ErrorCode::OutOfMemory,
                fmt::format("cpu backend: cannot allocate {} bytes of scratch", bytes));
  data_.reset(static_cast<float*>(p));
}

void F32Scratch::Free::operator()(float* p) const noexcept { std::free(p); }

int configured_threads(std::string* error) {
  if (const char* env = std::getenv("PORTA_CPU_THREADS"); env != nullptr && *env != '\0') {
    int value = 0;
    const char* end = env + std::strlen(env);
    const auto [ptr, ec] = std::from_chars(env, end, value);
    if (ec == std::errc() && ptr == end && value > 0) return value;
    if (error != nullptr)
      *error = fmt::format(
          "PORTA_CPU_THREADS='{}' is not a positive integer (unset it to use every core)", env);
  }
  if (PORTA_CPU_THREADS > 0) return PORTA_CPU_THREADS;
  return std::max(1, omp_get_max_threads());
}

int cpu_threads() {
  static const int threads = configured_threads();
  return threads;
}

int active_threads() { return std::max(1, std::min(cpu_threads(), omp_get_max_threads())); }

}  // namespace porta::detail::cpu
