// The linear layers of the quantized ops over ggml blocks: block_matmul for whole matrices, and a
// single parallel loop over every weight row of the decode-sized expert blocks.
#include "ggml/ggml_linear.hpp"

#include <vector>

#include "ggml/block_dot.hpp"

namespace porta::detail::cpu::ggml {

namespace {

// Blocks with fewer rows than this decode the weight rows in registers, one dot per row of x
// (block_matmul's own cut-off between its decode and prefill loops).
constexpr std::int64_t kSmallBlockRows = 4;

const std::byte* bytes_of(const QuantMatrix& w) { return static_cast<const std::byte*>(w.data); }

}  // namespace

bool has_blocks_kernel(const QuantScheme& scheme) {
  return scheme.format == QuantFormat::GgmlBlocks && has_block_kernel(scheme.ggml_type);
}

void blocks_linear(const float* x, std::int64_t rows, const QuantMatrix& w, float* y) {
  if (rows == 0 || w.n == 0) return;
  block_matmul(best_block_isa(), w.scheme.ggml_type, bytes_of(w), w.n, w.k, x, w.k, rows, y, w.n);
}

void blocks_linear_experts(const float* x, std::int64_t k, std::span<const ExpertRows> experts,
                           std::int64_t out_features, float* y) {
  std::vector<const ExpertRows*> small;
  for (const ExpertRows& e : experts) {
    if (e.count == 0) continue;
    if (e.count >= kSmallBlockRows)
      block_matmul(best_block_isa(), e.w.scheme.ggml_type, bytes_of(e.w), e.w.n, k,
                   x + e.first * k, k, e.count, y + e.first * out_features, out_features);
    else
      small.push_back(&e);
  }
  if (small.empty()) return;
  const BlockIsa isa = best_block_isa();
  const auto total = static_cast<std::int64_t>(small.size()) * out_features;
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < total; ++i) {
    const ExpertRows& e = *small[static_cast<std::size_t>(i / out_features)];
    const std::int64_t n = i % out_features;
    const std::size_t row_bytes = gguf::row_bytes(e.w.scheme.ggml_type, static_cast<std::uint64_t>(k));
    const std::byte* row = bytes_of(e.w) + static_cast<std::size_t>(n) * row_bytes;
    for (std::int64_t r = e.first; r < e.first + e.count; ++r)
      y[r * out_features + n] = block_dot(isa, e.w.scheme.ggml_type, row, x + r * k, k);
  }
}

}  // namespace porta::detail::cpu::ggml
