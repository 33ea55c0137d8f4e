// The op catalogue: every operation a porta graph can hold, declared once.
//
// Each op has a kind, a name, an input arity, an attribute struct and a shape/dtype rule (the
// rules live in the library and run as the graph is built). Backends implement ops from this
// list and say honestly which ones they support; the runtime places the rest elsewhere.
#pragma once

#include <porta/config.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <variant>
#include <vector>

#include <porta/dtype.hpp>
#include <porta/expert_parallel.hpp>
#include <porta/moe.hpp>
#include <porta/quant.hpp>

PORTA_API_BEGIN
namespace porta {

// THE OP LIST: the single declaration of every op. One line per op:
//   X(Kind, name, min_inputs, max_inputs, roles, Attrs, rule, cost, summary)
// Kind: the OpKind enumerator; name: the op's name in text, which also names its reference kernel
// `reference::run_<name>` and its conformance cases `cases_<name>` (the library's dispatch tables
// are generated from this list, so an op without either does not link); min/max_inputs: arity (-1:
// any number); roles: the inputs' names in order, as error messages use them; Attrs: the attribute
// struct its nodes carry; rule: the library's shape/dtype rule (lib/graph/catalogue.cpp,
// `<rule>_rule`); cost: its FLOP count (lib/graph/cost.cpp,
// `<cost>_flops`); summary: one line for `porta check --list` and docs.
// Adding an op: docs/architecture.md, "Adding an op".
//
// The attribute-free unary float ops, y = f(x) elementwise: U(X, Kind, name, summary). Each also
// gets a named graph builder (Graph::relu), a generic shape rule and cost, and generic
// conformance cases; its reference kernel is the scalar function `reference::unary_<name>`.
#define PORTA_UNARY_OP_LIST(X, U)             \
  U(X, Silu, silu, "x · sigmoid(x)")          \
  U(X, Sigmoid, sigmoid, "1 / (1 + exp(-x))") \
  U(X, Exp, exp, "exp(x)")                    \
  U(X, Relu, relu, "max(x, 0) (the experts of Switch Transformer and T5)")

#define PORTA_UNARY_AS_OP(X, kind, name, summary) \
  X(kind, name, 1, 1, "x", NoAttrs, unary_float, elementwise, summary)

#define PORTA_OP_LIST(X)                                                                           \
  X(Matmul, matmul, 2, 2, "a, b", MatmulAttrs, matmul, matmul,                                     \
    "a[..., M, K] · b[..., K, N], optional transposes, batch broadcast")                           \
  X(Add, add, 2, 2, "a, b", NoAttrs, binary, elementwise, "a + b with broadcasting")               \
  X(Sub, sub, 2, 2, "a, b", NoAttrs, binary, elementwise, "a - b with broadcasting")               \
  X(Mul, mul, 2, 2, "a, b", NoAttrs, binary, elementwise, "a · b with broadcasting")               \
  X(Div, div, 2, 2, "a, b", NoAttrs, binary, elementwise, "a / b with broadcasting")               \
  PORTA_UNARY_OP_LIST(X, PORTA_UNARY_AS_OP)                                                        \
  X(Gelu, gelu, 1, 1, "x", GeluAttrs, gelu, elementwise, "GELU, exact or tanh-approximated")       \
  X(Softmax, softmax, 1, 1, "x", AxisAttrs, softmax, normalization, "softmax along an axis")       \
  X(RmsNorm, rms_norm, 2, 2, "x, weight", NormAttrs, norm, normalization,                          \
    "x / sqrt(mean(x²) + eps) · weight")                                                           \
  X(LayerNorm, layer_norm, 2, 3, "x, weight, bias", NormAttrs, norm, normalization,                \
    "(x - mean) / sqrt(var + eps) · weight + bias")                                                \
  X(Rope, rope, 2, 2, "x, positions", RopeAttrs, rope, normalization,                              \
    "rotary position embedding (NeoX or interleaved, YaRN scaling)")                               \
  X(Embedding, embedding, 2, 2, "table, ids", NoAttrs, embedding, data_movement,                   \
    "rows of a table gathered by ids")                                                             \
  X(Reshape, reshape, 1, 1, "x", ReshapeAttrs, reshape, data_movement, "same elements, new shape") \
  X(Permute, permute, 1, 1, "x", PermuteAttrs, permute, data_movement, "transpose axes")           \
  X(Slice, slice, 1, 1, "x", SliceAttrs, slice, data_movement, "start:end:step along one axis")    \
  X(Concat, concat, 1, -1, "values", AxisAttrs, concat, data_movement, "join along one axis")      \
  X(Cast, cast, 1, 1, "x", CastAttrs, cast, data_movement, "convert dtype")                        \
  X(TopK, top_k, 1, 1, "x", TopKAttrs, top_k, elementwise,                                         \
    "k largest (or smallest) values and indices, last axis")                                       \
  X(Swiglu, swiglu, 2, 2, "gate, up", NoAttrs, swiglu, elementwise, "silu(gate) · up")             \
  X(Attention, attention, 3, 6, "q, k, v, k_cache, v_cache, cache_len", AttentionAttrs, attention, \
    attention, "scaled-dot-product attention, causal, GQA, KV cache")                              \
  X(MoeRouter, moe_router, 1, 5, "logits", moe::RouterAttrs, moe_router, elementwise,              \
    "MoE routing: ids, weights, counts, offsets, perm, inv")                                       \
  X(MoePermute, moe_permute, 2, 2, "x, perm", MoePermuteAttrs, moe_permute, data_movement,         \
    "token rows grouped by expert")                                                                \
  X(GroupedMatmul, grouped_matmul, 3, 3, "rows, weights, offsets", NoAttrs, grouped_matmul,        \
    grouped_matmul, "ragged per-expert matmul")                                                    \
  X(MoeExperts, moe_experts, 8, 12,                                                                \
    "x, routing weights, offsets, perm, inv, w_gate, w_up, w_down, shared gate, shared up, "       \
    "shared down, shared gate weight",                                                             \
    moe::ExpertsAttrs, moe_experts, moe_experts,                                                   \
    "routed SwiGLU experts plus optional shared experts")                                          \
  X(MoeCombine, moe_combine, 3, 3, "expert_rows, routing weights, inv", NoAttrs, moe_combine,      \
    elementwise, "weighted sum of each token's expert rows")                                       \
  X(QuantMatmul, quant_matmul, 3, 4, "x, data, scale, zero", QuantAttrs, quant_matmul,             \
    quant_matmul, "x[..., K] · W[N, K]ᵀ, W quantized (int8, int4, f8_e4m3; docs/quantization.md)") \
  X(QuantGroupedMatmul, quant_grouped_matmul, 4, 5, "rows, offsets, data, scale, zero",            \
    QuantAttrs, quant_grouped_matmul, grouped_matmul,                                              \
    "ragged per-expert matmul with quantized weights [E, N, K]")                                   \
  X(QuantMoeExperts, quant_moe_experts, 11, 14,                                                    \
    "x, routing weights, offsets, perm, inv, gate data, up data, down data, gate scale, "          \
    "up scale, down scale, gate zero, up zero, down zero",                                         \
    QuantAttrs, quant_moe_experts, quant_moe_experts,                                              \
    "routed SwiGLU experts with quantized weights")                                                \
  X(QuantEmbedding, quant_embedding, 3, 4, "ids, data, scale, zero", QuantAttrs, quant_embedding,  \
    data_movement, "rows of a quantized table [V, H] gathered by ids, dequantized exactly to f32") \
  PORTA_COLLECTIVE_OP_LIST(X)

// Collectives over the Executable's communicator (CompileOptions::comm; docs/expert-parallel.md),
// and the expert-parallel MoE layer built on them. Kept in one block at the end of the list.
#define PORTA_COLLECTIVE_OP_LIST(X)                                                                \
  X(AllToAll, all_to_all, 2, 2, "x, send_counts", CollectiveAttrs, all_to_all, data_movement,      \
    "rows of x to each rank by per-peer counts; outputs rows [capacity, ...], recv_counts")        \
  X(AllGather, all_gather, 1, 1, "x", CollectiveAttrs, all_gather, data_movement,                  \
    "every rank's x, stacked along axis 0 in rank order")                                          \
  X(AllReduce, all_reduce, 1, 1, "x", CollectiveAttrs, all_reduce, elementwise,                    \
    "x summed over ranks, in rank order")                                                          \
  X(ReduceScatter, reduce_scatter, 1, 1, "x", CollectiveAttrs, reduce_scatter, elementwise,        \
    "x summed over ranks; rank r keeps block r of axis 0")                                         \
  X(MoeExpertsEp, moe_experts_ep, 8, 12,                                                           \
    "x, routing weights, offsets, perm, inv, w_gate, w_up, w_down, shared gate, shared up, "       \
    "shared down, shared gate weight",                                                             \
    ExpertParallelAttrs, moe_experts_ep, moe_experts,                                              \
    "moe_experts with the experts placed on ranks: rows dispatched and returned by all_to_all")

enum class OpKind : std::uint8_t {
#define PORTA_OP_ENUMERATOR(kind, ...) kind,
  PORTA_OP_LIST(PORTA_OP_ENUMERATOR)
#undef PORTA_OP_ENUMERATOR
};

inline constexpr int kOpKindCount = 0
#define PORTA_OP_COUNT_ONE(...) +1
    PORTA_OP_LIST(PORTA_OP_COUNT_ONE)
#undef PORTA_OP_COUNT_ONE
    ;

// ---- attributes -------------------------------------------------------------------------------

struct NoAttrs {
  friend bool operator==(const NoAttrs&, const NoAttrs&) = default;
};

struct MatmulAttrs {
  bool transpose_a = false;  // use a[..., K, M]
  bool transpose_b = false;  // use b[..., N, K] (the nn.Linear weight layout)
  friend bool operator==(const MatmulAttrs&, const MatmulAttrs&) = default;
};

enum class GeluApproximation { None, Tanh };
struct GeluAttrs {
  GeluApproximation approximation = GeluApproximation::None;
  friend bool operator==(const GeluAttrs&, const GeluAttrs&) = default;
};

struct AxisAttrs {  // softmax, concat
  int axis = -1;
  friend bool operator==(const AxisAttrs&, const AxisAttrs&) = default;
};

struct NormAttrs {  // rms_norm, layer_norm
  float eps = 1e-6f;
  friend bool operator==(const NormAttrs&, const NormAttrs&) = default;
};

enum class RopeLayout {
  NeoX,         // rotate halves: pairs (i, i + d/2) (GPT-NeoX, Llama, Qwen, Mixtral)
  Interleaved,  // rotate adjacent pairs (2i, 2i + 1) (GPT-J; DeepSeek's q_pe/k_pe)
};
enum class RopeScalingType { None, Linear, Yarn };

// YaRN as DeepSeek configs state it (rope_scaling: factor, original_max_position_embeddings,
// beta_fast, beta_slow, mscale, mscale_all_dim). The cos/sin tables are multiplied by
// yarn_mscale(factor, mscale) / yarn_mscale(factor, mscale_all_dim); the softmax-scale correction
// (mscale_all_dim) belongs to attention's `scale` and is the model builder's to apply.
struct RopeScaling {
  RopeScalingType type = RopeScalingType::None;
  float factor = 1.0f;
  std::int64_t original_max_position = 4096;
  float beta_fast = 32.0f;
  float beta_slow = 1.0f;
  float mscale = 1.0f;
  float mscale_all_dim = 0.0f;
  friend bool operator==(const RopeScaling&, const RopeScaling&) = default;
};

struct RopeAttrs {
  float theta = 10000.0f;
  std::int64_t rotary_dim = 0;  // leading dims of D rotated; 0 means all of D
  RopeLayout layout = RopeLayout::NeoX;
  RopeScaling scaling;
  friend bool operator==(const RopeAttrs&, const RopeAttrs&) = default;
};

struct ReshapeAttrs {
  std::vector<std::int64_t> shape;  // one entry may be -1
  friend bool operator==(const ReshapeAttrs&, const ReshapeAttrs&) = default;
};

struct PermuteAttrs {
  std::vector<int> perm;  // output axis i is input axis perm[i]
  friend bool operator==(const PermuteAttrs&, const PermuteAttrs&) = default;
};

struct SliceAttrs {
  int axis = 0;
  std::int64_t start = 0;
  std::int64_t end = 0;  // exclusive; negative counts from the end
  std::int64_t step = 1;
  friend bool operator==(const SliceAttrs&, const SliceAttrs&) = default;
};

struct CastAttrs {
  DType to = DType::F32;
  friend bool operator==(const CastAttrs&, const CastAttrs&) = default;
};

struct TopKAttrs {
  std::int64_t k = 1;
  bool largest = true;  // sorted by value, ties by lower index; NaN ranks below everything
  friend bool operator==(const TopKAttrs&, const TopKAttrs&) = default;
};

// q[Tq, Hq, Dk], k[Tk, Hkv, Dk], v[Tk, Hkv, Dv] -> [Tq, Hq, Dv]; Hq a multiple of Hkv (GQA).
// With a KV cache the op also takes k_cache[S, Hkv, Dk], v_cache[S, Hkv, Dv] and cache_len[1]
// (int32/int64, read at run time): the keys are cache[0:cache_len] followed by k. Causal masking
// aligns the queries with the last Tq key positions.
struct AttentionAttrs {
  bool causal = true;
  float scale = 0.0f;  // 0 means 1/sqrt(Dk)
  bool kv_cache = false;
  friend bool operator==(const AttentionAttrs&, const AttentionAttrs&) = default;
};

struct MoePermuteAttrs {
  std::int64_t top_k = 1;
  friend bool operator==(const MoePermuteAttrs&, const MoePermuteAttrs&) = default;
};

// The quantized ops (quant_matmul, quant_grouped_matmul, quant_moe_experts, quant_embedding): the
// weight's scheme (one for gate, up and down) and how activations are quantized (quant_embedding
// has none: ActivationQuant::None); act_scale and act_offset are the per-tensor parameters of
// ActivationQuant::StaticInt8 (docs/quantization.md).
struct QuantAttrs {
  QuantScheme scheme;
  ActivationQuant activation = ActivationQuant::None;
  float act_scale = 1.0f;
  float act_offset = 0.0f;
  friend bool operator==(const QuantAttrs&, const QuantAttrs&) = default;
};

// The collectives' attributes. `ranks`: the communicator size the graph is built for (compile
// checks it). all_to_all: x [R, ...] and send_counts [ranks] (i32: rows for each rank, in rank
// order, summing to at most R); outputs rows [capacity, ...] (received rows first, in rank order,
// zero rows after) and recv_counts [ranks] (i32). all_gather: [R, ...] -> [ranks·R, ...].
// all_reduce: same shape, f32 sums in rank order. reduce_scatter: [ranks·R, ...] -> [R, ...].
struct CollectiveAttrs {
  std::int64_t ranks = 1;
  std::int64_t capacity = 0;  // all_to_all only
  friend bool operator==(const CollectiveAttrs&, const CollectiveAttrs&) = default;
};

// moe_experts_ep: moe_experts' inputs, except that w_gate, w_up, w_down hold this rank's slots
// only ([slots on `rank`, I, H], in placement order). Every rank holds all T rows of x and the
// same routing; rank r dispatches the assignments of tokens [r·T/ranks, (r+1)·T/ranks) and the
// outputs are gathered, so every rank's output is the whole [T, H].
struct ExpertParallelAttrs {
  moe::ExpertsAttrs experts;
  std::int64_t rank = 0;
  ep::ExpertPlacement placement;
  friend bool operator==(const ExpertParallelAttrs&, const ExpertParallelAttrs&) = default;
};

using OpAttrs = std::variant<NoAttrs, MatmulAttrs, GeluAttrs, AxisAttrs, NormAttrs, RopeAttrs,
                             ReshapeAttrs, PermuteAttrs, SliceAttrs, CastAttrs, TopKAttrs,
                             AttentionAttrs, moe::RouterAttrs, MoePermuteAttrs, moe::ExpertsAttrs,
                             QuantAttrs, CollectiveAttrs, ExpertParallelAttrs>;

// ---- catalogue queries ------------------------------------------------------------------------

struct OpInfo {
  OpKind kind;
  std::string_view name;  // "matmul", "rms_norm", "moe_router", ...
  int min_inputs;
  int max_inputs;          // -1: variadic
  std::string_view roles;  // "x, weight": input names by position, for messages
  std::string_view summary;
};

const OpInfo& op_info(OpKind kind);
std::string_view op_name(OpKind kind);
// Throws porta::Error (NotFound) naming the unknown op and listing the known ones.
OpKind parse_op(std::string_view name);
std::span<const OpInfo> all_ops();

// Named attribute values, as configs and the command line spell them.
RopeLayout parse_rope_layout(std::string_view name);                // "neox", "interleaved"
GeluApproximation parse_gelu_approximation(std::string_view name);  // "none", "tanh"

}  // namespace porta
PORTA_API_END
