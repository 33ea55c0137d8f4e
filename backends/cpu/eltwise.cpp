// silu, gelu, sigmoid, exp on oneDNN's eltwise primitive; swiglu (silu(gate) · up, for which
// oneDNN has no single primitive) in a vectorisable loop of our own.
#include <cmath>

#include "cpu_util.hpp"
#include "dense_ops.hpp"
#include "unary_primitive.hpp"
#include "widened_io.hpp"

namespace porta::detail::cpu {

namespace {

struct EltwiseAlgorithm {
  dnnl::algorithm algorithm;
  float alpha = 0.0f;
};

EltwiseAlgorithm eltwise_algorithm(const Node& n) {
  using alg = dnnl::algorithm;
  switch (n.op) {
    case OpKind::Silu: return {alg::eltwise_swish, 1.0f};
    case OpKind::Gelu:
      return {std::get<GeluAttrs>(n.attrs).approximation == GeluApproximation::Tanh
                  ? alg::eltwise_gelu_tanh
                  : alg::eltwise_gelu_erf};
    case OpKind::Sigmoid: return {alg::eltwise_logistic};
    default: return {alg::eltwise_exp};
  }
}

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
                   for (std::int64_t i = begin; i < end; ++i)
                     out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
                 });
    out_.finish(ctx);
  }

 private:
  F32Operand gate_, up_, out_;
};

}  // namespace

SupportResult supports_eltwise(const GraphState& g, const Node& n) {
  return require_f32_bf16({g.input_of(n, 0).dtype});
}

std::unique_ptr<CpuKernel> lower_eltwise(CpuEnv& env, const GraphState& g, const Node& n) {
  const EltwiseAlgorithm a = eltwise_algorithm(n);
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
