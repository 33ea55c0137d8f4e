// The reference ragged MoE ops: moe_permute (token rows grouped by expert), grouped_matmul (each
// expert's block of rows times its own weight) and moe_combine (the fixed-order weighted sum back
// to tokens), plus the index checks they share with moe_experts.
#include <cmath>
#include <cstring>
#include <variant>

#include <fmt/format.h>

#include <porta/error.hpp>

#include "reference/kernel_util.hpp"
#include "reference/moe_internal.hpp"

namespace porta::detail::reference {

std::vector<std::int64_t> load_indices(const Node& n, const TensorRef& t, const char* what) {
  if (t.dtype() != DType::I32)
    throw Error(ErrorCode::Internal, fmt::format("{}: {} is {}, expected i32", node_label(n), what,
                                                 dtype_name(t.dtype())));
  return load_i64(t);
}

void check_offsets(const std::string& label, std::span<const std::int64_t> offsets,
                   std::int64_t rows) {
  if (offsets.empty()) return;
  if (offsets[0] < 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{}: offsets[0] = {} is negative", label, offsets[0]));
  for (std::size_t e = 1; e < offsets.size(); ++e)
    if (offsets[e] < offsets[e - 1])
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("{}: offsets must be non-decreasing, but offsets[{}] = {} < "
                              "offsets[{}] = {}",
                              label, e, offsets[e], e - 1, offsets[e - 1]));
  if (offsets.back() > rows)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{}: offsets[{}] = {} exceeds the {} rows", label, offsets.size() - 1,
                            offsets.back(), rows));
}

void check_perm(const std::string& label, std::span<const std::int64_t> perm) {
  for (std::size_t i = 0; i < perm.size(); ++i)
    if (perm[i] < 0)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("{}: perm[{}] = {} is negative (entries are assignment indices, or "
                              "the sentinel T*K for padding)",
                              label, i, perm[i]));
}

void check_inv(const std::string& label, std::span<const std::int64_t> inv, std::int64_t rows) {
  for (std::size_t a = 0; a < inv.size(); ++a)
    if (inv[a] < -1 || inv[a] >= rows)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("{}: inv[{}] = {} is neither -1 nor a row in [0, {})", label, a,
                              inv[a], rows));
}

std::vector<float> permute_rows(const float* x, std::int64_t tokens, std::int64_t hidden,
                                std::span<const std::int64_t> perm, std::int64_t top_k) {
  const auto h = static_cast<std::size_t>(hidden);
  std::vector<float> out(perm.size() * h, 0.0f);
  for (std::size_t i = 0; i < perm.size(); ++i) {
    if (perm[i] >= tokens * top_k) continue;  // padding: stays a zero row
    const auto token = static_cast<std::size_t>(perm[i] / top_k);
    for (std::size_t j = 0; j < h; ++j) out[i * h + j] = x[token * h + j];
  }
  return out;
}

std::vector<float> grouped_matmul_rows(const float* rows, std::int64_t num_rows,
                                       std::int64_t hidden, const float* w, std::int64_t experts,
                                       std::int64_t out_features,
                                       std::span<const std::int64_t> offsets) {
  const auto h = static_cast<std::size_t>(hidden);
  const auto n_out = static_cast<std::size_t>(out_features);
  std::vector<float> out(static_cast<std::size_t>(num_rows) * n_out, 0.0f);
  for (std::size_t e = 0; e < static_cast<std::size_t>(experts); ++e) {
    const auto first = static_cast<std::size_t>(offsets[e]);
    matmul_nt(rows + first * h, w + e * n_out * h, offsets[e + 1] - offsets[e], hidden,
              out_features, out.data() + first * n_out);
  }
  return out;
}

