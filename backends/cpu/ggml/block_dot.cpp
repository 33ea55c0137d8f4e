// Dispatch and drivers of the packed-block products: the plain (defining) path, the choice of
// instruction set, and the decode/prefill loops over weight rows.
#include "ggml/block_dot.hpp"

#include <algorithm>

#include <fmt/format.h>

#include <porta/error.hpp>

#include "ggml/q8_kernels.hpp"

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

}  // namespace

std::vector<BlockIsa> available_block_isas() {
  std::vector<BlockIsa> isas{BlockIsa::Plain};
  if (has_avx2()) isas.push_back(BlockIsa::Avx2);
  if (has_avx512()) isas.push_back(BlockIsa::Avx512);
  return isas;
}

BlockIsa best_block_isa() {
  // PORTA_GGML_ISA caps the choice (q8_kernels.hpp), to compare the paths on one machine.
  static const BlockIsa best = [] {
    const BlockIsa top = available_block_isas().back();
    switch (ggml_isa_cap()) {
      case GgmlIsaCap::Plain: return BlockIsa::Plain;
      case GgmlIsaCap::Avx2: return std::min(top, BlockIsa::Avx2);
      case GgmlIsaCap::None: break;
    }
    return top;
  }();
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
  using G = gguf::GgmlType;
  return type == G::Q8_0 || type == G::Q4_0 || type == G::Q4_1 || type == G::Q5_0 ||
         type == G::Q5_1 || type == G::IQ4_NL || type == G::Q2_K || type == G::Q3_K ||
         type == G::Q4_K || type == G::Q5_K || type == G::Q6_K || type == G::IQ4_XS;
}

void check_block_rows(gguf::GgmlType type, std::int64_t k) {
  if (!has_block_kernel(type))
    throw Error(ErrorCode::Unsupported,
                fmt::format("no packed-block kernel for {} (kernels: q8_0, q4_0, q4_1, q5_0, "
                            "q5_1, iq4_nl, q2_K, q3_K, q4_K, q5_K, q6_K, iq4_xs)",
                            gguf::type_name(type)));
  const auto traits = gguf::traits_of(type);
  if (k <= 0 || k % traits.block_elements != 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("a {} row of {} elements is not a whole number of {}-element blocks",
                            gguf::type_name(type), k, traits.block_elements));
}

namespace {

void checked_matmul(BlockIsa isa, gguf::GgmlType type, const std::byte* w, std::int64_t n_rows,
                    std::int64_t k, const float* x, std::int64_t ldx, std::int64_t rows, float* y,
                    std::int64_t ldy) {
  const std::size_t row_bytes = gguf::row_bytes(type, static_cast<std::uint64_t>(k));
  switch (isa) {
    case BlockIsa::Avx512:
      return matmul_blocks_avx512(type, w, row_bytes, n_rows, k, x, ldx, rows, y, ldy);
    case BlockIsa::Avx2:
      return matmul_blocks_avx2(type, w, row_bytes, n_rows, k, x, ldx, rows, y, ldy);
    case BlockIsa::Plain: break;
  }
  for (std::int64_t n = 0; n < n_rows; ++n)
    for (std::int64_t r = 0; r < rows; ++r)
      y[r * ldy + n] = plain_dot(type, w + static_cast<std::size_t>(n) * row_bytes, x + r * ldx, k);
}

// Weight rows per work item of block_matmul: a few KiB of blocks, enough to amortise the loop.
constexpr std::int64_t kChunkRows = 16;

}  // namespace

float block_dot(BlockIsa isa, gguf::GgmlType type, const std::byte* row, const float* x,
                std::int64_t k) {
  check_block_rows(type, k);
  float y = 0;
  checked_matmul(isa, type, row, 1, k, x, k, 1, &y, 1);
  return y;
}

void block_matmul_serial(BlockIsa isa, gguf::GgmlType type, const std::byte* w, std::int64_t n_rows,
                         std::int64_t k, const float* x, std::int64_t ldx, std::int64_t rows,
                         float* y, std::int64_t ldy) {
  check_block_rows(type, k);
  checked_matmul(isa, type, w, n_rows, k, x, ldx, rows, y, ldy);
}

void dequantize_block_rows(BlockIsa isa, gguf::GgmlType type, const std::byte* w,
                           std::int64_t n_rows, std::int64_t k, float* out, std::int64_t ldo) {
  check_block_rows(type, k);
  const std::size_t row_bytes = gguf::row_bytes(type, static_cast<std::uint64_t>(k));
  switch (isa) {
    case BlockIsa::Avx512: return dequantize_blocks_avx512(type, w, row_bytes, n_rows, k, out, ldo);
    case BlockIsa::Avx2: return dequantize_blocks_avx2(type, w, row_bytes, n_rows, k, out, ldo);
    case BlockIsa::Plain: break;
  }
  for (std::int64_t n = 0; n < n_rows; ++n)
    gguf::dequantize(type, {w + static_cast<std::size_t>(n) * row_bytes, row_bytes},
                     {out + n * ldo, static_cast<std::size_t>(k)});
}

void block_matmul(BlockIsa isa, gguf::GgmlType type, const std::byte* w, std::int64_t n_rows,
                  std::int64_t k, const float* x, std::int64_t ldx, std::int64_t rows, float* y,
                  std::int64_t ldy) {
  check_block_rows(type, k);
  const std::size_t row_bytes = gguf::row_bytes(type, static_cast<std::uint64_t>(k));
  const std::int64_t chunks = (n_rows + kChunkRows - 1) / kChunkRows;
  // Static: each thread streams one contiguous range of the weights.
#pragma omp parallel for schedule(static)
  for (std::int64_t c = 0; c < chunks; ++c) {
    const std::int64_t n0 = c * kChunkRows;
    checked_matmul(isa, type, w + static_cast<std::size_t>(n0) * row_bytes,
                   std::min(kChunkRows, n_rows - n0), k, x, ldx, rows, y + n0, ldy);
  }
}

}  // namespace porta::detail::cpu::ggml
