// The tile-level timing engine: per-core pipes (MTE2, MTE1, Cube, FixPipe on cube cores; MTE2,
// Vector, MTE3 on vector cores) scheduled as a list: each instruction starts when its pipe is
// free, its inputs are in their buffer, and a slot of the buffer it writes is free (the queue
// depth is the buffer count, two for double buffering). HBM and L2 bandwidth are shared by the
// cores moving data at the same time; an L2 hit model decides which bytes come from HBM. Work is
// counted per tile and per UB chunk, never per element.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <porta/npu_sim.hpp>

namespace porta::detail::npu_sim {

using porta::npu_sim::DeviceProfile;
using porta::npu_sim::kPipeCount;
using porta::npu_sim::OpReport;
using porta::npu_sim::Pipe;
using porta::npu_sim::PipeSpan;

// Collects pipe spans for the trace (optional everywhere: a null sink records nothing).
struct SpanSink {
  std::vector<PipeSpan>* spans = nullptr;
  std::size_t max_spans = 0;
  bool truncated = false;
  double origin_us = 0;  // where the current kernel starts on the graph's timeline
  std::string op;
  void add(const std::string& core, Pipe pipe, double start_us, double end_us);
};

// One kernel launch: what the engine computed for it.
struct KernelResult {
  std::string kernel;  // "cube gemm", "vector", "mte gather", "roofline", "view"
  std::string tiling;
  double cycles = 0;     // kernel cycles (launch excluded)
  double time_us = 0;    // cycles / clock (or the roofline time)
  bool launched = true;  // views launch nothing
  double flops = 0;
  double hbm_bytes = 0, l2_bytes = 0, l1_bytes = 0, l0_bytes = 0, ub_bytes = 0;
  int cores_used = 0, waves = 0;
  std::array<double, kPipeCount> busy_cycles{};  // summed over cores
  std::array<int, kPipeCount> pipe_cores{};      // cores that have each pipe, in this kernel
  bool on_cube = false;
  std::uint64_t peak_l0a = 0, peak_l0b = 0, peak_l0c = 0, peak_l1 = 0, peak_ub = 0;
};

// ---- cube GEMMs
// ----------------------------------------------------------------------------------

// One GEMM of a kernel: M x K times K x N. `a_shared`: the A block of a tile is read by every
// tile of its row (true for every GEMM here); each group has its own B unless `b_shared`.
struct GemmGroup {
  std::int64_t m = 0, n = 0, k = 0;
};
struct GemmProblem {
  std::vector<GemmGroup> groups;  // a batch, or the experts of a grouped matmul
  DType dtype = DType::F16;       // operands (f16/bf16, f32, i8)
  DType out_dtype = DType::F16;
  bool b_shared = false;  // one B for every group (a broadcast weight)
  // Bytes per B element read from GM when B is stored narrower than the operands: a quantized
  // weight streams its codes plus its scales and zeros (int4: half a byte and the scales), and is
  // widened on the way (antiquant). 0: B is stored as `dtype`.
  double b_gm_bytes = 0;
  double b_bytes_per_elem() const {
    return b_gm_bytes > 0 ? b_gm_bytes : static_cast<double>(dtype_size(dtype));
  }
};

struct GemmTiling {
  std::int64_t base_m = 0, base_n = 0, base_k = 0, step_k = 0;  // step_k: K per L1 block
  int l0c_depth = 1;
};

// Candidate base tiles that fit the profile's L0A/L0B/L0C (double-buffered) and L1.
std::vector<GemmTiling> gemm_tilings(const DeviceProfile& p, const GemmProblem& problem);
// Times the problem with one tiling; the best tiling when `tiling` is null.
KernelResult time_gemm(const DeviceProfile& p, const GemmProblem& problem,
                       const GemmTiling* tiling = nullptr, SpanSink* sink = nullptr);

// ---- vector kernels
// ------------------------------------------------------------------------------

struct VectorWork {
  std::string what;              // "add", "softmax", ...
  std::int64_t rows = 1;         // independent rows (1 for plain elementwise)
  std::int64_t row_elems = 0;    // elements per row (elementwise: all of them)
  double in_bytes_per_elem = 0;  // streamed input bytes per output element
  double out_bytes_per_elem = 0;
  double compute_bytes = 2;      // element size the vector unit computes in (2: fp16, 4: fp32)
  double cycles_per_repeat = 2;  // the instruction sequence per 256-byte repeat
  double row_passes = 1;         // times a row is read from GM (2 when it is split over UB fills)
  double fixed_bytes = 0;        // small inputs loaded once per core (a broadcast weight)
  double flops = 0;
};
KernelResult time_vector(const DeviceProfile& p, const VectorWork& work, SpanSink* sink = nullptr);

// Row gathers and scatters (moe_permute, embedding, slice, concat, moe_combine): one DMA per row
// segment through UB, so short rows pay the DMA start latency (the burst-efficiency curve).
struct GatherWork {
  std::string what;
  std::int64_t segments = 0;  // DMAs in
  double segment_bytes = 0;   // bytes per DMA in
  double out_bytes = 0;       // written contiguously
  double vector_cycles = 0;   // vector work over the whole op (moe_combine's weighted sum)
  double flops = 0;
};
KernelResult time_gather(const DeviceProfile& p, const GatherWork& work, SpanSink* sink = nullptr);

// Ops without a kernel model: max(compute at the unit's peak, bytes at HBM peak).
KernelResult time_roofline(const DeviceProfile& p, const std::string& what, double flops,
                           double bytes, DType dtype, bool on_cube);

// A whole op: its kernels in sequence, each with one launch. Fills every OpReport figure.
OpReport compose(const DeviceProfile& p, const std::string& node, const std::string& op,
                 const std::vector<KernelResult>& kernels, DType dtype);

// ---- shared helpers
// ------------------------------------------------------------------------------

// Bandwidth contention, as a scale on each core's own data-path rate: 1 while the cores moving
// data together stay under the chip's aggregate limits (L2 reads, L2 writes, HBM); lowered until
// they do otherwise (settle()).
struct Contention {
  double hit = 1, miss = 1, write = 1;
};

// Bytes a kernel moved through GM, for checking them against the aggregate limits.
struct Traffic {
  double hit = 0, miss = 0, write = 0;
};

// Lowers the contention scales until `traffic` over `cycles` respects the chip's L2 read,
// L2 write and HBM bandwidth. Returns false when nothing needed lowering.
bool settle(const DeviceProfile& p, const Traffic& traffic, double cycles, Contention& c);
// The least cycles the aggregate limits allow for `traffic`.
double traffic_floor(const DeviceProfile& p, const Traffic& traffic);

// Cycles of one DMA into a core (MTE2) moving `bytes`, a fraction `miss` of them from HBM.
double dma_cycles(const DeviceProfile& p, double bytes, double miss, const Contention& c);
// Cycles of one write from a core to GM at the path's own rate `gbps` (FixPipe, MTE3).
double write_cycles(const DeviceProfile& p, double bytes, double gbps, const Contention& c);
double bytes_per_cycle(const DeviceProfile& p, double gbps);

}  // namespace porta::detail::npu_sim
