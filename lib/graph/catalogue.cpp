// The op table and each op's shape/dtype rule. Every rule checks everything that can be checked
// before data exists, so that a graph that was built is well-typed.
#include "graph/catalogue.hpp"
#include "quant/quant_layout.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <porta/ggml_quants.hpp>

namespace porta {

namespace {

constexpr std::array<OpInfo, kOpKindCount> kOps{{
#define PORTA_OP_INFO(kind, name, min_inputs, max_inputs, roles, Attrs, rule, cost, summary) \
  {OpKind::kind, #name, min_inputs, max_inputs, roles, summary},
    PORTA_OP_LIST(PORTA_OP_INFO)
#undef PORTA_OP_INFO
}};

// The table is generated in enumerator order, so kOps[i].kind == i; checked once here.
constexpr bool table_in_enum_order() {
  for (std::size_t i = 0; i < kOps.size(); ++i)
    if (static_cast<std::size_t>(kOps[i].kind) != i) return false;
  return true;
}
static_assert(table_in_enum_order());

template <class E>
E parse_named(std::string_view name, std::initializer_list<std::pair<std::string_view, E>> table,
              std::string_view what) {
  std::vector<std::string_view> known;
  for (const auto& [text, value] : table) {
    if (text == name) return value;
    known.push_back(text);
  }
  throw Error(ErrorCode::InvalidArgument, fmt::format("unknown {} '{}' (expected one of: {})", what,
                                                      name, fmt::join(known, ", ")));
}

}  // namespace

const OpInfo& op_info(OpKind kind) {
  const auto index = static_cast<std::size_t>(kind);
  if (index >= kOps.size())
    throw Error(ErrorCode::InvalidArgument, fmt::format("unknown op kind {}", index));
  return kOps[index];
}

std::string_view op_name(OpKind kind) { return op_info(kind).name; }

OpKind parse_op(std::string_view name) {
  for (const auto& op : kOps)
    if (op.name == name) return op.kind;
  std::vector<std::string_view> names;
  for (const auto& op : kOps) names.push_back(op.name);
  throw Error(ErrorCode::NotFound,
              fmt::format("unknown op '{}' (known ops: {})", name, fmt::join(names, ", ")));
}

std::span<const OpInfo> all_ops() { return kOps; }

RopeLayout parse_rope_layout(std::string_view name) {
  return parse_named<RopeLayout>(
      name, {{"neox", RopeLayout::NeoX}, {"interleaved", RopeLayout::Interleaved}}, "rope layout");
}

GeluApproximation parse_gelu_approximation(std::string_view name) {
  return parse_named<GeluApproximation>(
      name, {{"none", GeluApproximation::None}, {"tanh", GeluApproximation::Tanh}},
      "gelu approximation");
}

}  // namespace porta

namespace porta::detail {

namespace {

// Everything a shape rule needs, and one way to fail that names the op, node and operands.
class Rule {
 public:
  Rule(const GraphState& g, OpKind op, const std::vector<ValueId>& inputs, const std::string& node)
      : g_(g), op_(op), inputs_(inputs), node_(node) {}

  const ValueInfo& in(std::size_t i) const { return g_.values[inputs_[i]]; }
  const Shape& shape(std::size_t i) const { return in(i).shape; }
  DType dtype(std::size_t i) const { return in(i).dtype; }
  std::size_t count() const { return inputs_.size(); }

  [[noreturn]] void fail(ErrorCode code, const std::string& why) const {
    std::vector<std::string> operands;
    for (std::size_t i = 0; i < inputs_.size(); ++i)
      operands.push_back(
          fmt::format("{} {}{}", in(i).name, dtype_name(dtype(i)), shape(i).to_string()));
    throw Error(code, fmt::format("{} '{}': {} (operands: {})", op_name(op_), node_, why,
                                  operands.empty() ? "none"
                                                   : fmt::format("{}", fmt::join(operands, ", "))));
  }
  void require(bool ok, ErrorCode code, const std::string& why) const {
    if (!ok) fail(code, why);
  }
  // The input's role as the op list names it ("weight", "positions"), for messages.
  std::string role(std::size_t i) const {
    std::string_view roles = op_info(op_).roles;
    for (std::size_t at = 0; !roles.empty(); ++at) {
      const auto comma = roles.find(", ");
      const auto name = roles.substr(0, comma);
      if (at == i) return fmt::format("{} (input {})", name, i);
      if (comma == std::string_view::npos) break;
      roles.remove_prefix(comma + 2);
    }
    return fmt::format("input {}", i);
  }
  void require_float(std::size_t i) const {
    require(
        is_floating(dtype(i)), ErrorCode::DTypeMismatch,
        fmt::format("{} must be a floating-point tensor, not {}", role(i), dtype_name(dtype(i))));
  }
  void require_integer(std::size_t i) const {
    require(dtype(i) == DType::I32 || dtype(i) == DType::I64, ErrorCode::DTypeMismatch,
            fmt::format("{} must be an i32 or i64 tensor, not {}", role(i), dtype_name(dtype(i))));
  }
  void require_dtype(std::size_t i, DType t) const {
    require(dtype(i) == t, ErrorCode::DTypeMismatch,
            fmt::format("{} must be {}, not {}", role(i), dtype_name(t), dtype_name(dtype(i))));
  }
  void require_rank(std::size_t i, int rank) const {
    require(shape(i).rank() == rank, ErrorCode::ShapeMismatch,
            fmt::format("{} must have rank {}, not {}", role(i), rank, shape(i).rank()));
  }
  OpKind op() const { return op_; }
  int axis(int axis, int rank) const {
    require(axis >= -rank && axis < rank, ErrorCode::InvalidArgument,
            fmt::format("axis {} is out of range for rank {}", axis, rank));
    return axis < 0 ? axis + rank : axis;
  }

