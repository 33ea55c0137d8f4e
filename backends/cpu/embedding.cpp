// embedding: rows of table[V, H] gathered by i32/i64 ids, copied as bytes (any table dtype).
// Every id is checked before anything is written, so a bad id leaves no half-written output.
#include <cstring>

#include <fmt/format.h>

#include "cpu_util.hpp"
#include "dense_ops.hpp"

namespace porta::detail::cpu {

namespace {

class EmbeddingKernel final : public CpuKernel {
 public:
  EmbeddingKernel(const GraphState& g, const Node& n)
      : table_(n.inputs[0]),
        ids_(n.inputs[1]),
        out_(n.outputs[0]),
        ids_i64_(g.input_of(n, 1).dtype == DType::I64),
        count_(g.input_of(n, 1).shape.numel()),
        vocab_(g.input_of(n, 0).shape[0]),
        row_bytes_(static_cast<std::size_t>(g.input_of(n, 0).shape[1]) *
                   dtype_size(g.input_of(n, 0).dtype)),
        label_(fmt::format("embedding '{}' (table {}{}, ids '{}' {}{})", n.name,
                           dtype_name(g.input_of(n, 0).dtype), g.input_of(n, 0).shape.to_string(),
                           g.input_of(n, 1).name, dtype_name(g.input_of(n, 1).dtype),
                           g.input_of(n, 1).shape.to_string())) {}

  void run(const ExecContext& ctx) override {
    const void* ids = value_ptr(ctx, ids_);
    const auto id_at = [&](std::int64_t i) -> std::int64_t {
      return ids_i64_ ? static_cast<const std::int64_t*>(ids)[i]
                      : static_cast<const std::int32_t*>(ids)[i];
    };
    for (std::int64_t i = 0; i < count_; ++i)
      if (const std::int64_t id = id_at(i); id < 0 || id >= vocab_)
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("cpu backend: {}: id {} at flat index {} is out of range for a "
                                "table of {} rows",
                                label_, id, i, vocab_));
    if (row_bytes_ == 0) return;
    const auto* src = static_cast<const std::byte*>(value_ptr(ctx, table_));
    auto* dst = static_cast<std::byte*>(value_ptr(ctx, out_));
    parallel_for(count_,
                 std::max<std::int64_t>(1, (1 << 16) / static_cast<std::int64_t>(row_bytes_)),
                 [&](std::int64_t begin, std::int64_t end) {
                   for (std::int64_t i = begin; i < end; ++i)
                     std::memcpy(dst + static_cast<std::size_t>(i) * row_bytes_,
                                 src + static_cast<std::size_t>(id_at(i)) * row_bytes_, row_bytes_);
                 });
  }

 private:
  ValueId table_, ids_, out_;
  bool ids_i64_;
  std::int64_t count_, vocab_;
  std::size_t row_bytes_;
  std::string label_;
};

}  // namespace

SupportResult supports_embedding(const GraphState& g, const Node& n) {
  const DType t = g.input_of(n, 0).dtype;
  if (t == DType::F16 || t == DType::F8E4M3) return float_dtype_refusal(t);
  return SupportResult::yes();
}

std::unique_ptr<CpuKernel> lower_embedding(CpuEnv&, const GraphState& g, const Node& n) {
  return std::make_unique<EmbeddingKernel>(g, n);
}

}  // namespace porta::detail::cpu
