// top_k along the last axis: per row, a partial sort of the indices under a strict total order
// (numbers before NaN, then by value, ties by the lower index), rows in parallel. Values are
// copied as bytes from x, so they are x's elements exactly.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "cpu_util.hpp"
#include "dense_ops.hpp"

namespace porta::detail::cpu {

namespace {

template <class T>
float key_of(const T* row, std::int64_t i) {
  if constexpr (std::is_same_v<T, std::uint16_t>)
    return bf16_to_f32(row[i]);
  else
    return row[i];
}

class TopKKernel final : public CpuKernel {
 public:
  TopKKernel(const GraphState& g, const Node& n)
      : x_(n.inputs[0]),
        values_(n.outputs[0]),
        indices_(n.outputs[1]),
        dtype_(g.input_of(n, 0).dtype),
        length_(g.input_of(n, 0).shape[-1]),
        k_(std::get<TopKAttrs>(n.attrs).k),
        largest_(std::get<TopKAttrs>(n.attrs).largest) {
    rows_ = length_ == 0 ? 0 : g.input_of(n, 0).shape.numel() / length_;
    const int threads = cpu_threads();
    order_.assign(static_cast<std::size_t>(threads),
                  std::vector<std::int64_t>(static_cast<std::size_t>(length_)));
  }

  void run(const ExecContext& ctx) override {
    if (dtype_ == DType::BF16)
      rank<std::uint16_t>(ctx);
    else
      rank<float>(ctx);
  }

 private:
  template <class T>
  void rank(const ExecContext& ctx) {
    const T* x = static_cast<const T*>(value_ptr(ctx, x_));
    T* values = static_cast<T*>(value_ptr(ctx, values_));
    auto* indices = static_cast<std::int32_t*>(value_ptr(ctx, indices_));
    const std::int64_t chunks = std::min(static_cast<std::int64_t>(order_.size()), rows_);
    parallel_for(chunks, 1, [&](std::int64_t cb, std::int64_t ce) {
      for (std::int64_t c = cb; c < ce; ++c) {
        auto& order = order_[static_cast<std::size_t>(c)];
        const std::int64_t row_begin = rows_ * c / chunks, row_end = rows_ * (c + 1) / chunks;
        for (std::int64_t r = row_begin; r < row_end; ++r) {
          const T* row = x + r * length_;
          const auto before = [&](std::int64_t i, std::int64_t j) {
            const float a = key_of(row, i), b = key_of(row, j);
            const bool a_nan = std::isnan(a), b_nan = std::isnan(b);
            if (a_nan != b_nan) return b_nan;
            if (!a_nan && a != b) return largest_ ? a > b : a < b;
            return i < j;
          };
          std::iota(order.begin(), order.end(), std::int64_t{0});
          std::partial_sort(order.begin(), order.begin() + k_, order.end(), before);
          for (std::int64_t j = 0; j < k_; ++j) {
            const auto at = order[static_cast<std::size_t>(j)];
            indices[r * k_ + j] = static_cast<std::int32_t>(at);
            values[r * k_ + j] = row[at];
          }
        }
      }
    });
  }

  ValueId x_, values_, indices_;
  DType dtype_;
  std::int64_t length_, k_;
  bool largest_;
  std::int64_t rows_ = 0;
  std::vector<std::vector<std::int64_t>> order_;  // per chunk: index scratch of one row
};

}  // namespace

SupportResult supports_top_k(const GraphState& g, const Node& n) {
  return require_f32_bf16({g.input_of(n, 0).dtype});
}

std::unique_ptr<CpuKernel> lower_top_k(CpuEnv&, const GraphState& g, const Node& n) {
  if (g.input_of(n, 0).shape.numel() == 0) return std::make_unique<NoopKernel>();
  return std::make_unique<TopKKernel>(g, n);
}

}  // namespace porta::detail::cpu
