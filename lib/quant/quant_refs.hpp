// A quantized weight's matrices as a kernel sees them at run time (internal): the data, scale and
// zero inputs of a node, expert by expert, as QuantMatrix views. Shared by the reference kernels
// and the backends' own.
#pragma once

#include <optional>
#include <variant>

#include "quant/quant_math.hpp"
#include "runtime/backend.hpp"

namespace porta::detail {

// The inputs holding one quantized weight of node `n`.
struct QuantInputs {
  std::size_t data = 0, scale = 0;
  std::optional<std::size_t> zero;
};

// Where each quantized op keeps its weights' tensors: `which` 0 for quant_matmul,
// quant_grouped_matmul and quant_embedding, 0/1/2 (gate, up, down) for quant_moe_experts.
inline QuantInputs quant_inputs(const Node& n, int which = 0) {
  const bool asym = std::get<QuantAttrs>(n.attrs).scheme.zero_point;
  const auto w = static_cast<std::size_t>(which);
  const auto zero = [&](std::size_t at) {
    return asym ? std::optional<std::size_t>(at) : std::nullopt;
  };
  if (n.op == OpKind::QuantMatmul || n.op == OpKind::QuantEmbedding) return {1, 2, zero(3)};
  if (n.op == OpKind::QuantGroupedMatmul) return {2, 3, zero(4)};
  return {5 + w, 8 + w, zero(11 + w)};  // quant_moe_experts
}

// Matrix `expert` ([N, K] logically) of the weight at `in`; for a rank-2 weight, expert 0.
inline QuantMatrix quant_matrix(const ExecContext& ctx, const Node& n, const QuantInputs& in,
                                std::int64_t expert, std::int64_t rows, std::int64_t k) {
  QuantMatrix m;
  m.scheme = std::get<QuantAttrs>(n.attrs).scheme;
  m.n = rows;
  m.k = k;
  m.data = ctx.input(n, in.data).part(expert);
  m.scale = ctx.input(n, in.scale).part(expert);
  if (in.zero) m.zero = static_cast<const std::int8_t*>(ctx.input(n, *in.zero).part(expert));
  return m;
}

}  // namespace porta::detail