std::vector<float> combine_rows(const float* yp, std::int64_t hidden, const float* weights,
                                std::span<const std::int64_t> inv, std::int64_t tokens,
                                std::int64_t top_k) {
  const auto h = static_cast<std::size_t>(hidden);
  const auto k_count = static_cast<std::size_t>(top_k);
  std::vector<float> out(static_cast<std::size_t>(tokens) * h, 0.0f);
  // Summed in f32 in ascending k, as the spec fixes it, so every backend can match bit for bit.
  for (std::size_t t = 0; t < static_cast<std::size_t>(tokens); ++t)
    for (std::size_t k = 0; k < k_count; ++k) {
      const std::size_t a = t * k_count + k;
      if (inv[a] < 0) continue;  // dropped for capacity
      const auto row = static_cast<std::size_t>(inv[a]);
      for (std::size_t j = 0; j < h; ++j) {
        const float term = weights[a] * yp[row * h + j];
        out[t * h + j] += term;
      }
    }
  return out;
}

std::vector<float> swiglu_values(std::span<const float> gate, std::span<const float> up) {
  std::vector<float> out(gate.size());
  for (std::size_t i = 0; i < gate.size(); ++i) {
    const double g = gate[i];
    out[i] = static_cast<float>(g / (1.0 + std::exp(-g)) * static_cast<double>(up[i]));
  }
  return out;
}

void run_moe_permute(const GraphState& g, const Node& n, const ExecContext& ctx) {
  (void)g;
  const std::int64_t top_k = std::get<MoePermuteAttrs>(n.attrs).top_k;
  const TensorRef& x = ctx.input(n, 0);
  const TensorRef& out = ctx.output(n, 0);
  const auto perm = load_indices(n, ctx.input(n, 1), "perm");
  check_perm(node_label(n), perm);
  const std::int64_t tokens = x.shape()[0];
  // A byte copy: a permutation must not round anything, whatever the dtype.
  const std::size_t row_bytes = static_cast<std::size_t>(x.shape()[1]) * dtype_size(x.dtype());
  if (perm.empty() || row_bytes == 0) return;
  const auto* src = static_cast<const char*>(input_bytes(x));
  auto* dst = static_cast<char*>(output_bytes(out));
  for (std::size_t i = 0; i < perm.size(); ++i) {
    if (perm[i] >= tokens * top_k)
      std::memset(dst + i * row_bytes, 0, row_bytes);
    else
      std::memcpy(dst + i * row_bytes, src + static_cast<std::size_t>(perm[i] / top_k) * row_bytes,
                  row_bytes);
  }
}

void run_grouped_matmul(const GraphState& g, const Node& n, const ExecContext& ctx) {
  (void)g;
  const TensorRef& rows_ref = ctx.input(n, 0);
  const TensorRef& w_ref = ctx.input(n, 1);
  const auto offsets = load_indices(n, ctx.input(n, 2), "offsets");
  const std::int64_t num_rows = rows_ref.shape()[0];
  check_offsets(node_label(n), offsets, num_rows);
  const F32Input rows(rows_ref);
  const F32Input w(w_ref);
  const auto out = grouped_matmul_rows(rows.data(), num_rows, rows_ref.shape()[1], w.data(),
                                       w_ref.shape()[0], w_ref.shape()[1], offsets);
  store_f32(ctx.output(n, 0), out);
}

void run_moe_combine(const GraphState& g, const Node& n, const ExecContext& ctx) {
  (void)g;
  const TensorRef& yp_ref = ctx.input(n, 0);
  const TensorRef& weights_ref = ctx.input(n, 1);
  const auto inv = load_indices(n, ctx.input(n, 2), "inv");
  check_inv(node_label(n), inv, yp_ref.shape()[0]);
  const F32Input yp(yp_ref);
  const F32Input weights(weights_ref);
  const auto out = combine_rows(yp.data(), yp_ref.shape()[1], weights.data(), inv,
                                weights_ref.shape()[0], weights_ref.shape()[1]);
  store_f32(ctx.output(n, 0), out);
}

}  // namespace porta::detail::reference
