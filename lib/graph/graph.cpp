// The graph builder: each call checks its operands through the catalogue's rule and appends a
// node. Nodes are appended in creation order, which is therefore a topological order.
#include <porta/graph.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "graph/catalogue.hpp"
#include "graph/graph_state.hpp"

namespace porta {

namespace {

// Ops built through add_op() with no attributes get the op's default attributes.
OpAttrs default_attrs(OpKind op) {
  switch (op) {
#define PORTA_OP_DEFAULT_ATTRS(kind, name, min_inputs, max_inputs, roles, Attrs, rule, cost, \
                               summary)                                                      \
  case OpKind::kind: return Attrs{};
    PORTA_OP_LIST(PORTA_OP_DEFAULT_ATTRS)
#undef PORTA_OP_DEFAULT_ATTRS
  }
  throw Error(ErrorCode::InvalidArgument, fmt::format("unknown op kind {}", static_cast<int>(op)));
}

}  // namespace

namespace detail {

std::string describe_node(const GraphState& g, const Node& n) {
  std::vector<std::string> operands;
  for (auto id : n.inputs) {
    const auto& v = g.values[id];
    operands.push_back(fmt::format("{} {}{}", v.name, dtype_name(v.dtype), v.shape.to_string()));
  }
  return fmt::format("{} '{}' ({})", op_name(n.op), n.name, fmt::join(operands, ", "));
}

}  // namespace detail

// ---- Value ------------------------------------------------------------------------------------

const ValueInfo& Value::info() const {
  if (state_ == nullptr) throw Error(ErrorCode::InvalidArgument, "use of an empty porta::Value");
  return state_->values[id_];
}
const Shape& Value::shape() const { return info().shape; }
DType Value::dtype() const { return info().dtype; }

// ---- Graph ------------------------------------------------------------------------------------

Graph::Graph() : state_(std::make_unique<detail::GraphState>()) {}
Graph::~Graph() = default;
Graph::Graph(Graph&&) noexcept = default;
Graph& Graph::operator=(Graph&&) noexcept = default;

Value Graph::check_owned(Value v, const char* what) const {
  if (!v.valid())
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{}: an empty porta::Value was passed", what));
  if (v.state_ != state_.get())
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{}: value '{}' belongs to another graph", what, v.info().name));
  return v;
}

Value Graph::input(std::string name, Shape shape, DType dtype) {
  for (const auto& [existing, id] : state_->inputs)
    if (existing == name)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("graph input '{}' is declared twice", name));
  for (auto d : shape.dims())
    if (d < 0)
      throw Error(
          ErrorCode::InvalidArgument,
          fmt::format("graph input '{}' has a negative dimension in {}", name, shape.to_string()));
  ValueInfo info;
  info.kind = ValueKind::Input;
  info.shape = std::move(shape);
  info.dtype = dtype;
  info.name = name;
  const auto id = static_cast<ValueId>(state_->values.size());
  state_->values.push_back(std::move(info));
  state_->inputs.emplace_back(std::move(name), id);
  return Value(state_.get(), id);
}

Value Graph::weight(std::string name, Tensor value) {
  if (!value.defined())
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("weight '{}' is an undefined tensor", name));
  ValueInfo info;
  info.kind = ValueKind::Constant;
  info.shape = value.shape();
  info.dtype = value.dtype();
  info.name = std::move(name);
  info.constant = std::move(value);
  const auto id = static_cast<ValueId>(state_->values.size());
  state_->values.push_back(std::move(info));
  return Value(state_.get(), id);
}

QuantizedValue Graph::weight(std::string name, QuantizedTensor value) {
  validate(value, name);
  QuantizedValue q;
  q.scheme = value.scheme;
  q.shape = value.shape;
  q.scale = weight(name + ".scale", std::move(value.scale));
  if (value.scheme.zero_point) q.zero = weight(name + ".zero", std::move(value.zero));
  q.data = weight(std::move(name), std::move(value.data));
  return q;
}

