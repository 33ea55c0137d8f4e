// How the cpu backend lowers one node: a table of per-op entries, each saying honestly whether it
// can run a node and, at compile time, building the kernel that runs it many times.
//
// The dense ops (oneDNN primitives, and our own loops where oneDNN has none) and the MoE ops
// (backends/cpu/moe/) each contribute a table; the backend looks a node's op up in them. A kernel
// is built once in compile() (primitive descriptors created, weights reordered into oneDNN's
// preferred layout) and run() only binds this run's addresses and executes.
#pragma once

#include <array>
#include <memory>
#include <span>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include <porta/ops.hpp>

#include "runtime/backend.hpp"

namespace porta::detail::cpu {

// What kernels share within one plan: the engine, and a stream of the plan's own, so plans run
// concurrently from separate threads without sharing a stream.
struct CpuEnv {
  dnnl::engine engine;
  dnnl::stream stream;
  // Scratch vectors shared by the plan's kernels, which run one after another: a kernel's
  // intermediates (the MoE layer's expert rows: ~100 MB per layer at a 512-token prefill) are
  // dead when it returns, so one set serves every layer instead of one set per layer.
  // Slots are fixed (an array: references to them stay valid); each kernel kind owns its slots.
  std::array<std::vector<float>, 16> scratch;
  std::vector<float>& shared_scratch(std::size_t slot) { return scratch.at(slot); }
};

// One lowered node.
class CpuKernel {
 public:
  virtual ~CpuKernel() = default;
  // Runs the node on this run's bindings (ctx.values, indexed by ValueId).
  virtual void run(const ExecContext& ctx) = 0;
  // Bytes of weight copies the kernel keeps (a reorder into oneDNN's layout, a widened copy).
  virtual std::uint64_t weight_copy_bytes() const { return 0; }
};

struct OpLowering {
  OpKind op;
  // Honest and cheap, never throws: the dtypes, shapes and attributes this kernel handles.
  SupportResult (*supports)(const GraphState& graph, const Node& node);
  // Called only for nodes supports() accepted. Failures (a oneDNN error, say) are porta::Error
  // naming the node and its shapes.
  std::unique_ptr<CpuKernel> (*lower)(CpuEnv& env, const GraphState& graph, const Node& node);
};

// The dense ops of the catalogue (backends/cpu/, every file but moe/).
std::span<const OpLowering> dense_lowerings();
// The MoE ops: moe_router, moe_permute, grouped_matmul, moe_experts, moe_combine
// (backends/cpu/moe/).
std::span<const OpLowering> moe_lowerings();
// The quantized-weight ops: quant_matmul, quant_grouped_matmul, quant_moe_experts
// (backends/cpu/quant/).
std::span<const OpLowering> quant_lowerings();
// all_to_all, all_gather, all_reduce, reduce_scatter: host memory through the communicator
// (backends/cpu/collectives.cpp).
std::span<const OpLowering> collective_lowerings();
// Its moe_experts_ep entry: the exchange around the cpu expert kernels (backends/cpu/moe_ep.cpp).
SupportResult experts_ep_supports(const GraphState& graph, const Node& node);
std::unique_ptr<CpuKernel> lower_experts_ep(CpuEnv& env, const GraphState& graph, const Node& node);

}  // namespace porta::detail::cpu
