// add, sub, mul, div with NumPy broadcasting. oneDNN's binary primitive broadcasts its second
// operand only, so: the operand that keeps the output's shape goes first (operands of add and
// mul swap when needed), and when both broadcast (a[3, 1] + b[1, 5]), or sub/div broadcast their
// first operand, a strided loop of our own runs instead.
#include <fmt/format.h>

#include "cpu_util.hpp"
#include "dense_ops.hpp"
#include "op_algorithms.hpp"
#include "primitive_call.hpp"
#include "widened_io.hpp"

namespace porta::detail::cpu {

namespace {

struct BinaryEntry {
  OpKind op;
  BinaryAlgorithm algorithm;
};

const BinaryEntry kBinary[] = {
    {OpKind::Add, {dnnl::algorithm::binary_add, true}},
    {OpKind::Sub, {dnnl::algorithm::binary_sub, false}},
    {OpKind::Mul, {dnnl::algorithm::binary_mul, true}},
    {OpKind::Div, {dnnl::algorithm::binary_div, false}},
};

// The lowering asked for a binary op that has no algorithm: a table and lowering out of step.
dnnl::algorithm required_binary_algorithm(const Node& n) {
  if (auto a = binary_algorithm(n.op)) return a->algorithm;
  throw Error(ErrorCode::Internal,
              fmt::format("cpu: {} '{}' is not a binary op", op_name(n.op), n.name));
}

class BinaryPrimitiveKernel final : public CpuKernel {
 public:
  BinaryPrimitiveKernel(CpuEnv& env, const GraphState& g, const Node& n, bool swap)
      : stream_(env.stream) {
    first_ = n.inputs[swap ? 1 : 0];
    second_ = n.inputs[swap ? 0 : 1];
    out_ = n.outputs[0];
    const ValueInfo& out = g.output_of(n, 0);
    const int rank = out.shape.rank();
    const auto make = [&](DType t) {
      return dnnl::binary::primitive_desc(
          dnnl::binary::desc(
              required_binary_algorithm(n), plain_desc(g.value(first_).shape, t, rank),
              plain_desc(g.value(second_).shape, t, rank), plain_desc(out.shape, t, rank)),
          env.engine);
    };
    dnnl::binary::primitive_desc pd;
    if (out.dtype != DType::F32) {
      try {
        pd = make(out.dtype);
      } catch (const dnnl::error&) {
        widened_ = true;
      }
    }
    if (!pd) pd = make(DType::F32);
    if (widened_) {
      a_ = F32Operand(g, first_);
      b_ = F32Operand(g, second_);
      c_ = F32Operand(g, out_);
    }
    call_ = PrimitiveCall(dnnl::binary(pd));
    slot_a_ = call_.add(DNNL_ARG_SRC_0, pd.src_desc(0), env.engine);
    slot_b_ = call_.add(DNNL_ARG_SRC_1, pd.src_desc(1), env.engine);
    slot_c_ = call_.add(DNNL_ARG_DST, pd.dst_desc(), env.engine);
  }

  void run(const ExecContext& ctx) override {
    if (widened_) {
      call_.bind(slot_a_, const_cast<float*>(a_.read(ctx)));
      call_.bind(slot_b_, const_cast<float*>(b_.read(ctx)));
      call_.bind(slot_c_, c_.write(ctx));
      call_.run(stream_);
      c_.finish(ctx);
      return;
    }
    call_.bind(slot_a_, value_ptr(ctx, first_));
    call_.bind(slot_b_, value_ptr(ctx, second_));
    call_.bind(slot_c_, value_ptr(ctx, out_));
    call_.run(stream_);
  }

