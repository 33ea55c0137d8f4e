// npu-sim: a simulated Ascend 910B-style NPU. This header is its public API beyond the backend
// itself (which is used like any other, `compile(graph, {.backend = "npu-sim:910b2"})`): device
// profiles, the tile-level timing model applied to an op shape or a whole graph without running
// it, the per-op and per-graph reports, the roofline table, and a Chrome trace with one track per
// core and pipe. docs/npu-sim.md describes the model, each parameter's source and its limits.
#pragma once

#include <porta/config.hpp>

#if !PORTA_HAS_BACKEND_NPU_SIM
#error "<porta/npu_sim.hpp> needs the npu-sim backend, which this porta was built without (-DPORTA_BACKEND_NPU_SIM=ON)"
#endif

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <porta/dtype.hpp>
#include <porta/graph.hpp>

PORTA_API_BEGIN
namespace porta::npu_sim {

// ---- device profiles ---------------------------------------------------------------------------

// How a profile's times are computed: the tile-level model of a split cube/vector Ascend chip,
// or a plain roofline (max of compute and memory time) for chips not modelled in detail.
enum class ModelKind { Ascend, Roofline };

struct DeviceProfile {
  std::string name;         // "910b2"
  std::string description;  // "Ascend 910B2 (24 AI cores, 1.8 GHz)"
  std::string source;       // where the figures come from
  ModelKind model = ModelKind::Ascend;

  int cube_cores = 0;    // AIC (on a coupled 910A-like chip: AI cores)
  int vector_cores = 0;  // AIV
  double clock_mhz = 0;

  // Buffers, bytes (per cube core: L0A, L0B, L0C, L1; per vector core: UB) and chip-level L2, HBM.
  std::uint64_t l0a_bytes = 0, l0b_bytes = 0, l0c_bytes = 0, l1_bytes = 0, ub_bytes = 0;
  std::uint64_t l2_bytes = 0, hbm_bytes = 0;
  double hbm_gbps = 0;  // peak HBM bandwidth of the chip

  // Per-core data paths, bytes per cycle (CANN platform configuration).
  double gm_bytes_per_cycle = 0;       // a core's share of the HBM (miss) path
  double l2_read_bytes_per_cycle = 0;  // a core's share of L2 read bandwidth (hits)
  double l2_write_bytes_per_cycle = 0;
  // Effective single-core rates measured on hardware (msKPP), GB/s.
  double mte2_peak_gbps = 0;       // GM->L1/UB with many bursts
  double mte2_one_burst_gbps = 0;  // GM->L1 for a single burst: gives the DMA start latency
  std::uint64_t burst_bytes = 0;   // the burst the measurement counts
  double l1_to_l0a_gbps = 0;       // MTE1
  double l1_to_l0b_gbps = 0;       // MTE1
  double l0c_to_gm_gbps = 0;       // FixPipe
  double ub_to_gm_gbps = 0;        // MTE3

  // Cube unit: FLOPs per cycle per core in fp16/bf16 (16x16x16 fractal = 8192 FLOP), the
  // int8 and fp32 rates relative to fp16, and the fixed cycles each mmad instruction costs.
  double cube_flops_per_cycle = 0;
  double int8_rate = 2;
  double fp32_rate = 0.25;
  double mmad_startup_cycles = 0;

  // Vector unit: bytes per repeat and cycles per repeat of each instruction class.
  double vector_repeat_bytes = 256;
  double vector_cycles_simple = 2;  // add, mul, sub, max, cast, select, reduce step
  double vector_cycles_exp = 4;     // exp, ln
  double vector_cycles_div = 4;     // div, sqrt, reciprocal
  std::uint64_t ub_alignment = 32;

  // Per kernel: launch and dispatch, microseconds.
  double launch_overhead_us = 0;

  // Roofline profiles only: dense fp16 peak (TFLOPS); fp32 uses fp32_rate, int8 int8_rate.
  double roofline_tflops = 0;