Value Graph::scalar(float value, DType dtype) {
  const float values[] = {value};
  return weight(fmt::format("scalar_{}", state_->values.size()),
                Tensor::from_f32(Shape{}, dtype, values));
}

void Graph::output(std::string name, Value value) {
  check_owned(value, "output");
  for (const auto& [existing, id] : state_->outputs)
    if (existing == name)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("graph output '{}' is declared twice", name));
  state_->outputs.emplace_back(std::move(name), value.id());
}

namespace {

std::vector<ValueId> append_node(detail::GraphState& state, OpKind op,
                                 std::vector<ValueId> input_ids, OpAttrs attrs) {
  const auto& info = op_info(op);
  if (std::holds_alternative<NoAttrs>(attrs)) attrs = default_attrs(op);
  const auto id = static_cast<NodeId>(state.nodes.size());
  std::string name = fmt::format("{}_{}", info.name, id);
  while (state.node_names.contains(name)) name += "_";
  const auto outputs = detail::infer_outputs(state, op, input_ids, attrs, name);

  Node node;
  node.id = id;
  node.op = op;
  node.name = name;
  node.inputs = std::move(input_ids);
  node.attrs = std::move(attrs);
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    ValueInfo v;
    v.kind = ValueKind::NodeOutput;
    v.shape = outputs[i].shape;
    v.dtype = outputs[i].dtype;
    v.name = outputs.size() == 1 ? name : fmt::format("{}:{}", name, i);
    v.producer = id;
    v.output_index = static_cast<int>(i);
    node.outputs.push_back(static_cast<ValueId>(state.values.size()));
    state.values.push_back(std::move(v));
  }
  state.node_names.insert(name);
  state.nodes.push_back(std::move(node));
  return state.nodes.back().outputs;
}

}  // namespace

std::vector<Value> Graph::add_op(OpKind op, const std::vector<Value>& inputs, OpAttrs attrs) {
  std::vector<ValueId> input_ids;
  for (const auto& v : inputs) input_ids.push_back(check_owned(v, op_info(op).name.data()).id());
  std::vector<Value> result;
  for (auto id : append_node(*state_, op, std::move(input_ids), std::move(attrs)))
    result.push_back(Value(state_.get(), id));
  return result;
}

Value Graph::name(Value v, std::string node_name) {
  check_owned(v, "name");
  const auto& info = v.info();
  if (info.kind != ValueKind::NodeOutput)
    throw Error(
        ErrorCode::InvalidArgument,
        fmt::format("'{}' is a graph input or weight, not the output of a node", info.name));
  Node& node = state_->nodes[info.producer];
  if (node.name == node_name) return v;
  if (state_->node_names.contains(node_name))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("node name '{}' is already used", node_name));
  state_->node_names.erase(node.name);
  state_->node_names.insert(node_name);
  node.name = std::move(node_name);
  for (std::size_t i = 0; i < node.outputs.size(); ++i)
    state_->values[node.outputs[i]].name =
        node.outputs.size() == 1 ? node.name : fmt::format("{}:{}", node.name, i);
  return v;
}

Value Graph::pin(Value v, std::string backend) {
  check_owned(v, "pin");
  const auto& info = v.info();
  if (info.kind != ValueKind::NodeOutput)
    throw Error(
        ErrorCode::InvalidArgument,
        fmt::format("cannot pin '{}': it is a graph input or weight, not a node", info.name));
  state_->nodes[info.producer].backend_pin = std::move(backend);
  return v;
}

// ---- the ops ----------------------------------------------------------------------------------