 private:
  dnnl::stream stream_;
  ValueId first_ = 0, second_ = 0, out_ = 0;
  bool widened_ = false;
  F32Operand a_, b_, c_;
  PrimitiveCall call_;
  int slot_a_ = -1, slot_b_ = -1, slot_c_ = -1;
};

// Element strides of `in` seen from the output's index space: 0 along broadcast dimensions.
std::vector<std::int64_t> broadcast_strides(const Shape& in, const Shape& out) {
  const auto dims = padded_dims(in, out.rank());
  const auto dense = dense_strides(dims);
  std::vector<std::int64_t> strides(dims.size());
  for (std::size_t i = 0; i < dims.size(); ++i) strides[i] = dims[i] == 1 ? 0 : dense[i];
  return strides;
}

class BroadcastBinaryKernel final : public CpuKernel {
 public:
  BroadcastBinaryKernel(const GraphState& g, const Node& n)
      : algorithm_(required_binary_algorithm(n)),
        a_(g, n.inputs[0]),
        b_(g, n.inputs[1]),
        c_(g, n.outputs[0]) {
    const Shape& out = g.output_of(n, 0).shape;
    dims_ = padded_dims(out, out.rank());
    a_strides_ = broadcast_strides(g.input_of(n, 0).shape, out);
    b_strides_ = broadcast_strides(g.input_of(n, 1).shape, out);
  }

  void run(const ExecContext& ctx) override {
    const float* a = a_.read(ctx);
    const float* b = b_.read(ctx);
    float* c = c_.write(ctx);
    const std::size_t rank = dims_.size();
    const std::int64_t inner = dims_.back();
    const std::int64_t rows =
        static_cast<std::int64_t>(c_.count()) / std::max<std::int64_t>(inner, 1);
    const std::int64_t sa = a_strides_.back(), sb = b_strides_.back();
    parallel_for(rows, std::max<std::int64_t>(1, (1 << 15) / std::max<std::int64_t>(inner, 1)),
                 [&](std::int64_t begin, std::int64_t end) {
                   for (std::int64_t row = begin; row < end; ++row) {
                     // The row's offsets in a and b from its multi-index (outer dims only).
                     std::int64_t rest = row, oa = 0, ob = 0;
                     for (std::size_t d = rank - 1; d-- > 0;) {
                       const std::int64_t i = rest % dims_[d];
                       rest /= dims_[d];
                       oa += i * a_strides_[d];
                       ob += i * b_strides_[d];
                     }
                     const float* ra = a + oa;
                     const float* rb = b + ob;
                     float* rc = c + row * inner;
                     if (algorithm_ == dnnl::algorithm::binary_add) {
                       for (std::int64_t j = 0; j < inner; ++j) rc[j] = ra[j * sa] + rb[j * sb];
                     } else if (algorithm_ == dnnl::algorithm::binary_sub) {
                       for (std::int64_t j = 0; j < inner; ++j) rc[j] = ra[j * sa] - rb[j * sb];
                     } else if (algorithm_ == dnnl::algorithm::binary_mul) {
                       for (std::int64_t j = 0; j < inner; ++j) rc[j] = ra[j * sa] * rb[j * sb];
                     } else {  // binary_div: required_binary_algorithm() admits no other
                       for (std::int64_t j = 0; j < inner; ++j) rc[j] = ra[j * sa] / rb[j * sb];
                     }
                   }
                 });
    c_.finish(ctx);
  }

 private:
  dnnl::algorithm algorithm_;
  F32Operand a_, b_, c_;
  dnnl::memory::dims dims_;
  std::vector<std::int64_t> a_strides_, b_strides_;
};

}  // namespace

std::optional<BinaryAlgorithm> binary_algorithm(OpKind op) {
  for (const auto& entry : kBinary)
    if (entry.op == op) return entry.algorithm;
  return std::nullopt;
}

SupportResult supports_binary(const GraphState& g, const Node& n) {
  return require_f32_bf16({g.input_of(n, 0).dtype});
}

std::unique_ptr<CpuKernel> lower_binary(CpuEnv& env, const GraphState& g, const Node& n) {
  const Shape& out = g.output_of(n, 0).shape;
  if (out.numel() == 0) return std::make_unique<NoopKernel>();
  const bool first_full = g.input_of(n, 0).shape.numel() == out.numel();
  const bool second_full = g.input_of(n, 1).shape.numel() == out.numel();
  const bool commutative = n.op == OpKind::Add || n.op == OpKind::Mul;
  if (first_full) return std::make_unique<BinaryPrimitiveKernel>(env, g, n, false);
  if (second_full && commutative) return std::make_unique<BinaryPrimitiveKernel>(env, g, n, true);
  return std::make_unique<BroadcastBinaryKernel>(g, n);
}

}  // namespace porta::detail::cpu
