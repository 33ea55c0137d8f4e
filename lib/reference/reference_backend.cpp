#include "reference/reference_backend.hpp"

#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <porta/error.hpp>
#include <porta/ops.hpp>

#include "reference/kernel_util.hpp"
#include "reference/kernels.hpp"
#include "reference/moe_kernels.hpp"

namespace porta::detail {

namespace {

using reference::node_label;

// ---- support -----------------------------------------------------------------------------------

// The attribute struct each op carries, as the op list declares it; a mismatch would be a
// graph-building bug, but supports() must answer it honestly rather than let a kernel throw
// std::bad_variant_access.
bool attrs_fit(const Node& n) {
  switch (n.op) {
#define PORTA_REFERENCE_ATTRS_FIT(kind, name, min_inputs, max_inputs, roles, Attrs, rule, cost, \
                                  summary)                                                      \
  case OpKind::kind: return std::holds_alternative<Attrs>(n.attrs);
    PORTA_OP_LIST(PORTA_REFERENCE_ATTRS_FIT)
#undef PORTA_REFERENCE_ATTRS_FIT
  }
  return false;
}

// Inputs [first, last) must be floating point.
SupportResult need_float(const GraphState& g, const Node& n, std::size_t first, std::size_t last) {
  for (std::size_t i = first; i < last && i < n.inputs.size(); ++i) {
    const DType t = g.input_of(n, i).dtype;
    if (!is_floating(t))
      return SupportResult::no(
          fmt::format("{} input {} is {}; the reference kernel takes f32, f16, "
                      "bf16 or f8_e4m3",
                      node_label(n), i, dtype_name(t)));
  }
  return SupportResult::yes();
}

SupportResult need_integer(const GraphState& g, const Node& n, std::size_t i) {
  if (i >= n.inputs.size()) return SupportResult::yes();
  const DType t = g.input_of(n, i).dtype;
  if (is_integer(t)) return SupportResult::yes();
  return SupportResult::no(fmt::format("{} input {} is {}; it must be an integer dtype",
                                       node_label(n), i, dtype_name(t)));
}

SupportResult both(SupportResult first, SupportResult second) {
  return first.supported ? std::move(second) : std::move(first);
}

SupportResult binary_support(const GraphState& g, const Node& n) {
  const DType a = g.input_of(n, 0).dtype;
  const DType b = g.input_of(n, 1).dtype;
  if (is_floating(a) && is_floating(b)) return SupportResult::yes();
  if (is_integer(a) && is_integer(b) && n.op != OpKind::Div) return SupportResult::yes();
  return SupportResult::no(fmt::format(
      "{} of {} and {}: the reference kernel takes two floating-point inputs{}", node_label(n),
      dtype_name(a), dtype_name(b), n.op == OpKind::Div ? "" : " or two integer inputs"));
}

SupportResult op_support(const GraphState& g, const Node& n) {
  const std::size_t all = n.inputs.size();
  switch (n.op) {
    case OpKind::Add:
    case OpKind::Sub:
    case OpKind::Mul:
    case OpKind::Div: return binary_support(g, n);
#define PORTA_REFERENCE_UNARY_CASE(X, kind, name, summary) case OpKind::kind:
      PORTA_UNARY_OP_LIST(unused, PORTA_REFERENCE_UNARY_CASE)
#undef PORTA_REFERENCE_UNARY_CASE
    case OpKind::Matmul:
    case OpKind::Gelu:
    case OpKind::Softmax:
    case OpKind::RmsNorm:
    case OpKind::LayerNorm:
    case OpKind::Swiglu: return need_float(g, n, 0, all);
    case OpKind::Rope: return both(need_float(g, n, 0, 1), need_integer(g, n, 1));
    case OpKind::Embedding: return need_integer(g, n, 1);
    case OpKind::Attention: return both(need_float(g, n, 0, 5), need_integer(g, n, 5));
    case OpKind::Reshape:
    case OpKind::Permute:
    case OpKind::Slice:
    case OpKind::Concat:
    case OpKind::Cast:
    case OpKind::TopK: return SupportResult::yes();  // exact for every dtype
    case OpKind::MoeRouter: return reference::moe_router_supports(g, n);
    case OpKind::MoePermute: return reference::moe_permute_supports(g, n);
    case OpKind::GroupedMatmul: return reference::grouped_matmul_supports(g, n);
    case OpKind::MoeExperts: return reference::moe_experts_supports(g, n);
    case OpKind::MoeCombine: return reference::moe_combine_supports(g, n);
    case OpKind::QuantMatmul:
    case OpKind::QuantGroupedMatmul:
    case OpKind::QuantMoeExperts: return reference::quant_ops_supports(g, n);
    case OpKind::QuantEmbedding: return need_integer(g, n, 0);  // every scheme dequantizes
    case OpKind::AllToAll:
    case OpKind::AllGather: return SupportResult::yes();  // bytes, any dtype
    case OpKind::AllReduce:
    case OpKind::ReduceScatter: return need_float(g, n, 0, 1);
    case OpKind::MoeExpertsEp:
      return both(need_float(g, n, 0, 2), both(need_integer(g, n, 2), need_float(g, n, 5, all)));
  }
  return SupportResult::no(
      fmt::format("{}: unknown op kind {}", node_label(n), static_cast<int>(n.op)));
}

struct ReferencePlan final : Plan {
  std::vector<NodeId> nodes;
};

class ReferenceBackend final : public Backend {
 public:
  std::string name() const override { return "reference"; }

