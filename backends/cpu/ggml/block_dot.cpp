// Dispatch and drivers of the packed-block products: the plain (defining) path, the choice of
// instruction set, and the decode/prefill loops over weight rows.
#include "ggml/block_dot.hpp"

#include <algorithm>

#include <span>

#include <fmt/format.h>

#include <porta/error.hpp>

#include "moe/dot_rows.hpp"

namespace porta::detail::cpu::ggml {

namespace {

bool has_avx2() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("f16c");
}
bool has_avx512() {
  return has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
}

// The definition: each block dequantized exactly, Σ w·x in f32 in element order.
float plain_dot(gguf::GgmlType type, const std::byte* row, const float* x, std::int64_t k) {
  const auto traits = gguf::traits_of(type);
  float block[256];
  float sum = 0;
  for (std::int64_t at = 0; at < k; at += traits.block_elements, row += traits.block_bytes) {
    gguf::dequantize(type, {row, traits.block_bytes}, {block, traits.block_elements});
    for (std::uint32_t i = 0; i < traits.block_elements; ++i) sum += block[i] * x[at + i];
  }
  return sum;
}

// Rows of x from which decoding a weight row once into f32 beats decoding it per row of x.
constexpr std::int64_t kPanelRows = 4;

}  // namespace

std::vector<BlockIsa> available_block_isas() {
  std::vector<BlockIsa> isas{BlockIsa::Plain};
  if (has_avx2()) isas.push_back(BlockIsa::Avx2);
  if (has_avx512()) isas.push_back(BlockIsa::Avx512);
  return isas;
}

BlockIsa best_block_isa() {
  static const BlockIsa best = available_block_isas().back();
  return best;
}

const char* block_isa_name(BlockIsa isa) {
  switch (isa) {
    case BlockIsa::Avx512: return "avx512";
    case BlockIsa::Avx2: return "avx2";
    case BlockIsa::Plain: break;
  }
  return "plain";
}

bool has_block_kernel(gguf::GgmlType type) {
  return type == gguf::GgmlType::Q8_0 || type == gguf::GgmlType::Q4_0 ||
         type == gguf::GgmlType::Q4_K || type == gguf::GgmlType::Q6_K;
}

namespace {

void check_rows(gguf::GgmlType type, std::int64_t k) {
  if (!has_block_kernel(type))
    throw Error(ErrorCode::Unsupported,
                fmt::format("no packed-block kernel for {} (kernels: q8_0, q4_0, q4_K, q6_K)",
                            gguf::type_name(type)));
  const auto traits = gguf::traits_of(type);
  if (k <= 0 || k % traits.block_elements != 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("a {} row of {} elements is not a whole number of {}-element blocks",
                            gguf::type_name(type), k, traits.block_elements));
}

float checked_dot(BlockIsa isa, gguf::GgmlType type, const std::byte* row, const float* x,
                  std::int64_t k) {
  switch (isa) {
    case BlockIsa::Avx512: return block_dot_avx512(type, row, x, k);
    case BlockIsa::Avx2: return block_dot_avx2(type, row, x, k);
    case BlockIsa::Plain: break;
  }
  return plain_dot(type, row, x, k);
}

}  // namespace

float block_dot(BlockIsa isa, gguf::GgmlType type, const std::byte* row, const float* x,
                std::int64_t k) {
  check_rows(type, k);
  return checked_dot(isa, type, row, x, k);
}

void block_matmul(BlockIsa isa, gguf::GgmlType type, const std::byte* w, std::int64_t n_rows,
                  std::int64_t k, const float* x, std::int64_t ldx, std::int64_t rows, float* y,
                  std::int64_t ldy) {
  check_rows(type, k);
  const std::size_t row_bytes = gguf::row_bytes(type, static_cast<std::uint64_t>(k));
  if (rows < kPanelRows || isa == BlockIsa::Plain) {
#pragma omp parallel for schedule(static)
    for (std::int64_t n = 0; n < n_rows; ++n) {
      const std::byte* row = w + static_cast<std::size_t>(n) * row_bytes;
      for (std::int64_t r = 0; r < rows; ++r) y[r * ldy + n] = checked_dot(isa, type, row, x + r * ldx, k);
    }
    return;
  }
  // Prefill: each weight row decoded once, then the decode kernel's f32 loop takes up to 8 rows
  // of x against it while it sits in L1.
  const moe::DotIsa dot_isa = isa == BlockIsa::Avx512 ? moe::DotIsa::Avx512 : moe::DotIsa::Avx2;
#pragma omp parallel
  {
    std::vector<float> decoded(static_cast<std::size_t>(k));
#pragma omp for schedule(static)
    for (std::int64_t n = 0; n < n_rows; ++n) {
      gguf::dequantize(type, {w + static_cast<std::size_t>(n) * row_bytes, row_bytes}, decoded);
      for (std::int64_t r = 0; r < rows; r += 8)
        moe::small_gemm_isa(dot_isa, x + r * ldx, ldx, std::min<std::int64_t>(8, rows - r),
                            decoded.data(), DType::F32, k, 0, 1, y + r * ldy + n, ldy);
    }
  }
}

}  // namespace porta::detail::cpu::ggml
