// How a node becomes OpenCL work: the lowering interface shared by the op families.
//
// At compile time each node is lowered once into a LoweredOp: its kernels (kernel objects owned by
// the plan, so concurrent plans never share argument state), its constant tables and scratch
// buffers, and a `run` function that, given this run's value addresses, only sets arguments and
// enqueues. Each op family (elementwise_ops.cpp, reduction_ops.cpp, ...) provides a supports and
// a lower function; dispatch.cpp routes a node to its family.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <porta/dtype.hpp>

#include "opencl_memory.hpp"
#include "opencl_runtime.hpp"
#include "runtime/backend.hpp"

namespace porta::detail::opencl {

// A value's place in device memory: the buffer and the byte offset of its first element.
struct DeviceArg {
  cl_mem mem = nullptr;
  cl_ulong offset = 0;
};
// A __local argument of `bytes` bytes.
struct LocalBytes {
  std::size_t bytes = 0;
};

// This run's addresses of the values, in the device's domain.
class Bindings {
 public:
  Bindings(const ExecContext& ctx, const Device& device) : ctx_(ctx), device_(device) {}
  DeviceArg at(ValueId value) const;
  DeviceArg of(const ClBuffer& buffer) const { return {buffer.mem(), 0}; }

 private:
  const ExecContext& ctx_;
  const Device& device_;
};

// Enqueues kernels on the device's queue, keeping each command's event when profiling.
class Enqueuer {
 public:
  Enqueuer(Device& device, bool keep_events) : device_(device), keep_events_(keep_events) {}
  ~Enqueuer();
  Enqueuer(const Enqueuer&) = delete;
  Enqueuer& operator=(const Enqueuer&) = delete;
  // A 1-, 2- or 3-D launch; `global` is rounded up to a multiple of `local` (kernels check bounds).
  void launch(cl_kernel kernel, std::vector<std::size_t> global, std::vector<std::size_t> local,
              const char* what);
  // Where a library call (CLBlast) stores its event; null when not profiling.
  cl_event* event_slot();
  cl_command_queue queue() const { return device_.queue(); }
  Device& device() const { return device_; }
  // Waits for this op's commands and returns their summed device time in microseconds.
  double finish_and_time();

 private:
  Device& device_;
  bool keep_events_;
  std::vector<cl_event> events_;
};

struct LoweredOp {
  NodeId node = 0;
  std::vector<Kernel> kernels;
  std::vector<std::unique_ptr<ClBuffer>> buffers;  // tables and scratch, owned by the plan
  std::function<void(const Bindings&, Enqueuer&)> run;
};

// ---- kernel arguments ---------------------------------------------------------------------------

void set_arg(cl_kernel kernel, cl_uint& index, const DeviceArg& value);
void set_arg(cl_kernel kernel, cl_uint& index, const LocalBytes& value);
void set_arg(cl_kernel kernel, cl_uint& index, cl_mem value);  // a table without an offset
template <class T>
void set_arg(cl_kernel kernel, cl_uint& index, const T& value) {
  static_assert(std::is_arithmetic_v<T>, "kernel arguments are scalars, buffers or local memory");
  check_cl(clSetKernelArg(kernel, index, sizeof(T), &value), "setting a kernel argument");
  ++index;
}
template <class... Args>
void set_args(cl_kernel kernel, const Args&... args) {
  cl_uint index = 0;
  (set_arg(kernel, index, args), ...);
}

// ---- shared helpers -----------------------------------------------------------------------------

// The dtype codes of kernels/common.cl.
cl_int dtype_code(DType t);
bool is_float_storage(DType t);  // f32, f16, bf16: what the kernels load and store
bool is_index(DType t);          // i32, i64
std::string label(const Node& n);
SupportResult need_float_storage(const GraphState& g, const Node& n, std::size_t first,
                                 std::size_t last);
// Broadcast strides (elements) of `in` against `out`, 0 along broadcast axes.
std::vector<cl_long> broadcast_strides(const Shape& in, const Shape& out);
std::vector<cl_long> contiguous_strides(const Shape& s);
std::size_t ceil_div(std::size_t a, std::size_t b);

// ---- the op families ----------------------------------------------------------------------------

SupportResult supports_node(const Device& device, const GraphState& g, const Node& n);
LoweredOp lower_node(Device& device, const GraphState& g, const Node& n);

SupportResult elementwise_supports(const Device&, const GraphState& g, const Node& n);
void elementwise_lower(Device& device, const GraphState& g, const Node& n, LoweredOp& op);
SupportResult layout_supports(const Device&, const GraphState& g, const Node& n);
void layout_lower(Device& device, const GraphState& g, const Node& n, LoweredOp& op);
SupportResult reduction_supports(const Device&, const GraphState& g, const Node& n);
void reduction_lower(Device& device, const GraphState& g, const Node& n, LoweredOp& op);
SupportResult position_supports(const Device&, const GraphState& g, const Node& n);
void position_lower(Device& device, const GraphState& g, const Node& n, LoweredOp& op);
SupportResult attention_supports(const Device&, const GraphState& g, const Node& n);
void attention_lower(Device& device, const GraphState& g, const Node& n, LoweredOp& op);
SupportResult matmul_supports(const Device&, const GraphState& g, const Node& n);
void matmul_lower(Device& device, const GraphState& g, const Node& n, LoweredOp& op);
SupportResult moe_supports(const Device&, const GraphState& g, const Node& n);
void moe_lower(Device& device, const GraphState& g, const Node& n, LoweredOp& op);

// Shared with moe_ops.cpp and the benchmark: the ragged grouped GEMM out[r] = rows[r] · w[e]ᵀ for
// rows r of expert e (offsets[e] <= r < offsets[e + 1]); rows outside every expert are zero
// (grouped_gemm_ops.cpp).
//
// Two tile configurations, chosen per device when the plan is compiled: Gpu (kernels/
// grouped_gemm.cl: 16x16 work-items, 64-column tiles staged in local memory) and Cpu
// (kernels/grouped_gemm_cpu.cl: no local memory, float8 dot products along H, 32-column tiles).
// A CPU device (CL_DEVICE_TYPE_CPU) takes Cpu, every other device Gpu; the environment variable
// PORTA_OPENCL_GROUPED_TILES=cpu|gpu overrides the choice (tests run both on PoCL).
enum class GroupedTiles { Gpu, Cpu };
GroupedTiles grouped_tiles(const Device& device);
const char* to_string(GroupedTiles tiles);
// Why `device` cannot run the grouped GEMM in the configuration it would take (empty: it can).
std::string grouped_gemm_unfit(const Device& device);

struct GroupedGemm {
  Kernel gemm, zero_rows;
  GroupedTiles tiles = GroupedTiles::Gpu;
  std::int64_t tile_rows = 64;     // Gpu: 64, or 16 for few rows per expert; Cpu: 48 or 12
  std::int64_t tile_columns = 64;  // Gpu: 64; Cpu: 32
  std::size_t local_size = 256;    // work-items per group (Gpu: 16x16)
  std::int64_t rows = 0, hidden = 0, out_features = 0, experts = 0;
  DType rows_dtype = DType::F32, w_dtype = DType::F32, out_dtype = DType::F32;
};
GroupedGemm make_grouped_gemm(Device& device, std::int64_t rows, std::int64_t hidden,
                              std::int64_t out_features, std::int64_t experts, DType rows_dtype,
                              DType w_dtype, DType out_dtype);
void enqueue_grouped_gemm(const GroupedGemm& gemm, Enqueuer& queue, DeviceArg rows, DeviceArg w,
                          DeviceArg offsets, DeviceArg out);

}  // namespace porta::detail::opencl