Value Graph::matmul(Value a, Value b, MatmulAttrs attrs) {
  return add_op(OpKind::Matmul, {a, b}, attrs)[0];
}
Value Graph::add(Value a, Value b) { return add_op(OpKind::Add, {a, b})[0]; }
Value Graph::sub(Value a, Value b) { return add_op(OpKind::Sub, {a, b})[0]; }
Value Graph::mul(Value a, Value b) { return add_op(OpKind::Mul, {a, b})[0]; }
Value Graph::div(Value a, Value b) { return add_op(OpKind::Div, {a, b})[0]; }
Value Graph::gelu(Value x, GeluAttrs attrs) { return add_op(OpKind::Gelu, {x}, attrs)[0]; }
#define PORTA_GRAPH_UNARY_BUILDER(X, kind, name, summary) \
  Value Graph::name(Value x) { return add_op(OpKind::kind, {x})[0]; }
PORTA_UNARY_OP_LIST(unused, PORTA_GRAPH_UNARY_BUILDER)
#undef PORTA_GRAPH_UNARY_BUILDER
Value Graph::softmax(Value x, int axis) { return add_op(OpKind::Softmax, {x}, AxisAttrs{axis})[0]; }
Value Graph::rms_norm(Value x, Value weight, float eps) {
  return add_op(OpKind::RmsNorm, {x, weight}, NormAttrs{eps})[0];
}
Value Graph::layer_norm(Value x, Value weight, std::optional<Value> bias, float eps) {
  std::vector<Value> inputs{x, weight};
  if (bias) inputs.push_back(*bias);
  return add_op(OpKind::LayerNorm, inputs, NormAttrs{eps})[0];
}
Value Graph::rope(Value x, Value positions, RopeAttrs attrs) {
  return add_op(OpKind::Rope, {x, positions}, attrs)[0];
}
Value Graph::embedding(Value table, Value ids) {
  return add_op(OpKind::Embedding, {table, ids})[0];
}
Value Graph::embedding(const QuantizedValue& table, Value ids) {
  std::vector<Value> inputs{ids, table.data, table.scale};
  if (table.zero) inputs.push_back(*table.zero);
  return add_op(OpKind::QuantEmbedding, inputs, QuantAttrs{table.scheme})[0];
}
Value Graph::reshape(Value x, std::vector<std::int64_t> shape) {
  return add_op(OpKind::Reshape, {x}, ReshapeAttrs{std::move(shape)})[0];
}
Value Graph::permute(Value x, std::vector<int> perm) {
  return add_op(OpKind::Permute, {x}, PermuteAttrs{std::move(perm)})[0];
}
Value Graph::slice(Value x, int axis, std::int64_t start, std::int64_t end, std::int64_t step) {
  return add_op(OpKind::Slice, {x}, SliceAttrs{axis, start, end, step})[0];
}
Value Graph::concat(const std::vector<Value>& values, int axis) {
  return add_op(OpKind::Concat, values, AxisAttrs{axis})[0];
}
Value Graph::cast(Value x, DType to) { return add_op(OpKind::Cast, {x}, CastAttrs{to})[0]; }
std::pair<Value, Value> Graph::top_k(Value x, std::int64_t k, bool largest) {
  auto out = add_op(OpKind::TopK, {x}, TopKAttrs{k, largest});
  return {out[0], out[1]};
}
Value Graph::swiglu(Value gate, Value up) { return add_op(OpKind::Swiglu, {gate, up})[0]; }
Value Graph::attention(Value q, Value k, Value v, AttentionAttrs attrs) {
  attrs.kv_cache = false;
  return add_op(OpKind::Attention, {q, k, v}, attrs)[0];
}
Value Graph::attention(Value q, Value k, Value v, Value k_cache, Value v_cache, Value cache_len,
                       AttentionAttrs attrs) {
  attrs.kv_cache = true;
  return add_op(OpKind::Attention, {q, k, v, k_cache, v_cache, cache_len}, attrs)[0];
}

MoeRoute Graph::moe_router(Value logits, const moe::RouterAttrs& attrs, std::optional<Value> bias) {
  MoeRouterInputs inputs;
  inputs.logits = logits;
  inputs.bias = bias;
  return moe_router(inputs, attrs);
}

