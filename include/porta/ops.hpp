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
#include <porta/moe.hpp>

PORTA_API_BEGIN
namespace porta {

enum class OpKind : std::uint8_t {
  Matmul,  // a[..., M, K] · b[..., K, N] (optional transposes), batch dims broadcast
  Add,     // elementwise with NumPy broadcasting
  Sub,
  Mul,
  Div,
  Silu,  // x · sigmoid(x)
  Gelu,  // exact (erf) or tanh approximation
  Sigmoid,
  Exp,
  Softmax,    // along any axis
  RmsNorm,    // x / sqrt(mean(x²) + eps) · weight, over the last axis
  LayerNorm,  // (x - mean) / sqrt(var + eps) · weight (+ bias), over the last axis
  Rope,       // rotary position embedding of x[T, H, D] at positions[T]
  Embedding,  // rows of table[V, H] gathered by integer ids
  Reshape,
  Permute,        // transpose axes
  Slice,          // start:end:step along one axis
  Concat,         // along one axis
  Cast,           // dtype conversion
  TopK,           // k largest (or smallest) along the last axis: values and int32 indices
  Swiglu,         // silu(gate) · up
  Attention,      // scaled-dot-product attention, causal, GQA, optional KV cache
  MoeRouter,      // see moe.hpp and docs/moe-router.md
  MoePermute,     // token rows grouped by expert
  GroupedMatmul,  // ragged per-expert matmul
  MoeExperts,     // routed experts (gate/up → SwiGLU → down) plus optional shared experts
  MoeCombine,     // weighted sum of each token's expert outputs, fixed order
};

inline constexpr int kOpKindCount = static_cast<int>(OpKind::MoeCombine) + 1;

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

using OpAttrs = std::variant<NoAttrs, MatmulAttrs, GeluAttrs, AxisAttrs, NormAttrs, RopeAttrs,
                             ReshapeAttrs, PermuteAttrs, SliceAttrs, CastAttrs, TopKAttrs,
                             AttentionAttrs, moe::RouterAttrs, MoePermuteAttrs, moe::ExpertsAttrs>;

// ---- catalogue queries ------------------------------------------------------------------------

struct OpInfo {
  OpKind kind;
  std::string_view name;  // "matmul", "rms_norm", "moe_router", ...
  int min_inputs;
  int max_inputs;  // -1: variadic
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
