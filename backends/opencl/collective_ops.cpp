// The collective ops on opencl: the device buffers read into host memory, the host collective
// (the reference kernels, through the Executable's communicator: MPI reads host memory), the
// results written back. One blocking round trip per op, as a device without a device-aware MPI
// must stage it; doing it here rather than by the runtime's fallback keeps the op in the opencl
// segment, so its neighbours are not split into segments of their own around it.
#include <cstddef>
#include <vector>

#include <fmt/format.h>

#include "opencl_lowering.hpp"
#include "reference/reference_backend.hpp"

namespace porta::detail::opencl {

namespace {

void stage_through_host(const GraphState& g, const Node& n, const Bindings& b, Enqueuer& q) {
  const ExecContext& ctx = b.context();
  check_cl(clFinish(q.queue()), "waiting for the queue before a collective");
  std::vector<TensorRef> host(ctx.values.begin(), ctx.values.end());
  std::vector<std::vector<std::byte>> memory;
  std::vector<std::unique_ptr<HostBuffer>> buffers;
  const auto bind = [&](ValueId v, bool read) {
    TensorRef& ref = host[v];
    memory.emplace_back(ref.nbytes());
    buffers.push_back(std::make_unique<HostBuffer>(memory.back().data(), memory.back().size()));
    if (read && ref.nbytes() > 0) {
      const DeviceArg at = b.at(v);
      check_cl(clEnqueueReadBuffer(q.queue(), at.mem, CL_TRUE, at.offset, ref.nbytes(),
                                   memory.back().data(), 0, nullptr, nullptr),
               fmt::format("reading the input of {} into host memory", label(n)));
    }
    ref.buffer = buffers.back().get();
    ref.offset = 0;
    ref.parts = {};
  };
  for (ValueId v : n.inputs) bind(v, true);
  for (ValueId v : n.outputs) bind(v, false);
  const ExecContext on_host{host, nullptr, ctx.comm};
  reference::run_node(g, n, on_host);
  for (ValueId v : n.outputs) {
    if (host[v].nbytes() == 0) continue;
    const DeviceArg at = b.at(v);
    check_cl(clEnqueueWriteBuffer(q.queue(), at.mem, CL_TRUE, at.offset, host[v].nbytes(),
                                  host[v].host(), 0, nullptr, nullptr),
             fmt::format("writing the result of {} to the device", label(n)));
  }
}

}  // namespace

SupportResult collective_supports(const Device&, const GraphState& g, const Node& n) {
  if ((n.op == OpKind::AllReduce || n.op == OpKind::ReduceScatter) &&
      !is_float_storage(g.input_of(n, 0).dtype))
    return SupportResult::no(fmt::format("{} sums f32, f16 or bf16 tensors, not {}", label(n),
                                         dtype_name(g.input_of(n, 0).dtype)));
  return SupportResult::yes();
}

void collective_lower(Device&, const GraphState& g, const Node& n, LoweredOp& op) {
  op.implementation = "staged through host memory to the host collective";
  op.run = [&g, node = n](const Bindings& b, Enqueuer& q) { stage_through_host(g, node, b, q); };
}

}  // namespace porta::detail::opencl