  double clock_hz() const { return clock_mhz * 1e6; }
  // Peak FLOP/s of the whole chip for matmuls in `dtype` (f16/bf16, f32, i8).
  double peak_flops(DType dtype) const;
  // Peak vector FLOP/s (one op per element per lane at the simple-instruction rate) in `dtype`.
  double peak_vector_flops(DType dtype) const;
};

// The profiles built into the library (embedded at build time): "910b1", "910b2", "910b3",
// "910b4", "910a", "h20".
std::vector<std::string> builtin_profiles();
// `spec` is a built-in name ("910b2", case-insensitive), "file=PATH", or a path (anything with a
// '/' or ending in ".json"). Throws porta::Error: NotFound for an unknown name or missing file,
// CorruptFile naming the file and the field for a bad profile.
DeviceProfile load_profile(std::string_view spec);
// Parses a profile from JSON text; `source` names it in error messages.
DeviceProfile parse_profile(std::string_view json_text, std::string_view source);
// The profile as JSON (every field), for writing a custom profile to start from.
std::string profile_to_json(const DeviceProfile& profile);

// ---- reports -----------------------------------------------------------------------------------

enum class Pipe : std::uint8_t { Mte2, Mte1, Cube, FixPipe, Vector, Mte3 };
inline constexpr int kPipeCount = 6;
// "MTE2", "MTE1", "Cube", "FixPipe", "Vector", "MTE3"
std::string_view pipe_name(Pipe pipe) noexcept;

struct OpReport {
  std::string node;
  std::string op;
  std::string kernel;   // "cube gemm", "vector", "mte gather", "view", "roofline"
  std::string tiling;   // the tile program in words ("base 128x256x64, 32 tiles in 2 waves, ...")
  double start_us = 0;  // where the op starts on the simulated timeline (simulate() only)
  double cycles = 0;    // kernel cycles (launch excluded)
  double kernel_us = 0;
  double launch_us = 0;
  double time_us = 0;  // kernel_us + launch_us
  double flops = 0;
  // Bytes moved per memory level: HBM (L2 misses and write-backs), L2 (everything MTE2/MTE3 and
  // FixPipe move through GM), L1 (MTE2 into L1), L0 (MTE1 into L0A/L0B plus L0C read by FixPipe),
  // UB (MTE2 into and MTE3 out of the unified buffer).
  double hbm_bytes = 0, l2_bytes = 0, l1_bytes = 0, l0_bytes = 0, ub_bytes = 0;
  int cores_used = 0;
  int waves = 0;
  // Busy fraction of each pipe over the kernel, averaged over the cores that have the pipe.
  std::array<double, kPipeCount> pipe_busy{};
  Pipe busiest = Pipe::Cube;
  double compute_utilization = 0;  // flops / (time_us * peak of the op's unit and dtype)
  double hbm_utilization = 0;      // hbm_bytes / (time_us * HBM peak)
  bool compute_on_cube = false;
  // The most each buffer holds at once in the tile program (per core), bytes.
  std::uint64_t peak_l0a = 0, peak_l0b = 0, peak_l0c = 0, peak_l1 = 0, peak_ub = 0;
};

struct GraphReport {
  std::string profile;
  std::vector<OpReport> ops;
  double total_us = 0;
  double total_flops = 0;
  double total_hbm_bytes = 0;
  double model_wall_ms = 0;  // host time the timing model itself took

  // Per op: kernel, time, cycles, busiest pipe, utilisation; then the totals.
  std::string to_table() const;
  // Per op: arithmetic intensity (FLOP per HBM byte), the ridge point, the bound it is under,
  // attained against attainable FLOP/s.
  std::string roofline_table(const DeviceProfile& profile) const;
};

// One span of work on one pipe of one core, in microseconds from the start of the graph.
struct PipeSpan {
  std::string core;  // "aic3", "aiv17"
  Pipe pipe = Pipe::Cube;
  double start_us = 0, end_us = 0;
  std::string op;
};

struct SimulateOptions {
  bool collect_spans = false;
  std::size_t max_spans = 400000;  // the trace is truncated (and says so) beyond this
};

struct Simulation {
  GraphReport report;
  std::vector<PipeSpan> spans;
  bool spans_truncated = false;
  // Chrome trace-event JSON: one track per core and pipe, plus one for op boundaries.
  std::string to_chrome_trace() const;
};

// Times a graph on a profile without executing it. Data-dependent shapes (the rows each expert
// receives in grouped_matmul and moe_experts) are taken as balanced: every expert gets
// rows / experts. Executing the graph on the npu-sim backend times with the real routing.
Simulation simulate(const Graph& graph, const DeviceProfile& profile,
                    const SimulateOptions& options = {});

// One matmul [batch x] M x K times K x N in `dtype` (f16, bf16, f32 or i8), as a report.
OpReport simulate_matmul(const DeviceProfile& profile, std::int64_t m, std::int64_t n,
                         std::int64_t k, DType dtype, std::int64_t batch = 1);

// ---- device numerics ---------------------------------------------------------------------------

// out[M, N] = a[M, K] . b[K, N] (row-major) as the cube unit computes it: inputs rounded to
// `dtype` (f16 or bf16; f32 stays f32), products accumulated in f32, the result rounded once
// (round to nearest, ties to even) into `dtype` at FixPipe, returned widened to f32.
std::vector<float> cube_matmul(const std::vector<float>& a, const std::vector<float>& b,
                               std::int64_t m, std::int64_t k, std::int64_t n, DType dtype);
// int8 x int8 -> int32, exact (wrapping never happens for K < 2^17).
std::vector<std::int32_t> cube_matmul_i8(const std::vector<std::int8_t>& a,
                                         const std::vector<std::int8_t>& b, std::int64_t m,
                                         std::int64_t k, std::int64_t n);

}  // namespace porta::npu_sim
PORTA_API_END
