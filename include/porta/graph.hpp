// Graph: the model as typed ops, built once by user code and compiled for any backend.
//
// Every builder call checks its operands against the op catalogue's shape and dtype rule at once
// and throws porta::Error naming the op, the node and the shapes if they do not fit, so a graph
// that was built is a graph that is well-typed. Values are cheap handles into their graph.
// Weights are shared with the caller's Tensor (or a memory-mapped checkpoint), never copied.
#pragma once

#include <porta/config.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <porta/ops.hpp>
#include <porta/tensor.hpp>

PORTA_API_BEGIN
namespace porta {

using ValueId = std::uint32_t;
using NodeId = std::uint32_t;
inline constexpr NodeId kNoNode = 0xffffffffu;

enum class ValueKind { Input, Constant, NodeOutput };

struct ValueInfo {
  ValueKind kind = ValueKind::NodeOutput;
  Shape shape;
  DType dtype = DType::F32;
  std::string name;           // inputs and constants: their name; outputs: "<node>:<index>"
  NodeId producer = kNoNode;  // NodeOutput only
  int output_index = 0;
  Tensor constant;  // Constant only
};

struct Node {
  NodeId id = 0;
  OpKind op = OpKind::Add;
  std::string name;  // unique within the graph; defaults to "<op>_<id>"
  std::vector<ValueId> inputs;
  std::vector<ValueId> outputs;
  OpAttrs attrs;
  std::string backend_pin;  // empty: the compile options decide
};

namespace detail {
struct GraphState;
}
class Graph;

// A handle to one value of a graph. It stays valid while the Graph lives (moving the Graph keeps
// it valid too).
class Value {
 public:
  Value() = default;
  bool valid() const noexcept { return state_ != nullptr; }
  ValueId id() const noexcept { return id_; }
  const Shape& shape() const;
  DType dtype() const;
  const ValueInfo& info() const;

 private:
  friend class Graph;
  friend Value operator+(Value a, Value b);
  friend Value operator-(Value a, Value b);
  friend Value operator*(Value a, Value b);
  friend Value operator/(Value a, Value b);
  Value(detail::GraphState* state, ValueId id) : state_(state), id_(id) {}
  detail::GraphState* state_ = nullptr;
  ValueId id_ = 0;
};

// The outputs of moe_router (see docs/moe-router.md for each one's meaning).
struct MoeRoute {
  Value ids;               // [T, K] int32 ([T, E] in expert-choice mode)
  Value weights;           // [T, K] f32 ([T, E] in expert-choice mode)
  Value counts;            // [E] int32
  Value offsets;           // [E + 1] int32
  Value perm;              // [P] int32, P = moe::perm_rows(attrs, T)
  Value inv;               // [T·K] int32 ([T·E] in expert-choice mode)
  Value dropped;           // [E] int32
  Value nonfinite;         // [T] int32
  Value mean_score;        // [E] f32
  std::int64_t top_k = 0;  // assignment slots per token: K, or E in expert-choice mode
};

// The inputs of moe_router by name (see moe.hpp for their shapes). Set attrs.use_bias /
// use_valid to match, and attrs.mode = Hash for token_ids and hash_table.
struct MoeRouterInputs {
  Value logits;                     // [T, E] f32, bf16 or f16
  std::optional<Value> bias;        // [E] f32: the selection bias
  std::optional<Value> valid;       // [T] i8, i32 or i64: 0 marks a padding row
  std::optional<Value> token_ids;   // [T] i32 or i64: hash mode
  std::optional<Value> hash_table;  // [V, K] i32: hash mode, the experts of each token id
};

struct MoeExpertWeights {
  Value gate;  // [E, I, H]
  Value up;    // [E, I, H]
  Value down;  // [E, H, I]
  // Shared experts (optional): [Is, H], [Is, H], [H, Is]; gate weight [1, H] when sigmoid-gated.
  std::optional<Value> shared_gate, shared_up, shared_down, shared_gate_weight;
};

// A quantized weight in a graph (Graph::weight of a QuantizedTensor): its data, scale and (when
// asymmetric) zero-point constants, the scheme and the logical shape [..., N, K].
struct QuantizedValue {
  Value data, scale;
  std::optional<Value> zero;
  QuantScheme scheme;
  Shape shape;
};

// Routed experts with quantized weights (one scheme for all three): gate and up [E, I, H], down
// [E, H, I] logically. Shared experts are separate quantized matmuls.
struct QuantMoeExpertWeights {
  QuantizedValue gate, up, down;
};

class Graph {
 public:
  Graph();
  ~Graph();
  Graph(Graph&&) noexcept;
  Graph& operator=(Graph&&) noexcept;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // ---- sources and sinks ----
  Value input(std::string name, Shape shape, DType dtype);
  Value weight(std::string name, Tensor value);         // shares the tensor's memory
  Value scalar(float value, DType dtype = DType::F32);  // a rank-0 constant
  // A quantized weight: validated (porta::Error naming `name` and the field), its tensors shared.
  // The constants are named `name`, `name.scale` and `name.zero`.
  QuantizedValue weight(std::string name, QuantizedTensor value);
  void output(std::string name, Value value);

