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

// This run's addresses of the values, in the device's domain, and of the op's check records.
class Bindings {
 public:
  Bindings(const ExecContext& ctx, const Device& device, const ClBuffer* checks = nullptr,
           std::size_t first_check = 0)
      : ctx_(ctx), device_(device), checks_(checks), first_check_(first_check) {}
  DeviceArg at(ValueId value) const;
  DeviceArg of(const ClBuffer& buffer) const { return {buffer.mem(), 0}; }
  // The run's context: what an op staged through host memory (a collective) runs with.
  const ExecContext& context() const { return ctx_; }
  // Where the op's check number `slot` (its order in LoweredOp::checks) writes its record.
  DeviceArg check_record(std::size_t slot) const;

 private:
  const ExecContext& ctx_;
  const Device& device_;
  const ClBuffer* checks_;
  std::size_t first_check_;
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

// ---- device-side checks of data-dependent indices (index_checks.cpp, kernels/checks.cl) -------
//
// A kernel cannot throw, so an op whose kernels read a data-dependent index table (embedding ids,
// moe perm / inv / offsets, attention's cache_len) enqueues a check of the table before them: one
// work-group that writes the table's first bad entry into the plan's check records (32 bytes per
// check; the kernels themselves still never read out of bounds). After the segment the backend
// reads all records back at once and throws the first failure in plan order (InvalidArgument).

// What the device recorded: the first bad entry (position -1: the table is good), the entry before
// it, and for offsets why it is bad (0: offsets[0] negative, 1: decreasing, 2: past the rows).
struct CheckRecord {
  cl_long position = -1, value = 0, previous = 0, reason = 0;
};
static_assert(sizeof(CheckRecord) == 32, "kernels/checks.cl writes four longs");

struct IndexCheck {
  // The error message for a failed record, naming the node, the table and the bad value.
  std::function<std::string(const CheckRecord&)> describe;
};

struct LoweredOp {
  NodeId node = 0;
  std::vector<Kernel> kernels;
  std::vector<std::unique_ptr<ClBuffer>> buffers;  // tables and scratch, owned by the plan
  std::vector<IndexCheck> checks;                  // in the order of their slots
  std::size_t first_check = 0;                     // the op's first record in the plan's buffer
  std::function<void(const Bindings&, Enqueuer&)> run;
  // What was chosen, in words (Executable::describe()); empty: the kernels' names are shown.
  std::string implementation;
};

// One check of a table of `count` i32/i64 entries, added to an op at lowering time; the op's run
// calls enqueue() with the table's address before the kernels that read it.
struct IndexCheckLaunch {
  cl_kernel kernel = nullptr;  // owned by the op
  std::size_t local = 1, slot = 0;
  cl_int dtype = 0, mode = 0;
  cl_long count = 0, lo = 0, hi = 0;
  void enqueue(const Bindings& b, Enqueuer& q, DeviceArg table) const;
};
// Every entry must lie in [lo, hi) (offsets = false), or the table must be offsets: offsets[0]
// >= 0, non-decreasing, the last <= hi (offsets = true; lo unused).
IndexCheckLaunch add_index_check(Device& device, LoweredOp& op, DType dtype, std::int64_t count,
                                 bool offsets, std::int64_t lo, std::int64_t hi,
                                 std::function<std::string(const CheckRecord&)> describe);
// The reference's checks of the MoE tables, worded as the reference words them; `label` names
// the node. perm: no entry negative (T*K and above are padding); inv: -1 or a row in [0, rows).
IndexCheckLaunch add_offsets_check(Device& device, LoweredOp& op, const std::string& label,
                                   std::int64_t count, std::int64_t rows);
IndexCheckLaunch add_perm_check(Device& device, LoweredOp& op, const std::string& label,
                                std::int64_t count);
IndexCheckLaunch add_inv_check(Device& device, LoweredOp& op, const std::string& label,
                               std::int64_t count, std::int64_t rows);

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
// unary_ops.cpp: the ops of kernels/unary_ops.def.
bool is_unary_op(OpKind op);
SupportResult unary_supports(const Device&, const GraphState& g, const Node& n);
void unary_lower(Device& device, const GraphState& g, const Node& n, LoweredOp& op);
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
// collective_ops.cpp: all_to_all, all_gather, all_reduce, reduce_scatter, staged through host
// memory to the host collective.
SupportResult collective_supports(const Device& device, const GraphState& g, const Node& n);
void collective_lower(Device& device, const GraphState& g, const Node& n, LoweredOp& op);
// quant_ops.cpp: quant_matmul, quant_grouped_matmul, quant_moe_experts.
SupportResult quant_supports(const Device& device, const GraphState& g, const Node& n);
void quant_lower(Device& device, const GraphState& g, const Node& n, LoweredOp& op);

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
// "porta grouped_gemm, gpu tiles 64x64" for a plan's description.
std::string describe_grouped_gemm(const GroupedGemm& gemm);
void enqueue_grouped_gemm(const GroupedGemm& gemm, Enqueuer& queue, DeviceArg rows, DeviceArg w,
                          DeviceArg offsets, DeviceArg out);

}  // namespace porta::detail::opencl
