// The unary activations: on oneDNN's eltwise primitive (kEltwise) or in loops of our own (kLoops);
// swiglu (silu(gate) · up, for which oneDNN has no single primitive) in a vectorisable loop.
#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "cpu_util.hpp"
#include "dense_ops.hpp"
#include "op_algorithms.hpp"
#include "silu_mul.hpp"
#include "unary_primitive.hpp"
#include "widened_io.hpp"

namespace porta::detail::cpu {

namespace {

struct EltwiseEntry {
  OpKind op;
  EltwiseAlgorithm algorithm;
};

// One entry per unary op oneDNN computes natively. gelu's entry is its exact form; the tanh
// approximation is chosen from its attributes in eltwise_algorithm().
const EltwiseEntry kEltwise[] = {
    {OpKind::Silu, {dnnl::algorithm::eltwise_swish, 1.0f}},
    {OpKind::Gelu, {dnnl::algorithm::eltwise_gelu_erf}},
    {OpKind::Sigmoid, {dnnl::algorithm::eltwise_logistic}},
    {OpKind::Exp, {dnnl::algorithm::eltwise_exp}},
};

// Unary ops computed by a loop of our own: oneDNN has them, but its relu maps NaN to 0 where the
// reference (and PyTorch) keep NaN, so they are not fused into matmuls either.
struct LoopEntry {
  OpKind op;
  void (*apply)(const float* x, float* y, std::int64_t begin, std::int64_t end);
};

void relu_loop(const float* x, float* y, std::int64_t begin, std::int64_t end) {
  for (std::int64_t i = begin; i < end; ++i) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

const std::vector<LoopEntry> kLoops = {
    {OpKind::Relu, relu_loop},
};

const LoopEntry* find_loop(OpKind op) {
  for (const auto& entry : kLoops)
    if (entry.op == op) return &entry;
  return nullptr;
}

class UnaryLoopKernel final : public CpuKernel {
 public:
  UnaryLoopKernel(const GraphState& g, const Node& n, const LoopEntry& entry)
      : apply_(entry.apply), x_(g, n.inputs[0]), out_(g, n.outputs[0]) {}
  void run(const ExecContext& ctx) override {
    const float* x = x_.read(ctx);
    float* out = out_.write(ctx);
    parallel_for(static_cast<std::int64_t>(out_.count()), 1 << 15,
                 [&](std::int64_t begin, std::int64_t end) { apply_(x, out, begin, end); });
    out_.finish(ctx);
  }

 private:
  void (*apply_)(const float*, float*, std::int64_t, std::int64_t);
  F32Operand x_, out_;
};

class SwigluKernel final : public CpuKernel {
 public:
  SwigluKernel(const GraphState& g, const Node& n)
      : gate_(g, n.inputs[0]), up_(g, n.inputs[1]), out_(g, n.outputs[0]) {}
  void run(const ExecContext& ctx) override {
    const float* gate = gate_.read(ctx);
    const float* up = up_.read(ctx);
    float* out = out_.write(ctx);
    parallel_for(static_cast<std::int64_t>(out_.count()), 1 << 15,
                 [&](std::int64_t begin, std::int64_t end) {
                   silu_mul(gate + begin, up + begin, out + begin, end - begin);
                 });
    out_.finish(ctx);
  }

 private:
  F32Operand gate_, up_, out_;
};

}  // namespace

std::optional<EltwiseAlgorithm> eltwise_algorithm(const Node& n) {
  for (const auto& entry : kEltwise) {
    if (entry.op != n.op) continue;
    if (n.op == OpKind::Gelu &&
        std::get<GeluAttrs>(n.attrs).approximation == GeluApproximation::Tanh)
      return EltwiseAlgorithm{dnnl::algorithm::eltwise_gelu_tanh};
    return entry.algorithm;
  }
  return std::nullopt;
}

std::span<const OpLowering> eltwise_lowerings() {
  static const std::vector<OpLowering> lowerings = [] {
    std::vector<OpLowering> table;
    for (const auto& entry : kEltwise)
      table.push_back(OpLowering{entry.op, supports_eltwise, lower_eltwise});
    for (const auto& entry : kLoops)
      table.push_back(OpLowering{entry.op, supports_eltwise, lower_eltwise});
    return table;
  }();
  return lowerings;
}

SupportResult supports_eltwise(const GraphState& g, const Node& n) {
  if (!eltwise_algorithm(n) && find_loop(n.op) == nullptr)
    return SupportResult::no(fmt::format("{}: no oneDNN eltwise algorithm", op_name(n.op)));
  return require_f32_bf16({g.input_of(n, 0).dtype});
}

std::unique_ptr<CpuKernel> lower_eltwise(CpuEnv& env, const GraphState& g, const Node& n) {
  if (const LoopEntry* loop = find_loop(n.op)) {
    if (g.input_of(n, 0).shape.numel() == 0) return std::make_unique<NoopKernel>();
    return std::make_unique<UnaryLoopKernel>(g, n, *loop);
  }
  const EltwiseAlgorithm a = *eltwise_algorithm(n);
  return lower_unary_primitive(env, g, n,
                               [a](const dnnl::memory::desc& md, const dnnl::engine& engine) {
                                 return dnnl::eltwise_forward::primitive_desc(
                                     dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_inference,
                                                                 a.algorithm, md, a.alpha),
                                     engine);
                               });
}

SupportResult supports_swiglu(const GraphState& g, const Node& n) {
  return require_f32_bf16({g.input_of(n, 0).dtype});
}

std::unique_ptr<CpuKernel> lower_swiglu(CpuEnv&, const GraphState& g, const Node& n) {
  if (g.input_of(n, 0).shape.numel() == 0) return std::make_unique<NoopKernel>();
  return std::make_unique<SwigluKernel>(g, n);
}

}  // namespace porta::detail::cpu