  DeviceInfo info() const override {
    DeviceInfo d;
    d.name = "reference";
    d.kind = "reference";
    d.description = "portable C++ reference kernels (the oracle): f32 math, double accumulators";
    d.dtypes.assign(std::begin(kAllDTypes), std::end(kAllDTypes));
    // It computes in host memory: all of the machine's RAM is its memory.
    const long pages = sysconf(_SC_PHYS_PAGES);
    const long page_size = sysconf(_SC_PAGE_SIZE);
    if (pages > 0 && page_size > 0)
      d.memory_bytes = static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page_size);
    d.properties = {{"memory", "host"},
                    {"numerics", "inputs widened to f32, double accumulators, one rounding"}};
    return d;
  }

  // F32Input widens a stacked weight part by part.
  bool reads_stacked(const GraphState&, const Node& n, std::size_t input) const override {
    return is_expert_weight_input(n, input);
  }
  SupportResult supports(const GraphState& g, const Node& n) const override {
    if (!attrs_fit(n))
      return SupportResult::no(fmt::format("{}: its attributes are not the op's", node_label(n)));
    return op_support(g, n);
  }

  std::unique_ptr<Plan> compile(const GraphState& g, std::span<const NodeId> nodes) override {
    auto plan = std::make_unique<ReferencePlan>();
    for (NodeId id : nodes) {
      const Node& n = g.nodes.at(id);
      if (auto verdict = supports(g, n); !verdict.supported)
        throw Error(ErrorCode::Unsupported, fmt::format("reference backend cannot run {}: {}",
                                                        describe_node(g, n), verdict.reason));
      plan->nodes.push_back(id);
      plan->note(id, fmt::format("reference::run_{}", op_name(n.op)));
    }
    return plan;
  }

  void execute(Plan& plan, const GraphState& g, const ExecContext& ctx) override {
    const auto& reference_plan = dynamic_cast<const ReferencePlan&>(plan);
    for (NodeId id : reference_plan.nodes) {
      const Node& n = g.nodes[id];
      ctx.timed(id, [&] { reference::run_node(g, n, ctx); });
    }
  }
};

}  // namespace

// ---- execution ---------------------------------------------------------------------------------

void reference::run_node(const GraphState& g, const Node& n, const ExecContext& ctx) {
  switch (n.op) {
#define PORTA_REFERENCE_DISPATCH(kind, name, ...) \
  case OpKind::kind: return reference::run_##name(g, n, ctx);
    PORTA_OP_LIST(PORTA_REFERENCE_DISPATCH)
#undef PORTA_REFERENCE_DISPATCH
  }
  throw Error(ErrorCode::Internal,
              fmt::format("{}: unknown op kind {}", node_label(n), static_cast<int>(n.op)));
}

std::shared_ptr<Backend> make_reference_backend() { return std::make_shared<ReferenceBackend>(); }

BackendFamily reference_backend_family() {
  BackendFamily family;
  family.name = "reference";
  family.enumerate = [] { return std::vector<DeviceInfo>{ReferenceBackend().info()}; };
  family.create = [](std::string_view device) -> std::shared_ptr<Backend> {
    if (!device.empty())
      throw Error(ErrorCode::NotFound,
                  fmt::format("the reference backend has no device '{}': it has one device, "
                              "named plain \"reference\"",
                              device));
    return make_reference_backend();
  };
  return family;
}

}  // namespace porta::detail
