// matmul: a[..., M, K] (a[..., K, M] with transpose_a) times b[..., K, N] (b[..., N, K] with
// transpose_b), batch dimensions broadcast NumPy-style. Products accumulate in double.

#include <algorithm>
#include <vector>

#include <fmt/format.h>

#include <porta/error.hpp>

#include "reference/kernel_util.hpp"
#include "reference/kernels.hpp"

namespace porta::detail::reference {

namespace {

Shape batch_shape(const Shape& s) {
  return Shape(std::vector<std::int64_t>(s.dims().begin(), s.dims().end() - 2));
}

// out[M, N] = a[M, K] · b[K, N], all row-major. The i-k-j order keeps the inner loop on
// contiguous rows of b and of the accumulator.
void matmul_nn(const float* a, const float* b, std::int64_t m, std::int64_t k, std::int64_t n,
               float* out) {
  std::vector<double> row(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < m; ++i) {
    std::fill(row.begin(), row.end(), 0.0);
    for (std::int64_t p = 0; p < k; ++p) {
      const double a_ip = a[i * k + p];
      const float* b_row = b + p * n;
      for (std::int64_t j = 0; j < n; ++j) row[static_cast<std::size_t>(j)] += a_ip * b_row[j];
    }
    for (std::int64_t j = 0; j < n; ++j)
      out[i * n + j] = static_cast<float>(row[static_cast<std::size_t>(j)]);
  }
}

// [rows, cols] -> [cols, rows]
void transpose_into(const float* src, std::int64_t rows, std::int64_t cols, float* dst) {
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) dst[c * rows + r] = src[r * cols + c];
}

}  // namespace

void run_matmul(const GraphState&, const Node& n, const ExecContext& ctx) {
  const auto& attrs = std::get<MatmulAttrs>(n.attrs);
  const TensorRef& a_ref = ctx.input(n, 0);
  const TensorRef& b_ref = ctx.input(n, 1);
  const TensorRef& out_ref = ctx.output(n, 0);
  const Shape& as = a_ref.shape();
  const Shape& bs = b_ref.shape();
  const Shape& os = out_ref.shape();
  if (as.rank() < 2 || bs.rank() < 2 || os.rank() < 2)
    throw Error(ErrorCode::ShapeMismatch,
                fmt::format("{}: matmul needs rank >= 2 operands, got a{} and b{}", node_label(n),
                            as.to_string(), bs.to_string()));

  const std::int64_t m = attrs.transpose_a ? as[-1] : as[-2];
  const std::int64_t k = attrs.transpose_a ? as[-2] : as[-1];
  const std::int64_t kb = attrs.transpose_b ? bs[-1] : bs[-2];
  const std::int64_t n_cols = attrs.transpose_b ? bs[-2] : bs[-1];
  if (k != kb || os[-2] != m || os[-1] != n_cols)
    throw Error(ErrorCode::ShapeMismatch,
                fmt::format("{}: a{} and b{} do not give the output {} (transpose_a={}, "
                            "transpose_b={})",
                            node_label(n), as.to_string(), bs.to_string(), os.to_string(),
                            attrs.transpose_a, attrs.transpose_b));

  const F32Input a(a_ref);
  const F32Input b(b_ref);
  std::vector<float> result(static_cast<std::size_t>(os.numel()));
  if (result.empty()) return;

  const Shape out_batch = batch_shape(os);
  BroadcastWalker walk(out_batch, {batch_shape(as), batch_shape(bs)});
  const std::int64_t a_matrix = m * k;
  const std::int64_t b_matrix = k * n_cols;
  std::vector<float> a_scratch(attrs.transpose_a ? static_cast<std::size_t>(a_matrix) : 0);
  for (std::int64_t batch = 0; batch < out_batch.numel(); ++batch, walk.next()) {
    const float* a_mat = a.data() + walk.index(0) * a_matrix;
    const float* b_mat = b.data() + walk.index(1) * b_matrix;
    float* out_mat = result.data() + batch * m * n_cols;
    if (attrs.transpose_a) {
      transpose_into(a_mat, k, m, a_scratch.data());
      a_mat = a_scratch.data();
    }
    if (attrs.transpose_b)
      matmul_nt(a_mat, b_mat, m, k, n_cols, out_mat);
    else
      matmul_nn(a_mat, b_mat, m, k, n_cols, out_mat);
  }
  store_f32(out_ref, result);
}

}  // namespace porta::detail::reference