MoeRoute Graph::moe_router(const MoeRouterInputs& in, const moe::RouterAttrs& attrs) {
  // Node inputs are positional: logits [, bias] [, valid] [, token_ids, hash_table]. The rule
  // checks each against the attributes that say which ones are there.
  if (attrs.use_bias && !in.bias) {
    const bool v3 = attrs == moe::deepseek_v3(attrs.num_experts, attrs.top_k);
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("moe_router: {} select experts with a bias: pass the bias, an [{}] f32 "
                            "tensor (DeepSeek-V3's e_score_correction_bias), as moe_router's "
                            "third argument or MoeRouterInputs::bias",
                            v3 ? "the deepseek_v3 preset's attributes"
                               : "these attributes (use_bias)",
                            attrs.num_experts));
  }
  std::vector<Value> inputs{in.logits};
  for (const auto* optional : {&in.bias, &in.valid, &in.token_ids, &in.hash_table})
    if (optional->has_value()) inputs.push_back(**optional);
  auto out = add_op(OpKind::MoeRouter, inputs, attrs);
  MoeRoute route;
  route.ids = out[0];
  route.weights = out[1];
  route.counts = out[2];
  route.offsets = out[3];
  route.perm = out[4];
  route.inv = out[5];
  route.dropped = out[6];
  route.nonfinite = out[7];
  route.mean_score = out[8];
  route.top_k = moe::slots_per_token(attrs);
  return route;
}

Value Graph::moe_permute(Value x, const MoeRoute& route) {
  return add_op(OpKind::MoePermute, {x, route.perm}, MoePermuteAttrs{route.top_k})[0];
}

Value Graph::grouped_matmul(Value rows, Value weights, Value offsets) {
  return add_op(OpKind::GroupedMatmul, {rows, weights, offsets})[0];
}

Value Graph::moe_experts(Value x, const MoeRoute& route, const MoeExpertWeights& w,
                         moe::ExpertsAttrs attrs) {
  std::vector<Value> inputs{x,         route.weights, route.offsets, route.perm,
                            route.inv, w.gate,        w.up,          w.down};
  attrs.has_shared = w.shared_gate.has_value();
  if (attrs.has_shared) {
    if (!w.shared_up || !w.shared_down)
      throw Error(ErrorCode::InvalidArgument,
                  "moe_experts: shared experts need shared_gate, shared_up and shared_down");
    inputs.insert(inputs.end(), {*w.shared_gate, *w.shared_up, *w.shared_down});
    if (attrs.shared_gate == moe::SharedGate::Sigmoid && !w.shared_gate_weight)
      throw Error(ErrorCode::InvalidArgument,
                  "moe_experts: a sigmoid-gated shared expert needs shared_gate_weight [1, H]");
    if (w.shared_gate_weight) {
      attrs.shared_gate = moe::SharedGate::Sigmoid;
      inputs.push_back(*w.shared_gate_weight);
    }
  }
  return add_op(OpKind::MoeExperts, inputs, attrs)[0];
}

Value Graph::matmul(Value x, const QuantizedValue& w, ActivationQuant act,
                    QuantActivationParams params) {
  std::vector<Value> inputs{x, w.data, w.scale};
  if (w.zero) inputs.push_back(*w.zero);
  return add_op(OpKind::QuantMatmul, inputs, QuantAttrs{w.scheme, act, params.scale, params.offset})[0];
}

Value Graph::grouped_matmul(Value rows, const QuantizedValue& w, Value offsets,
                            ActivationQuant act) {
  std::vector<Value> inputs{rows, offsets, w.data, w.scale};
  if (w.zero) inputs.push_back(*w.zero);
  return add_op(OpKind::QuantGroupedMatmul, inputs, QuantAttrs{w.scheme, act})[0];
}

