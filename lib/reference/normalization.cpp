// softmax (any axis), rms_norm and layer_norm (last axis). Sums accumulate in double.

#include <cmath>
#include <limits>
#include <vector>

#include <fmt/format.h>

#include <porta/error.hpp>

#include "reference/kernel_util.hpp"
#include "reference/kernels.hpp"

namespace porta::detail::reference {

namespace {

// The weight (and bias) of a norm must hold one value per element of the normalised axis.
void check_per_channel(const Node& n, const char* what, const F32Input& v, std::int64_t hidden) {
  if (static_cast<std::int64_t>(v.size()) != hidden)
    throw Error(ErrorCode::ShapeMismatch,
                fmt::format("{}: {} has {} elements, expected {} (the last axis of x)",
                            node_label(n), what, v.size(), hidden));
}

}  // namespace

void run_softmax(const GraphState&, const Node& n, const ExecContext& ctx) {
  const TensorRef& x_ref = ctx.input(n, 0);
  const Shape& shape = x_ref.shape();
  const F32Input x(x_ref);
  std::vector<float> result(x.size());
  if (result.empty()) {
    store_f32(ctx.output(n, 0), result);
    return;
  }
  // A rank-0 input is a single element: its softmax is 1 along the (implicit) axis.
  const int axis = shape.rank() == 0 ? 0 : shape.normalize_axis(std::get<AxisAttrs>(n.attrs).axis);
  const std::int64_t outer = dims_product(shape, 0, axis);
  const std::int64_t length = shape.rank() == 0 ? 1 : shape[axis];
  const std::int64_t inner = shape.rank() == 0 ? 1 : dims_product(shape, axis + 1, shape.rank());

  for (std::int64_t o = 0; o < outer; ++o) {
    for (std::int64_t i = 0; i < inner; ++i) {
      const auto at = [&](std::int64_t j) {
        return static_cast<std::size_t>((o * length + j) * inner + i);
      };
      // Subtracting the maximum keeps exp() from overflowing; a NaN is never the maximum, so it
      // reaches exp() and (through the sum) turns the whole row into NaN, as PyTorch does.
      float max_value = -std::numeric_limits<float>::infinity();
      for (std::int64_t j = 0; j < length; ++j)
        if (x[at(j)] > max_value) max_value = x[at(j)];
      double sum = 0.0;
      for (std::int64_t j = 0; j < length; ++j) {
        const float e = std::exp(x[at(j)] - max_value);
        result[at(j)] = e;
        sum += e;
      }
      for (std::int64_t j = 0; j < length; ++j)
        result[at(j)] = static_cast<float>(result[at(j)] / sum);
    }
  }
  store_f32(ctx.output(n, 0), result);
}

void run_rms_norm(const GraphState&, const Node& n, const ExecContext& ctx) {
  const TensorRef& x_ref = ctx.input(n, 0);
  const float eps = std::get<NormAttrs>(n.attrs).eps;
  const F32Input x(x_ref);
  const F32Input weight(ctx.input(n, 1));
  const std::int64_t hidden = x_ref.shape().rank() == 0 ? 1 : x_ref.shape()[-1];
  check_per_channel(n, "weight", weight, hidden);
  std::vector<float> result(x.size());
  const std::int64_t rows = hidden == 0 ? 0 : static_cast<std::int64_t>(x.size()) / hidden;
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = x.data() + r * hidden;
    double sum_squares = 0.0;
    for (std::int64_t h = 0; h < hidden; ++h) sum_squares += static_cast<double>(row[h]) * row[h];
    const double mean_square = sum_squares / static_cast<double>(hidden);
    const auto inv_rms =
        static_cast<float>(1.0 / std::sqrt(mean_square + static_cast<double>(eps)));
    for (std::int64_t h = 0; h < hidden; ++h)
      result[static_cast<std::size_t>(r * hidden + h)] =
          row[h] * inv_rms * weight[static_cast<std::size_t>(h)];
  }
  store_f32(ctx.output(n, 0), result);
}

void run_layer_norm(const GraphState&, const Node& n, const ExecContext& ctx) {
  const TensorRef& x_ref = ctx.input(n, 0);
  const float eps = std::get<NormAttrs>(n.attrs).eps;
  const F32Input x(x_ref);
  const F32Input weight(ctx.input(n, 1));
  const std::int64_t hidden = x_ref.shape().rank() == 0 ? 1 : x_ref.shape()[-1];
  check_per_channel(n, "weight", weight, hidden);
  const bool has_bias = n.inputs.size() > 2;
  std::vector<float> bias(static_cast<std::size_t>(hidden), 0.0f);
  if (has_bias) {
    const F32Input b(ctx.input(n, 2));
    check_per_channel(n, "bias", b, hidden);
    bias.assign(b.data(), b.data() + b.size());
  }
  std::vector<float> result(x.size());
  const std::int64_t rows = hidden == 0 ? 0 : static_cast<std::int64_t>(x.size()) / hidden;
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = x.data() + r * hidden;
    double sum = 0.0;
    for (std::int64_t h = 0; h < hidden; ++h) sum += row[h];
    const double mean = sum / static_cast<double>(hidden);
    // Two passes (mean, then squared deviations) avoid the cancellation of E[x²] - E[x]².
    double sum_deviations = 0.0;
    for (std::int64_t h = 0; h < hidden; ++h) sum_deviations += (row[h] - mean) * (row[h] - mean);
    const double variance = sum_deviations / static_cast<double>(hidden);  // biased, as PyTorch
    const double inv_std = 1.0 / std::sqrt(variance + static_cast<double>(eps));
    for (std::int64_t h = 0; h < hidden; ++h) {
      const auto hh = static_cast<std::size_t>(h);
      const auto normalized = static_cast<float>((row[h] - mean) * inv_std);
      result[static_cast<std::size_t>(r * hidden + h)] = normalized * weight[hh] + bias[hh];
    }
  }
  store_f32(ctx.output(n, 0), result);
}

}  // namespace porta::detail::reference
