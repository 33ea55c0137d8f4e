// top_k along the last axis: the k best values (x's dtype, copied exactly) and their int32
// indices, best first. Ties go to the lower index; NaN ranks below every number whether the
// largest or the smallest are wanted, so it is always chosen last.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <numeric>
#include <type_traits>
#include <vector>

#include <fmt/format.h>

#include <porta/error.hpp>

#include "reference/kernel_util.hpp"
#include "reference/kernels.hpp"

namespace porta::detail::reference {

namespace {

template <class T>
bool is_nan(T v) {
  if constexpr (std::is_floating_point_v<T>) return std::isnan(v);
  return false;
}

// Writes the indices of the k best elements of each row, best first.
template <class T>
void rank_rows(const T* x, std::int64_t rows, std::int64_t length, std::int64_t k, bool largest,
               std::vector<std::int64_t>& indices) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(length));
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* row = x + r * length;
    // A strict total order: numbers before NaN, then by value, then by index.
    const auto ranks_before = [&](std::int64_t i, std::int64_t j) {
      const bool i_nan = is_nan(row[i]);
      const bool j_nan = is_nan(row[j]);
      if (i_nan != j_nan) return j_nan;
      if (!i_nan && row[i] != row[j]) return largest ? row[i] > row[j] : row[i] < row[j];
      return i < j;
    };
    std::iota(order.begin(), order.end(), std::int64_t{0});
    std::partial_sort(order.begin(), order.begin() + k, order.end(), ranks_before);
    std::copy(order.begin(), order.begin() + k, indices.begin() + r * k);
  }
}

}  // namespace

void run_top_k(const GraphState&, const Node& n, const ExecContext& ctx) {
  const auto& attrs = std::get<TopKAttrs>(n.attrs);
  const TensorRef& x_ref = ctx.input(n, 0);
  const TensorRef& values_ref = ctx.output(n, 0);
  const TensorRef& indices_ref = ctx.output(n, 1);
  const Shape& shape = x_ref.shape();
  const std::int64_t length = shape.rank() == 0 ? 1 : shape[-1];
  const std::int64_t k = attrs.k;
  if (k < 0 || k > length)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{}: k = {} is outside [0, {}] (the last axis of {})", node_label(n), k,
                            length, shape.to_string()));
  if (values_ref.dtype() != x_ref.dtype())
    throw Error(ErrorCode::Internal,
                fmt::format("{}: values dtype {} differs from the input's {}", node_label(n),
                            dtype_name(values_ref.dtype()), dtype_name(x_ref.dtype())));
  const std::int64_t rows = length == 0 ? 0 : shape.numel() / length;
  if (values_ref.shape().numel() != rows * k || indices_ref.shape().numel() != rows * k)
    throw Error(ErrorCode::Internal, fmt::format("{}: outputs {} / {} do not hold {} rows of {}",
                                                 node_label(n), values_ref.shape().to_string(),
                                                 indices_ref.shape().to_string(), rows, k));

  std::vector<std::int64_t> indices(static_cast<std::size_t>(rows * k));
  if (is_floating(x_ref.dtype())) {
    const F32Input x(x_ref);
    rank_rows<float>(x.data(), rows, length, k, attrs.largest, indices);
  } else {
    const auto x = load_i64(x_ref);  // integers compare exactly, even beyond 2^24
    rank_rows<std::int64_t>(x.data(), rows, length, k, attrs.largest, indices);
  }
  store_i64(indices_ref, indices);

  // Values are copied as bytes from x, so they are x's elements exactly.
  if (indices.empty()) return;
  const std::size_t element = dtype_size(x_ref.dtype());
  const auto* src = static_cast<const std::byte*>(input_bytes(x_ref));
  auto* dst = static_cast<std::byte*>(output_bytes(values_ref));
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t j = 0; j < k; ++j) {
      const auto flat = static_cast<std::size_t>(r * k + j);
      std::memcpy(dst + flat * element,
                  src + static_cast<std::size_t>(r * length + indices[flat]) * element, element);
    }
}

}  // namespace porta::detail::reference
