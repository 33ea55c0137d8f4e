// matmul on oneDNN, and the epilogues (post-ops) the backend fuses into it.
//
// The fusion pass (fusion.hpp) finds a matmul followed by elementwise nodes it can fold into the
// primitive (bias or residual add, sub, mul or div by a broadcast operand; silu, gelu, sigmoid,
// exp) and lowers the chain as one kernel through lower_fused_matmul().
#pragma once

#include <memory>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "cpu_kernel.hpp"

namespace porta::detail::cpu {

struct MatmulPostOp {
  bool binary = false;  // a binary post-op reading `operand`; otherwise an eltwise one
  dnnl::algorithm algorithm = dnnl::algorithm::undef;
  float alpha = 0.0f;
  float beta = 0.0f;
  ValueId operand = 0;
};

struct MatmulEpilogue {
  std::vector<MatmulPostOp> ops;
  ValueId output = 0;  // the value the last fused node produces: where the kernel writes
};

// Whether this oneDNN has a bf16 matmul kernel (not its reference one) for this machine's ISA;
// decided once per process.
bool native_bf16_matmul(const dnnl::engine& engine);

// 2-D matmuls against a constant weight read in place (matmul_weight_rows.cpp): decode rows
// against bf16 or [N, K] f32 weights, prefill rows against [N, K] bf16 weights widened per panel.
// They take no post-ops (matmul_accepts_post_ops says no for them).
bool use_weight_rows_matmul(const dnnl::engine& engine, const GraphState& g, const Node& n);
std::unique_ptr<CpuKernel> lower_weight_rows_matmul(CpuEnv& env, const GraphState& g,
                                                    const Node& n);

SupportResult supports_matmul(const GraphState& g, const Node& n);
std::unique_ptr<CpuKernel> lower_matmul(CpuEnv& env, const GraphState& g, const Node& n);

// Whether post-ops can be fused into this node's kernel: the primitive writes its output dtype
// directly (no widened scratch on the way out) and the product is not empty.
bool matmul_accepts_post_ops(const GraphState& g, const Node& n);
// A matmul kernel with `epilogue` applied before its result is stored into epilogue.output.
std::unique_ptr<CpuKernel> lower_fused_matmul(CpuEnv& env, const GraphState& g, const Node& n,
                                              const MatmulEpilogue& epilogue);

}  // namespace porta::detail::cpu
