// embedding: rows of table[V, H] gathered by integer ids of any shape -> ids.shape + [H]. Rows
// are copied as bytes, so the output is the table's values exactly, in the table's dtype.
// quant_embedding: the same rows of a quantized table, each dequantized in f32 exactly as its
// scheme defines (lib/quant's dequantize_row: a GGUF block type's own formula).

#include <cstddef>
#include <cstring>

#include <fmt/format.h>

#include <porta/error.hpp>

#include "quant/quant_refs.hpp"
#include "reference/kernel_util.hpp"
#include "reference/kernels.hpp"

namespace porta::detail::reference {

namespace {

// Every id checked before anything is written, so a bad id leaves no half-written output.
void check_ids(const Node& n, const ExecContext& ctx, std::size_t ids_input,
               const std::vector<std::int64_t>& ids, std::int64_t vocab) {
  for (std::size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || ids[i] >= vocab)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("{}: id {} (at flat index {} of ids '{}') is out of range for a "
                              "table of {} rows",
                              node_label(n), ids[i], i, ctx.input(n, ids_input).info->name, vocab));
}

}  // namespace

void run_embedding(const GraphState&, const Node& n, const ExecContext& ctx) {
  const TensorRef& table = ctx.input(n, 0);
  const TensorRef& out = ctx.output(n, 0);
  if (table.shape().rank() != 2)
    throw Error(ErrorCode::ShapeMismatch, fmt::format("{}: table must be [V, H], got {}",
                                                      node_label(n), table.shape().to_string()));
  if (out.dtype() != table.dtype())
    throw Error(ErrorCode::Internal,
                fmt::format("{}: output dtype {} differs from the table's {}", node_label(n),
                            dtype_name(out.dtype()), dtype_name(table.dtype())));
  const std::int64_t vocab = table.shape()[0];
  const auto ids = load_i64(ctx.input(n, 1));
  const std::size_t row_bytes =
      static_cast<std::size_t>(table.shape()[1]) * dtype_size(table.dtype());
  if (static_cast<std::size_t>(out.shape().numel()) * dtype_size(out.dtype()) !=
      ids.size() * row_bytes)
    throw Error(ErrorCode::Internal,
                fmt::format("{}: output {} does not hold {} rows of the table {}", node_label(n),
                            out.shape().to_string(), ids.size(), table.shape().to_string()));
  check_ids(n, ctx, 1, ids, vocab);
  if (row_bytes == 0 || ids.empty()) return;
  const auto* src = static_cast<const std::byte*>(input_bytes(table));
  auto* dst = static_cast<std::byte*>(output_bytes(out));
  for (std::size_t i = 0; i < ids.size(); ++i)
    std::memcpy(dst + i * row_bytes, src + static_cast<std::size_t>(ids[i]) * row_bytes, row_bytes);
}

void run_quant_embedding(const GraphState&, const Node& n, const ExecContext& ctx) {
  const TensorRef& out = ctx.output(n, 0);
  const std::int64_t vocab = ctx.input(n, 1).shape()[0];
  const std::int64_t width = out.shape()[-1];
  const auto ids = load_i64(ctx.input(n, 0));
  if (static_cast<std::size_t>(out.shape().numel()) != ids.size() * static_cast<std::size_t>(width))
    throw Error(ErrorCode::Internal,
                fmt::format("{}: output {} does not hold {} rows of {}", node_label(n),
                            out.shape().to_string(), ids.size(), width));
  check_ids(n, ctx, 0, ids, vocab);
  const QuantMatrix table = quant_matrix(ctx, n, quant_inputs(n), 0, vocab, width);
  auto* dst = static_cast<float*>(output_bytes(out));
  for (std::size_t i = 0; i < ids.size(); ++i)
    dequantize_row(table, ids[i], dst + i * static_cast<std::size_t>(width));
}

}  // namespace porta::detail::reference
