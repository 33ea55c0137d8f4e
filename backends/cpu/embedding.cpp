// embedding: rows of table[V, H] gathered by i32/i64 ids, copied as bytes (any table dtype).
// quant_embedding: rows of a quantized table, each dequantized exactly (lib/quant's
// dequantize_row; ggml blocks through the SIMD decoders of ggml/block_dot.hpp, equal to it bit
// for bit) into f32. Every id is checked before anything is written, so a bad id leaves no
// half-written output.
#include <cstring>

#include <fmt/format.h>

#include "cpu_util.hpp"
#include "dense_ops.hpp"
#include "ggml/block_dot.hpp"
#include "quant/quant_refs.hpp"

namespace porta::detail::cpu {

namespace {

// A gather's ids (i32 or i64) and the table's row count, with the node named for messages.
class GatherIds {
 public:
  GatherIds(const GraphState& g, const Node& n, std::size_t ids_input, std::size_t table_input)
      : ids_(n.inputs[ids_input]),
        i64_(g.input_of(n, ids_input).dtype == DType::I64),
        count_(g.input_of(n, ids_input).shape.numel()),
        vocab_(g.input_of(n, table_input).shape[0]),
        label_(fmt::format("{} '{}' (table {}{}, ids '{}' {}{})", op_name(n.op), n.name,
                           dtype_name(g.input_of(n, table_input).dtype),
                           g.input_of(n, table_input).shape.to_string(),
                           g.input_of(n, ids_input).name,
                           dtype_name(g.input_of(n, ids_input).dtype),
                           g.input_of(n, ids_input).shape.to_string())) {}

  std::int64_t count() const { return count_; }
  std::int64_t vocab() const { return vocab_; }
  // This run's ids, every one checked against the table.
  const void* checked(const ExecContext& ctx) const {
    const void* ids = value_ptr(ctx, ids_);
    for (std::int64_t i = 0; i < count_; ++i)
      if (const std::int64_t id = at(ids, i); id < 0 || id >= vocab_)
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("cpu backend: {}: id {} at flat index {} is out of range for a "
                                "table of {} rows",
                                label_, id, i, vocab_));
    return ids;
  }
  std::int64_t at(const void* ids, std::int64_t i) const {
    return i64_ ? static_cast<const std::int64_t*>(ids)[i]
                : static_cast<const std::int32_t*>(ids)[i];
  }

 private:
  ValueId ids_;
  bool i64_;
  std::int64_t count_, vocab_;
  std::string label_;
};

class EmbeddingKernel final : public CpuKernel {
 public:
  EmbeddingKernel(const GraphState& g, const Node& n)
      : table_(n.inputs[0]),
        out_(n.outputs[0]),
        ids_(g, n, 1, 0),
        row_bytes_(static_cast<std::size_t>(g.input_of(n, 0).shape[1]) *
                   dtype_size(g.input_of(n, 0).dtype)) {}

  void run(const ExecContext& ctx) override {
    const void* ids = ids_.checked(ctx);
    if (row_bytes_ == 0) return;
    const auto* src = static_cast<const std::byte*>(value_ptr(ctx, table_));
    auto* dst = static_cast<std::byte*>(value_ptr(ctx, out_));
    parallel_for(
        ids_.count(), std::max<std::int64_t>(1, (1 << 16) / static_cast<std::int64_t>(row_bytes_)),
        [&](std::int64_t begin, std::int64_t end) {
          for (std::int64_t i = begin; i < end; ++i)
            std::memcpy(dst + static_cast<std::size_t>(i) * row_bytes_,
                        src + static_cast<std::size_t>(ids_.at(ids, i)) * row_bytes_, row_bytes_);
        });
  }

 private:
  ValueId table_, out_;
  GatherIds ids_;
  std::size_t row_bytes_;
};

class QuantEmbeddingKernel final : public CpuKernel {
 public:
  QuantEmbeddingKernel(const GraphState& g, const Node& n)
      : node_(n), ids_(g, n, 0, 1), width_(g.output_of(n, 0).shape[-1]) {}

  void run(const ExecContext& ctx) override {
    const void* ids = ids_.checked(ctx);
    if (width_ == 0) return;
    const QuantMatrix table =
        quant_matrix(ctx, node_, quant_inputs(node_), 0, ids_.vocab(), width_);
    auto* dst = static_cast<float*>(value_ptr(ctx, node_.outputs[0]));
    const gguf::GgmlType type = table.scheme.ggml_type;
    const bool blocks =
        table.scheme.format == QuantFormat::GgmlBlocks && ggml::has_block_kernel(type);
    const std::size_t row_bytes =
        blocks ? gguf::row_bytes(type, static_cast<std::uint64_t>(width_)) : 0;
    const ggml::BlockIsa isa = ggml::best_block_isa();
    parallel_for(ids_.count(), std::max<std::int64_t>(1, 4096 / width_),
                 [&](std::int64_t begin, std::int64_t end) {
                   for (std::int64_t i = begin; i < end; ++i) {
                     const std::int64_t id = ids_.at(ids, i);
                     float* row = dst + i * width_;
                     if (blocks)
                       ggml::dequantize_block_rows(isa, type,
                                                   static_cast<const std::byte*>(table.data) +
                                                       static_cast<std::size_t>(id) * row_bytes,
                                                   1, width_, row, width_);
                     else
                       dequantize_row(table, id, row);
                   }
                 });
  }

 private:
  Node node_;
  GatherIds ids_;
  std::int64_t width_;
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

SupportResult supports_quant_embedding(const GraphState&, const Node& n) {
  if (!std::holds_alternative<QuantAttrs>(n.attrs))
    return SupportResult::no(fmt::format("{} without QuantAttrs", op_name(n.op)));
  return SupportResult::yes();  // every scheme dequantizes; the ids' dtype is the rule's
}

std::unique_ptr<CpuKernel> lower_quant_embedding(CpuEnv&, const GraphState& g, const Node& n) {
  return std::make_unique<QuantEmbeddingKernel>(g, n);
}

}  // namespace porta::detail::cpu