  // ---- ops (each checks its operands now) ----
  Value matmul(Value a, Value b, MatmulAttrs attrs = {});
  Value add(Value a, Value b);
  Value sub(Value a, Value b);
  Value mul(Value a, Value b);
  Value div(Value a, Value b);
  Value gelu(Value x, GeluAttrs attrs = {});
  // silu, sigmoid, exp, relu, ...: one builder per attribute-free unary op of the list.
#define PORTA_GRAPH_UNARY_BUILDER(X, kind, name, summary) Value name(Value x);
  PORTA_UNARY_OP_LIST(unused, PORTA_GRAPH_UNARY_BUILDER)
#undef PORTA_GRAPH_UNARY_BUILDER
  Value softmax(Value x, int axis = -1);
  Value rms_norm(Value x, Value weight, float eps = 1e-6f);
  Value layer_norm(Value x, Value weight, std::optional<Value> bias = {}, float eps = 1e-5f);
  Value rope(Value x, Value positions, RopeAttrs attrs = {});
  Value embedding(Value table, Value ids);
  // Rows of a quantized table [V, H] (a GGUF's token_embd in its blocks): f32 [ids..., H], each
  // row dequantized exactly as the scheme defines (quant_embedding).
  Value embedding(const QuantizedValue& table, Value ids);
  Value reshape(Value x, std::vector<std::int64_t> shape);
  Value permute(Value x, std::vector<int> perm);
  Value slice(Value x, int axis, std::int64_t start, std::int64_t end, std::int64_t step = 1);
  Value concat(const std::vector<Value>& values, int axis);
  Value cast(Value x, DType to);
  std::pair<Value, Value> top_k(Value x, std::int64_t k, bool largest = true);  // values, indices
  Value swiglu(Value gate, Value up);
  Value attention(Value q, Value k, Value v, AttentionAttrs attrs = {});
  Value attention(Value q, Value k, Value v, Value k_cache, Value v_cache, Value cache_len,
                  AttentionAttrs attrs = {});
  MoeRoute moe_router(Value logits, const moe::RouterAttrs& attrs, std::optional<Value> bias = {});
  MoeRoute moe_router(const MoeRouterInputs& inputs, const moe::RouterAttrs& attrs);
  Value moe_permute(Value x, const MoeRoute& route);
  Value grouped_matmul(Value rows, Value weights, Value offsets);
  Value moe_experts(Value x, const MoeRoute& route, const MoeExpertWeights& weights,
                    moe::ExpertsAttrs attrs = {});
  Value moe_combine(Value expert_rows, const MoeRoute& route);
  // Quantized weights (docs/quantization.md): x [..., K] -> [..., N]; rows [P, K] -> [P, N];
  // the routed experts. `params` is the per-tensor activation scale and offset of StaticInt8.
  Value matmul(Value x, const QuantizedValue& w, ActivationQuant act = ActivationQuant::None,
               QuantActivationParams params = {});
  Value grouped_matmul(Value rows, const QuantizedValue& w, Value offsets,
                       ActivationQuant act = ActivationQuant::None);
  Value moe_experts(Value x, const MoeRoute& route, const QuantMoeExpertWeights& weights,
                    ActivationQuant act = ActivationQuant::None);

  // The generic builder behind all of the above: checks arity and runs the op's shape rule.
  std::vector<Value> add_op(OpKind op, const std::vector<Value>& inputs, OpAttrs attrs = {});

  // ---- naming and placement ----
  // Names the node producing `v` (names are unique; throws on a duplicate). Returns `v`.
  Value name(Value v, std::string node_name);
  // Pins the node producing `v` to a backend ("cpu", "opencl:0", ...). Returns `v`.
  Value pin(Value v, std::string backend);

  // ---- inspection ----
  std::span<const Node> nodes() const;
  const Node& node(NodeId id) const;
  const ValueInfo& value(ValueId id) const;
  std::size_t num_values() const;
  Value handle(ValueId id) const;
  const std::vector<std::pair<std::string, ValueId>>& inputs() const;
  const std::vector<std::pair<std::string, ValueId>>& outputs() const;
  // A readable listing, one node per line.
  std::string to_string() const;

 private:
  Value check_owned(Value v, const char* what) const;
  std::unique_ptr<detail::GraphState> state_;
};

// Arithmetic sugar for graph values: a + b is g.add(a, b) on the graph both belong to.
Value operator+(Value a, Value b);
Value operator-(Value a, Value b);
Value operator*(Value a, Value b);
Value operator/(Value a, Value b);

}  // namespace porta
PORTA_API_END