Value Graph::moe_experts(Value x, const MoeRoute& route, const QuantMoeExpertWeights& w,
                         ActivationQuant act) {
  if (!(w.up.scheme == w.gate.scheme) || !(w.down.scheme == w.gate.scheme))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("moe_experts: gate, up and down must share one quantization scheme "
                            "(gate {}, up {}, down {})",
                            describe(w.gate.scheme), describe(w.up.scheme), describe(w.down.scheme)));
  std::vector<Value> inputs{x,          route.weights, route.offsets, route.perm,  route.inv,
                            w.gate.data, w.up.data,    w.down.data,   w.gate.scale, w.up.scale,
                            w.down.scale};
  if (w.gate.scheme.zero_point) {
    if (!w.gate.zero || !w.up.zero || !w.down.zero)
      throw Error(ErrorCode::InvalidArgument,
                  "moe_experts: an asymmetric scheme needs zero points for gate, up and down");
    inputs.insert(inputs.end(), {*w.gate.zero, *w.up.zero, *w.down.zero});
  }
  return add_op(OpKind::QuantMoeExperts, inputs, QuantAttrs{w.gate.scheme, act})[0];
}

Value Graph::moe_combine(Value expert_rows, const MoeRoute& route) {
  return add_op(OpKind::MoeCombine, {expert_rows, route.weights, route.inv})[0];
}

// ---- inspection -------------------------------------------------------------------------------

std::span<const Node> Graph::nodes() const { return state_->nodes; }
const Node& Graph::node(NodeId id) const {
  if (id >= state_->nodes.size())
    throw Error(ErrorCode::NotFound, fmt::format("node {} does not exist", id));
  return state_->nodes[id];
}
const ValueInfo& Graph::value(ValueId id) const {
  if (id >= state_->values.size())
    throw Error(ErrorCode::NotFound, fmt::format("value {} does not exist", id));
  return state_->values[id];
}
std::size_t Graph::num_values() const { return state_->values.size(); }
Value Graph::handle(ValueId id) const {
  value(id);
  return Value(state_.get(), id);
}
const std::vector<std::pair<std::string, ValueId>>& Graph::inputs() const { return state_->inputs; }
const std::vector<std::pair<std::string, ValueId>>& Graph::outputs() const {
  return state_->outputs;
}

std::string Graph::to_string() const {
  std::string out;
  for (const auto& [name, id] : state_->inputs) {
    const auto& v = state_->values[id];
    out += fmt::format("input  {} : {}{}\n", name, dtype_name(v.dtype), v.shape.to_string());
  }
  for (const auto& n : state_->nodes) {
    std::vector<std::string> outs;
    for (auto id : n.outputs)
      outs.push_back(fmt::format("{}{}", dtype_name(state_->values[id].dtype),
                                 state_->values[id].shape.to_string()));
    out += fmt::format("{} -> {}{}\n", detail::describe_node(*state_, n), fmt::join(outs, ", "),
                       n.backend_pin.empty() ? "" : fmt::format("  @{}", n.backend_pin));
  }
  for (const auto& [name, id] : state_->outputs)
    out += fmt::format("output {} = {}\n", name, state_->values[id].name);
  return out;
}

// Operands of the operators must be non-empty values of one graph; the node goes on that graph.
#define PORTA_VALUE_OPERATOR(symbol, kind)                                                \
  Value operator symbol(Value a, Value b) {                                               \
    if (a.state_ == nullptr || b.state_ == nullptr)                                       \
      throw Error(ErrorCode::InvalidArgument,                                             \
                  fmt::format("{}: an empty porta::Value was passed", op_name(kind)));    \
    if (a.state_ != b.state_)                                                             \
      throw Error(ErrorCode::InvalidArgument,                                             \
                  fmt::format("{}: operands belong to different graphs", op_name(kind))); \
    return Value(a.state_, append_node(*a.state_, kind, {a.id(), b.id()}, NoAttrs{})[0]); \
  }
PORTA_VALUE_OPERATOR(+, OpKind::Add)
PORTA_VALUE_OPERATOR(-, OpKind::Sub)
PORTA_VALUE_OPERATOR(*, OpKind::Mul)
PORTA_VALUE_OPERATOR(/, OpKind::Div)
#undef PORTA_VALUE_OPERATOR

}  // namespace porta
