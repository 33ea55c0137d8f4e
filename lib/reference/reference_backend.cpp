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

// The attribute struct each dense op carries; a mismatch would be a graph-building bug, but
// supports() must answer it honestly rather than let a kernel throw std::bad_variant_access.
bool attrs_fit(const Node& n) {
  switch (n.op) {
    case OpKind::Matmul: return std::holds_alternative<MatmulAttrs>(n.attrs);
    case OpKind::Gelu: return std::holds_alternative<GeluAttrs>(n.attrs);
    case OpKind::Softmax:
    case OpKind::Concat: return std::holds_alternative<AxisAttrs>(n.attrs);
    case OpKind::RmsNorm:
    case OpKind::LayerNorm: return std::holds_alternative<NormAttrs>(n.attrs);
    case OpKind::Rope: return std::holds_alternative<RopeAttrs>(n.attrs);
    case OpKind::Reshape: return std::holds_alternative<ReshapeAttrs>(n.attrs);
    case OpKind::Permute: return std::holds_alternative<PermuteAttrs>(n.attrs);
    case OpKind::Slice: return std::holds_alternative<SliceAttrs>(n.attrs);
    case OpKind::Cast: return std::holds_alternative<CastAttrs>(n.attrs);
    case OpKind::TopK: return std::holds_alternative<TopKAttrs>(n.attrs);
    case OpKind::Attention: return std::holds_alternative<AttentionAttrs>(n.attrs);
    default: return true;  // the rest take no attributes
  }
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

SupportResult dense_support(const GraphState& g, const Node& n) {
  const std::size_t all = n.inputs.size();
  switch (n.op) {
    case OpKind::Add:
    case OpKind::Sub:
    case OpKind::Mul:
    case OpKind::Div: return binary_support(g, n);
    case OpKind::Matmul:
    case OpKind::Silu:
    case OpKind::Gelu:
    case OpKind::Sigmoid:
    case OpKind::Exp:
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
    default: break;
  }
  return SupportResult::no(fmt::format("{}: not a dense op", node_label(n)));
}

bool is_moe_op(OpKind op) {
  return op == OpKind::MoeRouter || op == OpKind::MoePermute || op == OpKind::GroupedMatmul ||
         op == OpKind::MoeExperts || op == OpKind::MoeCombine;
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
    if (is_moe_op(n.op)) return reference::moe_supports(g, n);
    if (!attrs_fit(n))
      return SupportResult::no(fmt::format("{}: its attributes are not the op's", node_label(n)));
    return dense_support(g, n);
  }

  std::unique_ptr<Plan> compile(const GraphState& g, std::span<const NodeId> nodes) override {
    auto plan = std::make_unique<ReferencePlan>();
    for (NodeId id : nodes) {
      const Node& n = g.nodes.at(id);
      if (auto verdict = supports(g, n); !verdict.supported)
        throw Error(ErrorCode::Unsupported, fmt::format("reference backend cannot run {}: {}",
                                                        describe_node(g, n), verdict.reason));
      plan->nodes.push_back(id);
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
  using namespace reference;
  switch (n.op) {
    case OpKind::Matmul: return run_matmul(g, n, ctx);
    case OpKind::Add:
    case OpKind::Sub:
    case OpKind::Mul:
    case OpKind::Div: return run_binary(g, n, ctx);
    case OpKind::Silu:
    case OpKind::Gelu:
    case OpKind::Sigmoid:
    case OpKind::Exp: return run_unary(g, n, ctx);
    case OpKind::Softmax: return run_softmax(g, n, ctx);
    case OpKind::RmsNorm: return run_rms_norm(g, n, ctx);
    case OpKind::LayerNorm: return run_layer_norm(g, n, ctx);
    case OpKind::Rope: return run_rope(g, n, ctx);
    case OpKind::Embedding: return run_embedding(g, n, ctx);
    case OpKind::Reshape: return run_reshape(g, n, ctx);
    case OpKind::Permute: return run_permute(g, n, ctx);
    case OpKind::Slice: return run_slice(g, n, ctx);
    case OpKind::Concat: return run_concat(g, n, ctx);
    case OpKind::Cast: return run_cast(g, n, ctx);
    case OpKind::TopK: return run_top_k(g, n, ctx);
    case OpKind::Swiglu: return run_swiglu(g, n, ctx);
    case OpKind::Attention: return run_attention(g, n, ctx);
    case OpKind::MoeRouter:
    case OpKind::MoePermute:
    case OpKind::GroupedMatmul:
    case OpKind::MoeExperts:
    case OpKind::MoeCombine: return run_moe_op(g, n, ctx);
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
