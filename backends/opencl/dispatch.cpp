// The lowering helpers shared by the op families, and the routing of each op to its family.
#include <algorithm>

#include <fmt/format.h>

#include <porta/ops.hpp>

#include "opencl_lowering.hpp"

namespace porta::detail::opencl {

DeviceArg Bindings::at(ValueId value) const {
  const TensorRef& ref = ctx_.values[value];
  if (ref.buffer == nullptr)
    throw Error(ErrorCode::Internal,
                fmt::format("opencl: value {} is not present in the opencl:{} memory domain", value,
                            device_.index()));
  auto* buffer = dynamic_cast<const ClBuffer*>(ref.buffer);
  if (buffer == nullptr || buffer->owner() != &device_)
    throw Error(ErrorCode::Internal,
                fmt::format("opencl: value '{}' is bound to a buffer of another memory domain",
                            ref.info != nullptr ? ref.info->name : std::to_string(value)));
  return {buffer->mem(), static_cast<cl_ulong>(ref.offset)};
}

Enqueuer::~Enqueuer() {
  for (cl_event e : events_)
    if (e != nullptr) clReleaseEvent(e);
}

void Enqueuer::launch(cl_kernel kernel, std::vector<std::size_t> global,
                      std::vector<std::size_t> local, const char* what) {
  for (std::size_t d = 0; d < global.size(); ++d) {
    if (global[d] == 0) return;  // nothing to do
    global[d] = ceil_div(global[d], local[d]) * local[d];
  }
  cl_event event = nullptr;
  check_cl(clEnqueueNDRangeKernel(device_.queue(), kernel, static_cast<cl_uint>(global.size()),
                                  nullptr, global.data(), local.data(), 0, nullptr,
                                  keep_events_ ? &event : nullptr),
           fmt::format("launching the kernel {}", what));
  if (keep_events_) events_.push_back(event);
}

cl_event* Enqueuer::event_slot() {
  if (!keep_events_) return nullptr;
  events_.push_back(nullptr);
  return &events_.back();
}

double Enqueuer::finish_and_time() {
  check_cl(clFinish(device_.queue()), "waiting for the queue");
  double total_ns = 0;
  for (cl_event e : events_) {
    if (e == nullptr) continue;
    cl_ulong start = 0, end = 0;
    if (clGetEventProfilingInfo(e, CL_PROFILING_COMMAND_START, sizeof(start), &start, nullptr) ==
            CL_SUCCESS &&
        clGetEventProfilingInfo(e, CL_PROFILING_COMMAND_END, sizeof(end), &end, nullptr) ==
            CL_SUCCESS &&
        end >= start)
      total_ns += static_cast<double>(end - start);
    clReleaseEvent(e);
  }
  events_.clear();
  return total_ns / 1000.0;
}

void set_arg(cl_kernel kernel, cl_uint& index, const DeviceArg& value) {
  check_cl(clSetKernelArg(kernel, index, sizeof(cl_mem), &value.mem), "setting a buffer argument");
  ++index;
  check_cl(clSetKernelArg(kernel, index, sizeof(cl_ulong), &value.offset),
           "setting an offset argument");
  ++index;
}

void set_arg(cl_kernel kernel, cl_uint& index, const LocalBytes& value) {
  check_cl(clSetKernelArg(kernel, index, value.bytes, nullptr), "setting a local-memory argument");
  ++index;
}

void set_arg(cl_kernel kernel, cl_uint& index, cl_mem value) {
  check_cl(clSetKernelArg(kernel, index, sizeof(cl_mem), &value), "setting a table argument");
  ++index;
}

cl_int dtype_code(DType t) {
  switch (t) {
    case DType::F32: return 0;
    case DType::F16: return 1;
    case DType::BF16: return 2;
    case DType::I32: return 3;
    case DType::I64: return 4;
    case DType::I8: return 5;
    case DType::F8E4M3: break;  // no kernel reads it: supports() declines such nodes
  }
  throw Error(ErrorCode::Internal,
              fmt::format("opencl: no kernel dtype code for {}", dtype_name(t)));
}

bool is_float_storage(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }
bool is_index(DType t) { return t == DType::I32 || t == DType::I64; }

std::string label(const Node& n) { return fmt::format("{} '{}'", op_name(n.op), n.name); }

SupportResult need_float_storage(const GraphState& g, const Node& n, std::size_t first,
                                 std::size_t last) {
  for (std::size_t i = first; i < last && i < n.inputs.size(); ++i) {
    const DType t = g.input_of(n, i).dtype;
    if (!is_float_storage(t))
      return SupportResult::no(
          fmt::format("{} input {} is {}; the opencl kernels take f32, f16 or bf16", label(n), i,
                      dtype_name(t)));
  }
  return SupportResult::yes();
}

std::vector<cl_long> broadcast_strides(const Shape& in, const Shape& out) {
  const int offset = out.rank() - in.rank();
  const auto in_strides = in.strides();
  std::vector<cl_long> result(static_cast<std::size_t>(out.rank()), 0);
  for (int axis = 0; axis < in.rank(); ++axis) {
    const auto a = static_cast<std::size_t>(axis);
    if (in.dims()[a] != 1) result[static_cast<std::size_t>(axis + offset)] = in_strides[a];
  }
  return result;
}

std::vector<cl_long> contiguous_strides(const Shape& s) {
  const auto strides = s.strides();
  return {strides.begin(), strides.end()};
}

std::size_t ceil_div(std::size_t a, std::size_t b) { return (a + b - 1) / b; }

namespace {

struct OpenclLowering {
  OpKind op;
  SupportResult (*supports)(const Device&, const GraphState&, const Node&);
  void (*lower)(Device&, const GraphState&, const Node&, LoweredOp&);
};

// The ops with opencl kernels; the unary activations are listed once, in kernels/unary_ops.def.
const OpenclLowering kLowerings[] = {
    {OpKind::Add, elementwise_supports, elementwise_lower},
    {OpKind::Sub, elementwise_supports, elementwise_lower},
    {OpKind::Mul, elementwise_supports, elementwise_lower},
    {OpKind::Div, elementwise_supports, elementwise_lower},
    {OpKind::Swiglu, elementwise_supports, elementwise_lower},
    {OpKind::Reshape, layout_supports, layout_lower},
    {OpKind::Permute, layout_supports, layout_lower},
    {OpKind::Slice, layout_supports, layout_lower},
    {OpKind::Concat, layout_supports, layout_lower},
    {OpKind::Cast, layout_supports, layout_lower},
    {OpKind::Softmax, reduction_supports, reduction_lower},
    {OpKind::RmsNorm, reduction_supports, reduction_lower},
    {OpKind::LayerNorm, reduction_supports, reduction_lower},
    {OpKind::TopK, reduction_supports, reduction_lower},
    {OpKind::Rope, position_supports, position_lower},
    {OpKind::Embedding, position_supports, position_lower},
    {OpKind::Attention, attention_supports, attention_lower},
    {OpKind::Matmul, matmul_supports, matmul_lower},
    {OpKind::MoeRouter, moe_supports, moe_lower},
    {OpKind::MoePermute, moe_supports, moe_lower},
    {OpKind::GroupedMatmul, moe_supports, moe_lower},
    {OpKind::MoeExperts, moe_supports, moe_lower},
    {OpKind::MoeCombine, moe_supports, moe_lower},
    {OpKind::QuantMatmul, quant_supports, quant_lower},
    {OpKind::QuantGroupedMatmul, quant_supports, quant_lower},
    {OpKind::QuantMoeExperts, quant_supports, quant_lower},
    {OpKind::AllToAll, collective_supports, collective_lower},
    {OpKind::AllGather, collective_supports, collective_lower},
    {OpKind::AllReduce, collective_supports, collective_lower},
    {OpKind::ReduceScatter, collective_supports, collective_lower},
};

const OpenclLowering* find_lowering(OpKind op) {
  static const OpenclLowering kUnary{OpKind::Silu, unary_supports, unary_lower};
  if (is_unary_op(op)) return &kUnary;
  for (const auto& entry : kLowerings)
    if (entry.op == op) return &entry;
  return nullptr;
}

}  // namespace

SupportResult supports_node(const Device& device, const GraphState& g, const Node& n) {
  if (const OpenclLowering* entry = find_lowering(n.op)) return entry->supports(device, g, n);
  return SupportResult::no(fmt::format("{} has no opencl kernel", label(n)));
}

LoweredOp lower_node(Device& device, const GraphState& g, const Node& n) {
  LoweredOp op;
  const OpenclLowering* entry = find_lowering(n.op);
  if (entry != nullptr) entry->lower(device, g, n, op);
  if (!op.run)
    throw Error(ErrorCode::Internal, fmt::format("opencl: {} was not lowered", label(n)));
  return op;
}

}  // namespace porta::detail::opencl