 private:
  const GraphState& g_;
  OpKind op_;
  const std::vector<ValueId>& inputs_;
  const std::string& node_;
};

using Outputs = std::vector<OutputSpec>;

Outputs matmul_rule(const Rule& r, const MatmulAttrs& a) {
  r.require_float(0);
  r.require_float(1);
  const Shape& sa = r.shape(0);
  const Shape& sb = r.shape(1);
  r.require(sa.rank() >= 2 && sb.rank() >= 2, ErrorCode::ShapeMismatch,
            "both operands need rank >= 2");
  const auto m = a.transpose_a ? sa[-1] : sa[-2];
  const auto ka = a.transpose_a ? sa[-2] : sa[-1];
  const auto kb = a.transpose_b ? sb[-1] : sb[-2];
  const auto n = a.transpose_b ? sb[-2] : sb[-1];
  r.require(ka == kb, ErrorCode::ShapeMismatch,
            fmt::format("inner dimensions differ: K = {} for a, {} for b", ka, kb));
  Shape batch_a(std::vector<std::int64_t>(sa.dims().begin(), sa.dims().end() - 2));
  Shape batch_b(std::vector<std::int64_t>(sb.dims().begin(), sb.dims().end() - 2));
  Shape batch;
  r.require(broadcast_shapes(batch_a, batch_b, batch), ErrorCode::ShapeMismatch,
            "batch dimensions do not broadcast");
  auto dims = batch.dims();
  dims.push_back(m);
  dims.push_back(n);
  return {{Shape(std::move(dims)), r.dtype(0)}};
}

Outputs binary_rule(const Rule& r, const NoAttrs&) {
  const OpKind op = r.op();
  r.require(r.dtype(0) == r.dtype(1), ErrorCode::DTypeMismatch, "operands have different dtypes");
  const DType t = r.dtype(0);
  const bool integer_ok = op != OpKind::Div && (t == DType::I32 || t == DType::I64);
  r.require(is_floating(t) || integer_ok, ErrorCode::DTypeMismatch,
            fmt::format("{} is not supported for {}", dtype_name(t),
                        op == OpKind::Div ? "div (floating point only)" : "arithmetic"));
  Shape out;
  r.require(broadcast_shapes(r.shape(0), r.shape(1), out), ErrorCode::ShapeMismatch,
            "shapes do not broadcast");
  return {{out, t}};
}

Outputs unary_float_rule(const Rule& r, const NoAttrs& = {}) {
  r.require_float(0);
  return {{r.shape(0), r.dtype(0)}};
}

Outputs norm_rule(const Rule& r, const NormAttrs& a) {
  r.require(a.eps >= 0, ErrorCode::InvalidArgument, "eps must be >= 0");
  r.require_float(0);
  r.require(r.shape(0).rank() >= 1, ErrorCode::ShapeMismatch, "x needs rank >= 1");
  const auto h = r.shape(0)[-1];
  for (std::size_t i = 1; i < r.count(); ++i) {
    r.require_float(i);
    r.require(r.shape(i) == Shape{h}, ErrorCode::ShapeMismatch,
              fmt::format("input {} must have shape [{}] (the last dimension of x)", i, h));
  }
  return {{r.shape(0), r.dtype(0)}};
}

Outputs rope_rule(const Rule& r, const RopeAttrs& a) {
  r.require_float(0);
  r.require_integer(1);
  const Shape& x = r.shape(0);
  r.require(x.rank() == 2 || x.rank() == 3, ErrorCode::ShapeMismatch,
            "x must be [T, H, D] or [T, D]");
  r.require(r.shape(1) == Shape{x[0]}, ErrorCode::ShapeMismatch,
            fmt::format("positions must have shape [{}] (one per token)", x[0]));
  const auto d = x[-1];
  const auto rot = a.rotary_dim == 0 ? d : a.rotary_dim;
  r.require(rot > 0 && rot <= d && rot % 2 == 0, ErrorCode::InvalidArgument,
            fmt::format("rotary_dim {} must be even and within the head dimension {}", rot, d));
  r.require(a.theta > 0, ErrorCode::InvalidArgument, "theta must be positive");
  r.require(a.layout == RopeLayout::NeoX || a.layout == RopeLayout::Interleaved,
            ErrorCode::InvalidArgument, "unknown rope layout");
  const auto& s = a.scaling;
  r.require(s.type == RopeScalingType::None || s.type == RopeScalingType::Linear ||
                s.type == RopeScalingType::Yarn,
            ErrorCode::InvalidArgument, "unknown rope scaling type");
  if (s.type != RopeScalingType::None)
    r.require(s.factor > 0, ErrorCode::InvalidArgument, "rope scaling factor must be positive");
  if (s.type == RopeScalingType::Yarn)
    r.require(s.original_max_position > 0 && s.beta_fast > 0 && s.beta_slow > 0,
              ErrorCode::InvalidArgument,
              "YaRN needs a positive original_max_position, beta_fast and beta_slow");
  return {{x, r.dtype(0)}};
}

Outputs embedding_rule(const Rule& r, const NoAttrs&) {
  r.require_rank(0, 2);
  r.require_integer(1);
  auto dims = r.shape(1).dims();
  dims.push_back(r.shape(0)[1]);
  return {{Shape(std::move(dims)), r.dtype(0)}};
}

Outputs reshape_rule(const Rule& r, const ReshapeAttrs& a) {
  const auto total = r.shape(0).numel();
  std::int64_t known = 1;
  int inferred = -1;
  auto dims = a.shape;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == -1) {
      r.require(inferred < 0, ErrorCode::InvalidArgument, "at most one dimension may be -1");
      inferred = static_cast<int>(i);
    } else {
      r.require(dims[i] >= 0, ErrorCode::InvalidArgument,
                fmt::format("invalid target dimension {}", dims[i]));
      known *= dims[i];
    }
  }
  if (inferred >= 0) {
    r.require(known > 0 && total % known == 0, ErrorCode::ShapeMismatch,
              fmt::format("cannot infer the -1 dimension of [{}]", fmt::join(a.shape, ", ")));
    dims[static_cast<std::size_t>(inferred)] = total / known;
    known *= dims[static_cast<std::size_t>(inferred)];
  }
  r.require(known == total, ErrorCode::ShapeMismatch,
            fmt::format("cannot reshape {} elements to [{}]", total, fmt::join(a.shape, ", ")));
  return {{Shape(std::move(dims)), r.dtype(0)}};
}

Outputs permute_rule(const Rule& r, const PermuteAttrs& a) {
  const int rank = r.shape(0).rank();
  std::vector<int> sorted = a.perm;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int> identity(static_cast<std::size_t>(rank));
  std::iota(identity.begin(), identity.end(), 0);
  r.require(sorted == identity, ErrorCode::InvalidArgument,
            fmt::format("[{}] is not a permutation of {} axes", fmt::join(a.perm, ", "), rank));
  std::vector<std::int64_t> dims;
  for (int axis : a.perm) dims.push_back(r.shape(0)[axis]);
  return {{Shape(std::move(dims)), r.dtype(0)}};
}

Outputs slice_rule(const Rule& r, const SliceAttrs& a) {
  const Shape& x = r.shape(0);
  const int axis = r.axis(a.axis, x.rank());
  r.require(a.step >= 1, ErrorCode::InvalidArgument,
            fmt::format("step must be >= 1, not {}", a.step));
  const auto n = x[axis];
  auto clamp_index = [n](std::int64_t i) {
    return std::clamp<std::int64_t>(i < 0 ? i + n : i, 0, n);
  };
  const auto start = clamp_index(a.start);
  const auto end = clamp_index(a.end);
  const auto len = end > start ? (end - start + a.step - 1) / a.step : 0;
  auto dims = x.dims();
  dims[static_cast<std::size_t>(axis)] = len;
  return {{Shape(std::move(dims)), r.dtype(0)}};
}

Outputs concat_rule(const Rule& r, const AxisAttrs& a) {
  const Shape& first = r.shape(0);
  const int axis = r.axis(a.axis, first.rank());
  auto dims = first.dims();
  for (std::size_t i = 1; i < r.count(); ++i) {
    r.require(r.dtype(i) == r.dtype(0), ErrorCode::DTypeMismatch, "inputs have different dtypes");
    r.require(r.shape(i).rank() == first.rank(), ErrorCode::ShapeMismatch,
              "inputs have different ranks");
    for (int d = 0; d < first.rank(); ++d)
      if (d != axis)
        r.require(r.shape(i)[d] == first[d], ErrorCode::ShapeMismatch,
                  fmt::format("input {} differs in dimension {} (not the concat axis)", i, d));
    dims[static_cast<std::size_t>(axis)] += r.shape(i)[axis];
  }
  return {{Shape(std::move(dims)), r.dtype(0)}};
}

Outputs softmax_rule(const Rule& r, const AxisAttrs& a) {
  r.require_float(0);
  r.require(r.shape(0).rank() >= 1, ErrorCode::ShapeMismatch, "softmax needs rank >= 1");
  r.axis(a.axis, r.shape(0).rank());
  return {{r.shape(0), r.dtype(0)}};
}

Outputs top_k_rule(const Rule& r, const TopKAttrs& a) {
  r.require(r.shape(0).rank() >= 1, ErrorCode::ShapeMismatch, "top_k needs rank >= 1");
  r.require(a.k >= 1 && a.k <= r.shape(0)[-1], ErrorCode::InvalidArgument,
            fmt::format("k = {} must be in [1, {}] (the last dimension)", a.k, r.shape(0)[-1]));
  auto dims = r.shape(0).dims();
  dims.back() = a.k;
  return {{Shape(dims), r.dtype(0)}, {Shape(dims), DType::I32}};
}

Outputs swiglu_rule(const Rule& r, const NoAttrs&) {
  r.require_float(0);
  r.require(r.dtype(0) == r.dtype(1), ErrorCode::DTypeMismatch,
            "gate and up have different dtypes");
  r.require(r.shape(0) == r.shape(1), ErrorCode::ShapeMismatch,
            "gate and up have different shapes");
  return {{r.shape(0), r.dtype(0)}};
}

Outputs attention_rule(const Rule& r, const AttentionAttrs& a) {
  r.require(r.count() == (a.kv_cache ? 6u : 3u), ErrorCode::InvalidArgument,
            a.kv_cache ? "with kv_cache the inputs are q, k, v, k_cache, v_cache, cache_len"
                       : "the inputs are q, k, v (set kv_cache to pass a cache)");
  for (std::size_t i = 0; i < 3; ++i) {
    r.require_float(i);
    r.require_rank(i, 3);
  }
  const Shape& q = r.shape(0);
  const Shape& k = r.shape(1);
  const Shape& v = r.shape(2);
  r.require(q[2] == k[2], ErrorCode::ShapeMismatch,
            fmt::format("q and k head sizes differ ({} vs {})", q[2], k[2]));
  r.require(k[0] == v[0] && k[1] == v[1], ErrorCode::ShapeMismatch, "k and v must agree in [T, H]");
  r.require(k[1] > 0 && q[1] % k[1] == 0, ErrorCode::ShapeMismatch,
            fmt::format("query heads ({}) must be a multiple of key/value heads ({})", q[1], k[1]));
  r.require(a.scale >= 0, ErrorCode::InvalidArgument, "scale must be >= 0 (0 means 1/sqrt(Dk))");
  if (a.kv_cache) {
    r.require_rank(3, 3);
    r.require_rank(4, 3);
    r.require(r.dtype(3) == r.dtype(1) && r.dtype(4) == r.dtype(2), ErrorCode::DTypeMismatch,
              "caches must have the dtypes of k and v");
    r.require(r.shape(3)[1] == k[1] && r.shape(3)[2] == k[2], ErrorCode::ShapeMismatch,
              "k_cache must be [S, Hkv, Dk]");
    r.require(r.shape(4)[1] == v[1] && r.shape(4)[2] == v[2] && r.shape(4)[0] == r.shape(3)[0],
              ErrorCode::ShapeMismatch, "v_cache must be [S, Hkv, Dv] with k_cache's S");
    r.require_integer(5);
    r.require(r.shape(5) == Shape{1}, ErrorCode::ShapeMismatch, "cache_len must have shape [1]");
  }
  return {{Shape{q[0], q[1], v[2]}, r.dtype(0)}};
}

Outputs moe_router_rule(const Rule& r, const moe::RouterAttrs& a) {
  const auto check_enum = [&](int value, int count, const char* name) {
    r.require(value >= 0 && value < count, ErrorCode::InvalidArgument,
              fmt::format("unknown {} value {}", name, value));
  };
  check_enum(static_cast<int>(a.score), 4, "score");
  check_enum(static_cast<int>(a.select_on), 2, "select_on");
  check_enum(static_cast<int>(a.group_score), 2, "group_score");
  check_enum(static_cast<int>(a.mode), 3, "mode");
  // Inputs are positional: logits [, bias] [, valid] [, token_ids, hash_table].
  const bool hash = a.mode == moe::Mode::Hash;
  const std::size_t bias_at = 1;
  const std::size_t valid_at = bias_at + (a.use_bias ? 1 : 0);
  const std::size_t ids_at = valid_at + (a.use_valid ? 1 : 0);
  const std::size_t expected = ids_at + (hash ? 2 : 0);
  if (r.count() != expected) {
    std::vector<std::string> names{"logits"};
    if (a.use_bias) names.emplace_back("bias");
    if (a.use_valid) names.emplace_back("valid");
    if (hash) names.insert(names.end(), {"token_ids", "hash_table"});
    r.fail(ErrorCode::InvalidArgument,
           fmt::format("these attributes (use_bias {}, use_valid {}, mode {}) take {} input(s): "
                       "{}; {} were given{}",
                       a.use_bias, a.use_valid, moe::to_string(a.mode), expected,
                       fmt::join(names, ", "), r.count(),
                       a.use_bias ? "" : " (a bias input needs use_bias)"));
  }
  r.require(r.dtype(0) == DType::F32 || r.dtype(0) == DType::F16 || r.dtype(0) == DType::BF16,
            ErrorCode::DTypeMismatch, "logits must be f32, f16 or bf16");
  r.require(r.shape(0).rank() == 2, ErrorCode::ShapeMismatch, "logits must be 2-D [T, E]");
  const auto e = a.num_experts;
  const auto k = a.top_k;
  r.require(r.shape(0)[1] == e, ErrorCode::ShapeMismatch,
            fmt::format("logits have {} columns but num_experts is {}", r.shape(0)[1], e));
  r.require(e >= 1, ErrorCode::InvalidArgument, "num_experts must be >= 1");
  r.require(k >= 1 && k <= e, ErrorCode::InvalidArgument,
            fmt::format("top_k = {} must be in [1, num_experts = {}]", k, e));
  r.require(a.num_groups >= 1 && e % a.num_groups == 0, ErrorCode::InvalidArgument,
            fmt::format("num_experts {} is not divisible by num_groups {}", e, a.num_groups));
  r.require(
      a.topk_groups >= 1 && a.topk_groups <= a.num_groups, ErrorCode::InvalidArgument,
      fmt::format("topk_groups {} must be in [1, num_groups = {}]", a.topk_groups, a.num_groups));
  r.require(k <= a.topk_groups * (e / a.num_groups), ErrorCode::InvalidArgument,
            fmt::format("top_k {} exceeds the {} experts of the {} kept groups", k,
                        a.topk_groups * (e / a.num_groups), a.topk_groups));
  r.require(
      !(a.group_score == moe::GroupScore::Top2Sum && a.num_groups > 1 && e / a.num_groups < 2),
      ErrorCode::InvalidArgument, "group_score top2_sum needs at least 2 experts per group");
  r.require(a.renorm_eps >= 0 && a.capacity_factor >= 0 && a.block_size >= 1,
            ErrorCode::InvalidArgument,
            "renorm_eps and capacity_factor must be >= 0, block_size >= 1");
  if (a.mode != moe::Mode::TokenChoice) {
    // Neither a per-expert bias nor groups can change what these modes choose: a hash table
    // fixes the experts, and a bias adds the same amount to every token an expert ranks.
    r.require(!a.use_bias, ErrorCode::InvalidArgument,
              fmt::format("a selection bias has no effect in mode {}", moe::to_string(a.mode)));
    r.require(
        a.num_groups == 1, ErrorCode::InvalidArgument,
        fmt::format("group-limited routing (num_groups {}) needs mode token_choice", a.num_groups));
  }
  const auto t = r.shape(0)[0];
  if (a.use_bias) {
    r.require_dtype(bias_at, DType::F32);
    r.require(r.shape(bias_at) == Shape{e}, ErrorCode::ShapeMismatch,
              fmt::format("bias must have shape [{}] (num_experts)", e));
  }
  if (a.use_valid) {
    r.require(r.dtype(valid_at) == DType::I8 || r.dtype(valid_at) == DType::I32 ||
                  r.dtype(valid_at) == DType::I64,
              ErrorCode::DTypeMismatch, "valid must be i8, i32 or i64 (0 marks a padding row)");
    r.require(r.shape(valid_at) == Shape{t}, ErrorCode::ShapeMismatch,
              fmt::format("valid must have shape [{}] (one flag per logits row)", t));
  }
  if (hash) {
    r.require_integer(ids_at);
    r.require(r.shape(ids_at) == Shape{t}, ErrorCode::ShapeMismatch,
              fmt::format("token_ids must have shape [{}] (one id per logits row)", t));
    r.require_dtype(ids_at + 1, DType::I32);
    r.require(r.shape(ids_at + 1).rank() == 2 && r.shape(ids_at + 1)[1] == k,
              ErrorCode::ShapeMismatch,
              fmt::format("hash_table must be [V, {}] (top_k experts per token id)", k));
  }
  const auto slots = moe::slots_per_token(a);
  return {{Shape{t, slots}, DType::I32},
          {Shape{t, slots}, DType::F32},
          {Shape{e}, DType::I32},
          {Shape{e + 1}, DType::I32},
          {Shape{moe::perm_rows(a, t)}, DType::I32},
          {Shape{t * slots}, DType::I32},
          {Shape{e}, DType::I32},
          {Shape{t}, DType::I32},
          {Shape{e}, DType::F32}};
}

Outputs moe_permute_rule(const Rule& r, const MoePermuteAttrs& a) {
  r.require_rank(0, 2);
  r.require_dtype(1, DType::I32);
  r.require_rank(1, 1);
  r.require(a.top_k >= 1, ErrorCode::InvalidArgument, "top_k must be >= 1");
  return {{Shape{r.shape(1)[0], r.shape(0)[1]}, r.dtype(0)}};
}

Outputs grouped_matmul_rule(const Rule& r, const NoAttrs&) {
  r.require_float(0);
  r.require_float(1);
  r.require_rank(0, 2);
  r.require_rank(1, 3);
  r.require_dtype(2, DType::I32);
  const auto e = r.shape(1)[0];
  r.require(r.shape(2) == Shape{e + 1}, ErrorCode::ShapeMismatch,
            fmt::format("offsets must have shape [{}] (experts + 1)", e + 1));
  r.require(r.shape(1)[2] == r.shape(0)[1], ErrorCode::ShapeMismatch,
            fmt::format("weights are [E, N, H] with H = {} but rows have {} columns", r.shape(1)[2],
                        r.shape(0)[1]));
  return {{Shape{r.shape(0)[0], r.shape(1)[1]}, r.dtype(0)}};
}

Outputs moe_combine_rule(const Rule& r, const NoAttrs&) {
  r.require_float(0);
  r.require_rank(0, 2);
  r.require_dtype(1, DType::F32);
  r.require_rank(1, 2);
  r.require_dtype(2, DType::I32);
  const auto t = r.shape(1)[0];
  const auto k = r.shape(1)[1];
  r.require(r.shape(2) == Shape{t * k}, ErrorCode::ShapeMismatch,
            fmt::format("inv must have shape [{}] (T·K)", t * k));
  return {{Shape{t, r.shape(0)[1]}, r.dtype(0)}};
}

// The inputs every routed-experts op starts with: x [T, H], routing weights [T, K] f32, offsets,
// perm and inv (i32, inv [T·K]). Returns {T, H, K}.
std::array<std::int64_t, 3> check_routed_rows(const Rule& r) {
  r.require_float(0);
  r.require_rank(0, 2);
  const auto t = r.shape(0)[0];
  const auto h = r.shape(0)[1];
  r.require_dtype(1, DType::F32);
  r.require(r.shape(1).rank() == 2 && r.shape(1)[0] == t, ErrorCode::ShapeMismatch,
            "routing weights must be [T, K]");
  const auto k = r.shape(1)[1];
  r.require_dtype(2, DType::I32);
  r.require_dtype(3, DType::I32);
  r.require_dtype(4, DType::I32);
  r.require(r.shape(4) == Shape{t * k}, ErrorCode::ShapeMismatch, "inv must be [T·K]");
  return {t, h, k};
}

// `logical_experts`: the experts offsets count, when the weights hold other slots than those
// (moe_experts_ep: this rank's slots); 0: the weights' E.
Outputs moe_experts_inputs_rule(const Rule& r, const moe::ExpertsAttrs& a,
                                std::int64_t logical_experts) {
  // x, weights, offsets, perm, inv, w_gate, w_up, w_down [, s_gate, s_up, s_down [, s_gate_w]]
  const std::size_t expected = 8 + (a.has_shared ? 3 : 0) +
                               (a.has_shared && a.shared_gate == moe::SharedGate::Sigmoid ? 1 : 0);
  r.require(r.count() == expected, ErrorCode::InvalidArgument,
            fmt::format("expected {} inputs for these attributes, got {}", expected, r.count()));
  const auto [t, h, k] = check_routed_rows(r);
  for (std::size_t i = 5; i < 8; ++i) {
    r.require_float(i);
    r.require_rank(i, 3);
  }
  const auto e = r.shape(5)[0];
  const auto inter = r.shape(5)[1];
  r.require(r.shape(5) == (Shape{e, inter, h}) && r.shape(6) == (Shape{e, inter, h}),
            ErrorCode::ShapeMismatch, fmt::format("gate and up weights must be [E, I, {}]", h));
  r.require(r.shape(7) == (Shape{e, h, inter}), ErrorCode::ShapeMismatch,
            fmt::format("down weights must be [{}, {}, {}]", e, h, inter));
  const auto routed = logical_experts > 0 ? logical_experts : e;
  r.require(r.shape(2) == Shape{routed + 1}, ErrorCode::ShapeMismatch,
            fmt::format("offsets must be [E + 1] = [{}]", routed + 1));
  if (a.has_shared) {
    for (std::size_t i = 8; i < r.count(); ++i) {
      r.require_float(i);
      r.require_rank(i, 2);
    }
    const auto shared = r.shape(8)[0];
    r.require(r.shape(8) == (Shape{shared, h}) && r.shape(9) == (Shape{shared, h}) &&
                  r.shape(10) == (Shape{h, shared}),
              ErrorCode::ShapeMismatch, "shared expert weights must be [Is, H], [Is, H], [H, Is]");
    if (r.count() == 12)
      r.require(r.shape(11) == (Shape{1, h}), ErrorCode::ShapeMismatch,
                "shared gate weight must be [1, H]");
  }
  return {{r.shape(0), r.dtype(0)}};
}

// ---- quantized ops ----

// The activation mode against the scheme: int8 activations meet int8 weights only, and static
// parameters must be usable (docs/quantization.md).
void check_activation(const Rule& r, const QuantAttrs& a, bool allow_static) {
  switch (a.activation) {
    case ActivationQuant::None: return;
    case ActivationQuant::GgmlQ8:
      r.require(a.scheme.format == QuantFormat::GgmlBlocks, ErrorCode::InvalidArgument,
                fmt::format("activation: ggml_q8 activations need ggml block weights, not {}",
                            describe(a.scheme)));
      return;
    case ActivationQuant::StaticInt8:
      r.require(allow_static, ErrorCode::InvalidArgument,
                "activation: static_int8 has one scale per tensor; this op quantizes several "
                "activations (use dynamic_int8)");
      r.require(std::isfinite(a.act_scale) && a.act_scale > 0, ErrorCode::InvalidArgument,
                fmt::format("activation: act_scale = {} must be finite and positive", a.act_scale));
      r.require(a.act_offset == std::nearbyint(a.act_offset) && a.act_offset >= -128 &&
                    a.act_offset <= 127,
                ErrorCode::InvalidArgument,
                fmt::format("activation: act_offset = {} must be an integer in [-128, 127]",
                            a.act_offset));
      [[fallthrough]];
    case ActivationQuant::DynamicInt8:
      r.require(a.scheme.format == QuantFormat::Int8, ErrorCode::InvalidArgument,
                fmt::format("activation: {} activations need int8 weights, not {}",
                            to_string(a.activation), describe(a.scheme)));
      return;
  }
  r.fail(ErrorCode::InvalidArgument, "activation: unknown activation quantization");
}

// One quantized weight given as inputs data, scale[, zero] against its logical shape.
void check_quant_weight(const Rule& r, const QuantAttrs& a, std::size_t data, std::size_t scale,
                        std::optional<std::size_t> zero, const Shape& logical) {
  QuantLayout layout{r.shape(data), r.dtype(data), r.shape(scale), r.dtype(scale),
                     zero.has_value(), zero ? r.shape(*zero) : Shape{},
                     zero ? r.dtype(*zero) : DType::I8};
  const auto problem = quant_layout_problem(layout, logical, a.scheme);
  if (!problem) return;
  std::size_t at = data;
  if (problem->starts_with("scale")) at = scale;
  if (problem->starts_with("zero") && zero) at = *zero;
  r.fail(problem->starts_with("data") || problem->starts_with("scale") ? ErrorCode::ShapeMismatch
                                                                       : ErrorCode::InvalidArgument,
         fmt::format("{} ({}): {}", r.role(at), describe(a.scheme), *problem));
}


// The zero points come as the last input, `zero_input`, exactly when the scheme is asymmetric.
void require_zero_input(const Rule& r, const QuantAttrs& a, std::size_t zero_input) {
  r.require(a.scheme.zero_point == (r.count() == zero_input + 1), ErrorCode::InvalidArgument,
            fmt::format("zero (input {}): the scheme is {}", zero_input,
                        a.scheme.zero_point ? "asymmetric but no zero points are given"
                                            : "symmetric but zero points are given"));
}

Outputs quant_matmul_rule(const Rule& r, const QuantAttrs& a) {
  r.require_float(0);
  r.require(r.shape(0).rank() >= 1, ErrorCode::ShapeMismatch, "x (input 0) needs rank >= 1");
  r.require_rank(1, 2);
  require_zero_input(r, a, 3);
  const std::int64_t k = r.shape(0)[-1];
  const std::int64_t n = r.shape(1)[0];
  check_quant_weight(r, a, 1, 2, a.scheme.zero_point ? std::optional<std::size_t>(3) : std::nullopt,
                     Shape{n, k});
  check_activation(r, a, true);
  Shape out = r.shape(0);
  out[-1] = n;
  return {{out, r.dtype(0)}};
}

Outputs quant_grouped_matmul_rule(const Rule& r, const QuantAttrs& a) {
  r.require_float(0);
  r.require_rank(0, 2);
  r.require_dtype(1, DType::I32);
  r.require_rank(2, 3);
  require_zero_input(r, a, 4);
  const std::int64_t e = r.shape(2)[0];
  const std::int64_t n = r.shape(2)[1];
  r.require(r.shape(1) == Shape{e + 1}, ErrorCode::ShapeMismatch,
            fmt::format("offsets (input 1) must have shape [{}] (experts + 1)", e + 1));
  check_quant_weight(r, a, 2, 3, a.scheme.zero_point ? std::optional<std::size_t>(4) : std::nullopt,
                     Shape{e, n, r.shape(0)[1]});
  check_activation(r, a, true);
  return {{Shape{r.shape(0)[0], n}, r.dtype(0)}};
}

Outputs quant_moe_experts_rule(const Rule& r, const QuantAttrs& a) {
  // x, weights, offsets, perm, inv, gate/up/down data, gate/up/down scale [, gate/up/down zero]
  const std::size_t expected = a.scheme.zero_point ? 14 : 11;
  r.require(r.count() == expected, ErrorCode::InvalidArgument,
            fmt::format("expected {} inputs for a {} scheme, got {}", expected,
                        a.scheme.zero_point ? "asymmetric" : "symmetric", r.count()));
  const auto [t, h, k] = check_routed_rows(r);
  for (std::size_t i = 5; i < 8; ++i) r.require_rank(i, 3);
  const auto e = r.shape(5)[0];
  const auto inter = r.shape(5)[1];
  r.require(r.shape(2) == Shape{e + 1}, ErrorCode::ShapeMismatch, "offsets must be [E + 1]");
  const Shape gate_up{e, inter, h}, down{e, h, inter};
  for (std::size_t w = 0; w < 3; ++w)
    check_quant_weight(r, a, 5 + w, 8 + w,
                       a.scheme.zero_point ? std::optional<std::size_t>(11 + w) : std::nullopt,
                       w == 2 ? down : gate_up);
  check_activation(r, a, false);
  return {{r.shape(0), r.dtype(0)}};
}

// The table's row length H from its data's last dimension: the same for int8 and f8 codes, two
// codes a byte for int4, whole blocks for ggml.
std::int64_t quant_table_width(const Rule& r, const QuantAttrs& a, std::int64_t data_cols) {
  if (a.scheme.format == QuantFormat::Int4) return 2 * data_cols;
  if (a.scheme.format != QuantFormat::GgmlBlocks) return data_cols;
  if (auto problem = quant_scheme_problem(a.scheme, 0))
    r.fail(ErrorCode::InvalidArgument, *problem);
  const gguf::TypeTraits t = gguf::traits_of(a.scheme.ggml_type);
  const auto block_bytes = static_cast<std::int64_t>(t.block_bytes);
  r.require(data_cols % block_bytes == 0, ErrorCode::ShapeMismatch,
            fmt::format("data (input 1): rows of {} bytes are not whole {} blocks ({} bytes per {} "
                        "elements)",
                        data_cols, t.name, block_bytes, t.block_elements));
  return data_cols / block_bytes * static_cast<std::int64_t>(t.block_elements);
}

// quant_embedding(ids, data, scale[, zero]): rows of the logical [V, H] table, dequantized as
// its scheme defines, into f32 [ids..., H]. There is nothing to multiply, so no activation mode.
Outputs quant_embedding_rule(const Rule& r, const QuantAttrs& a) {
  r.require_integer(0);
  r.require_rank(1, 2);
  require_zero_input(r, a, 3);
  r.require(a.activation == ActivationQuant::None, ErrorCode::InvalidArgument,
            fmt::format("activation: a table lookup has no activations to quantize ({} given, "
                        "none only)",
                        to_string(a.activation)));
  const std::int64_t h = quant_table_width(r, a, r.shape(1)[1]);
  check_quant_weight(r, a, 1, 2, a.scheme.zero_point ? std::optional<std::size_t>(3) : std::nullopt,
                     Shape{r.shape(1)[0], h});
  auto dims = r.shape(0).dims();
  dims.push_back(h);
  return {{Shape(std::move(dims)), DType::F32}};
}

Outputs moe_experts_rule(const Rule& r, const moe::ExpertsAttrs& a) {
  return moe_experts_inputs_rule(r, a, 0);
}

// ---- collectives ----

void require_ranks(const Rule& r, const CollectiveAttrs& a) {
  r.require(a.ranks >= 1, ErrorCode::InvalidArgument,
            fmt::format("ranks must be >= 1, not {}", a.ranks));
}

Outputs all_to_all_rule(const Rule& r, const CollectiveAttrs& a) {
  require_ranks(r, a);
  r.require(r.shape(0).rank() >= 1, ErrorCode::ShapeMismatch, "x must have rank >= 1");
  r.require_dtype(1, DType::I32);
  r.require(r.shape(1) == Shape{a.ranks}, ErrorCode::ShapeMismatch,
            fmt::format("send_counts must be [ranks] = [{}]", a.ranks));
  r.require(a.capacity >= 0, ErrorCode::InvalidArgument,
            fmt::format("capacity must be >= 0, not {}", a.capacity));
  auto dims = r.shape(0).dims();
  dims[0] = a.capacity;
  return {{Shape(std::move(dims)), r.dtype(0)}, {Shape{a.ranks}, DType::I32}};
}

Outputs all_gather_rule(const Rule& r, const CollectiveAttrs& a) {
  require_ranks(r, a);
  r.require(r.shape(0).rank() >= 1, ErrorCode::ShapeMismatch, "x must have rank >= 1");
  auto dims = r.shape(0).dims();
  dims[0] *= a.ranks;
  return {{Shape(std::move(dims)), r.dtype(0)}};
}

Outputs all_reduce_rule(const Rule& r, const CollectiveAttrs& a) {
  require_ranks(r, a);
  r.require_float(0);
  return {{r.shape(0), r.dtype(0)}};
}

Outputs reduce_scatter_rule(const Rule& r, const CollectiveAttrs& a) {
  require_ranks(r, a);
  r.require_float(0);
  r.require(r.shape(0).rank() >= 1 && r.shape(0)[0] % a.ranks == 0, ErrorCode::ShapeMismatch,
            fmt::format("axis 0 of x must be a multiple of ranks ({})", a.ranks));
  auto dims = r.shape(0).dims();
  dims[0] /= a.ranks;
  return {{Shape(std::move(dims)), r.dtype(0)}};
}

Outputs moe_experts_ep_rule(const Rule& r, const ExpertParallelAttrs& a) {
  try {
    porta::ep::validate(a.placement);
  } catch (const Error& e) {
    r.fail(ErrorCode::InvalidArgument, e.what());
  }
  r.require(a.rank >= 0 && a.rank < a.placement.ranks(), ErrorCode::InvalidArgument,
            fmt::format("rank {} is not among the placement's {} ranks", a.rank,
                        a.placement.ranks()));
  const auto slots =
      static_cast<std::int64_t>(a.placement.rank_experts[static_cast<std::size_t>(a.rank)].size());
  Outputs out = moe_experts_inputs_rule(r, a.experts, a.placement.num_experts);
  r.require(r.shape(5)[0] == slots, ErrorCode::ShapeMismatch,
            fmt::format("w_gate holds {} experts but the placement gives rank {} {} slots",
                        r.shape(5)[0], a.rank, slots));
  return out;
}

Outputs gelu_rule(const Rule& r, const GeluAttrs& a) {
  r.require(
      a.approximation == GeluApproximation::None || a.approximation == GeluApproximation::Tanh,
      ErrorCode::InvalidArgument, "unknown gelu approximation");
  return unary_float_rule(r);
}

Outputs cast_rule(const Rule& r, const CastAttrs& a) {
  r.require(static_cast<int>(a.to) <= static_cast<int>(DType::F8E4M3), ErrorCode::InvalidArgument,
            "unknown target dtype");
  return {{r.shape(0), a.to}};
}

template <class A>
const A& attrs_as(const Rule& r, const OpAttrs& attrs) {
  const A* a = std::get_if<A>(&attrs);
  if (a == nullptr) r.fail(ErrorCode::InvalidArgument, "attributes of the wrong kind for this op");
  return *a;
}

}  // namespace

