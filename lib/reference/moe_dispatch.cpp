// The reference backend's entry points for the MoE ops: an honest support check (every mode and
// input of the spec is supported; what is refused is a node the shape rule would not have built)
// for each op.
#include <variant>

#include <fmt/format.h>

#include <porta/error.hpp>

#include "reference/kernel_util.hpp"
#include "reference/moe_internal.hpp"
#include "reference/moe_kernels.hpp"

namespace porta::detail::reference {
namespace {

bool is_index(const ValueInfo& v) { return v.dtype == DType::I32; }

}  // namespace

SupportResult moe_router_supports(const GraphState& g, const Node& n) {
  const auto* attrs = std::get_if<moe::RouterAttrs>(&n.attrs);
  if (attrs == nullptr) return SupportResult::no("moe_router node without RouterAttrs");
  const std::int64_t E = attrs->num_experts, K = attrs->top_k, G = attrs->num_groups,
                     TG = attrs->topk_groups;
  if (E < 1 || K < 1 || K > E)
    return SupportResult::no(
        fmt::format("moe_router needs 1 <= top_k ({}) <= num_experts ({})", K, E));
  if (G < 1 || E % G != 0 || TG < 1 || TG > G || K > TG * (E / G))
    return SupportResult::no(
        fmt::format("moe_router groups do not fit: E = {}, G = {}, TG = {}, K = {}", E, G, TG, K));
  if (G > 1 && attrs->group_score == moe::GroupScore::Top2Sum && E / G < 2)
    return SupportResult::no("moe_router group_score top2_sum needs at least 2 experts per group");
  if (attrs->block_size < 1)
    return SupportResult::no(fmt::format("moe_router block_size {} < 1", attrs->block_size));
  if (!(attrs->capacity_factor >= 0.0f))  // +inf is fine: no expert ever fills up
    return SupportResult::no(
        fmt::format("moe_router capacity_factor {} is not >= 0", attrs->capacity_factor));
  const std::size_t expected_inputs = 1 + (attrs->use_bias ? 1 : 0) + (attrs->use_valid ? 1 : 0) +
                                      (attrs->mode == moe::Mode::Hash ? 2 : 0);
  if (n.inputs.size() != expected_inputs || n.outputs.size() != 9)
    return SupportResult::no(
        fmt::format("moe_router with {} inputs and {} outputs (expected {} and 9)", n.inputs.size(),
                    n.outputs.size(), expected_inputs));
  const ValueInfo& logits = g.input_of(n, 0);
  if (logits.dtype != DType::F32 && logits.dtype != DType::BF16 && logits.dtype != DType::F16)
    return SupportResult::no(fmt::format("moe_router logits of dtype {} (f32, bf16 or f16 only)",
                                         dtype_name(logits.dtype)));
  if (logits.shape.rank() != 2 || logits.shape[1] != E)
    return SupportResult::no(fmt::format("moe_router logits {} do not match num_experts {}",
                                         logits.shape.to_string(), E));
  if (attrs->use_bias && g.input_of(n, 1).shape.numel() != E)
    return SupportResult::no("moe_router bias is not [num_experts]");
  const std::int64_t perm_rows = moe::perm_rows(*attrs, logits.shape[0]);
  if (g.output_of(n, 4).shape.numel() != perm_rows)
    return SupportResult::no(fmt::format("moe_router perm output {} is not [{}]",
                                         g.output_of(n, 4).shape.to_string(), perm_rows));
  return SupportResult::yes();
}

SupportResult moe_experts_supports(const GraphState& g, const Node& n) {
  const auto* attrs = std::get_if<moe::ExpertsAttrs>(&n.attrs);
  if (attrs == nullptr) return SupportResult::no("moe_experts node without ExpertsAttrs");
  std::size_t expected = 8;
  if (attrs->has_shared) expected += attrs->shared_gate == moe::SharedGate::Sigmoid ? 4 : 3;
  if (n.inputs.size() != expected)
    return SupportResult::no(
        fmt::format("moe_experts with {} inputs (expected {})", n.inputs.size(), expected));
  if (!is_index(g.input_of(n, 2)) || !is_index(g.input_of(n, 3)) || !is_index(g.input_of(n, 4)))
    return SupportResult::no("moe_experts offsets, perm and inv must be i32");
  return SupportResult::yes();
}

SupportResult moe_permute_supports(const GraphState& g, const Node& n) {
  if (!std::holds_alternative<MoePermuteAttrs>(n.attrs) ||
      std::get<MoePermuteAttrs>(n.attrs).top_k < 1)
    return SupportResult::no("moe_permute needs MoePermuteAttrs with top_k >= 1");
  if (!is_index(g.input_of(n, 1))) return SupportResult::no("moe_permute perm must be i32");
  return SupportResult::yes();
}

SupportResult grouped_matmul_supports(const GraphState& g, const Node& n) {
  if (!is_index(g.input_of(n, 2))) return SupportResult::no("grouped_matmul offsets must be i32");
  return SupportResult::yes();
}

SupportResult moe_combine_supports(const GraphState& g, const Node& n) {
  if (!is_index(g.input_of(n, 2))) return SupportResult::no("moe_combine inv must be i32");
  return SupportResult::yes();
}

}  // namespace porta::detail::reference