bool broadcast_shapes(const Shape& a, const Shape& b, Shape& out) {
  const int rank = std::max(a.rank(), b.rank());
  std::vector<std::int64_t> dims(static_cast<std::size_t>(rank));
  for (int i = 0; i < rank; ++i) {
    const int ia = a.rank() - rank + i;
    const int ib = b.rank() - rank + i;
    const auto da = ia >= 0 ? a.dims()[static_cast<std::size_t>(ia)] : 1;
    const auto db = ib >= 0 ? b.dims()[static_cast<std::size_t>(ib)] : 1;
    if (da != db && da != 1 && db != 1) return false;
    dims[static_cast<std::size_t>(i)] = da == 1 ? db : da;
  }
  out = Shape(std::move(dims));
  return true;
}

std::vector<OutputSpec> infer_outputs(const GraphState& g, OpKind op,
                                      const std::vector<ValueId>& inputs, const OpAttrs& attrs,
                                      const std::string& node_name) {
  const Rule r(g, op, inputs, node_name);
  const OpInfo& info = op_info(op);
  const auto n = static_cast<int>(inputs.size());
  if (n < info.min_inputs || (info.max_inputs >= 0 && n > info.max_inputs))
    r.fail(
        ErrorCode::InvalidArgument,
        info.max_inputs < 0 ? fmt::format("expects at least {} inputs, got {}", info.min_inputs, n)
        : info.min_inputs == info.max_inputs
            ? fmt::format("expects {} inputs, got {}", info.min_inputs, n)
            : fmt::format("expects {} to {} inputs, got {}", info.min_inputs, info.max_inputs, n));
  switch (op) {
#define PORTA_OP_RULE(kind, name, min_inputs, max_inputs, roles, Attrs, rule, cost, summary) \
  case OpKind::kind: return rule##_rule(r, attrs_as<Attrs>(r, attrs));
    PORTA_OP_LIST(PORTA_OP_RULE)
#undef PORTA_OP_RULE
  }
  r.fail(ErrorCode::InvalidArgument, "unknown op kind");
}

}  // namespace porta::detail
