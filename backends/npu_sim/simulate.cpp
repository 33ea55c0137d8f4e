// The public simulation API: timing a graph or one matmul shape without executing it, the report
// tables (per op, roofline), the pipe-level Chrome trace, and the cube numerics on plain vectors.
#include <algorithm>
#include <chrono>
#include <map>

#include <fmt/format.h>

#include <porta/error.hpp>
#include <porta/npu_sim.hpp>

#include "gemm.hpp"
#include "graph/graph_state.hpp"
#include "lowering.hpp"

namespace porta::npu_sim {

namespace {

using detail::npu_sim::GemmProblem;

std::string human_bytes(double b) {
  if (b >= 1e9) return fmt::format("{:.2f} GB", b / 1e9);
  if (b >= 1e6) return fmt::format("{:.2f} MB", b / 1e6);
  if (b >= 1e3) return fmt::format("{:.1f} KB", b / 1e3);
  return fmt::format("{:.0f} B", b);
}

std::string trim(const std::string& s, std::size_t width) {
  return s.size() <= width ? s : s.substr(0, width - 1) + "~";
}

detail::GraphState state_of(const Graph& graph) {
  detail::GraphState g;
  g.nodes.assign(graph.nodes().begin(), graph.nodes().end());
  for (std::size_t i = 0; i < graph.num_values(); ++i)
    g.values.push_back(graph.value(static_cast<ValueId>(i)));
  g.inputs = graph.inputs();
  g.outputs = graph.outputs();
  return g;
}

}  // namespace

Simulation simulate(const Graph& graph, const DeviceProfile& profile,
                    const SimulateOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  const detail::GraphState g = state_of(graph);
  Simulation sim;
  sim.report.profile = profile.name;
  detail::npu_sim::SpanSink sink;
  sink.spans = &sim.spans;
  sink.max_spans = options.max_spans;
  double clock_us = 0;
  for (const Node& n : g.nodes) {
    sink.origin_us = clock_us;
    OpReport r =
        detail::npu_sim::time_node(profile, g, n, {}, options.collect_spans ? &sink : nullptr);
    r.start_us = clock_us;
    clock_us += r.time_us;
    sim.report.total_flops += r.flops;
    sim.report.total_hbm_bytes += r.hbm_bytes;
    sim.report.ops.push_back(std::move(r));
  }
  sim.report.total_us = clock_us;
  sim.spans_truncated = sink.truncated;
  sim.report.model_wall_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  return sim;
}

OpReport simulate_matmul(const DeviceProfile& profile, std::int64_t m, std::int64_t n,
                         std::int64_t k, DType dtype, std::int64_t batch) {
  if (m < 0 || n < 0 || k < 0 || batch < 1)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("simulate_matmul: M = {}, N = {}, K = {} must be >= 0 and batch = {} "
                            ">= 1",
                            m, n, k, batch));
  if (dtype != DType::F16 && dtype != DType::BF16 && dtype != DType::F32 && dtype != DType::I8)
    throw Error(ErrorCode::Unsupported,
                fmt::format("simulate_matmul: the cube unit takes f16, bf16, f32 or i8, not {}",
                            dtype_name(dtype)));
  std::vector<detail::npu_sim::KernelResult> kernels;
  const std::string shape = fmt::format("{}x{}x{}", m, n, k);
  if (profile.model == ModelKind::Roofline) {
    const double es = static_cast<double>(dtype_size(dtype));
    const double flops = 2.0 * static_cast<double>(batch * m * n * k);
    const double bytes =
        static_cast<double>(batch) * (static_cast<double>(m * k + k * n) * es +
                                      static_cast<double>(m * n) * (dtype == DType::I8 ? 4 : es));
    kernels.push_back(
        detail::npu_sim::time_roofline(profile, "matmul " + shape, flops, bytes, dtype, true));
  } else {
    GemmProblem prob;
    prob.dtype = dtype;
    prob.out_dtype = dtype == DType::I8 ? DType::I32 : dtype;
    prob.groups.assign(static_cast<std::size_t>(batch), {m, n, k});
    kernels.push_back(detail::npu_sim::time_gemm(profile, prob));
  }
  return detail::npu_sim::compose(profile, "matmul " + shape, "matmul", kernels, dtype);
}

std::string GraphReport::to_table() const {
  std::string out =
      fmt::format("{:<14} {:<22} {:<18} {:>10} {:>9} {:>11} {:>8} {:>7} {:>9} {:>6}  {}\n", "op",
                  "node", "kernel", "time (us)", "launch", "cycles", "TFLOP/s", "peak %",
                  "HBM GB/s", "HBM %", "busiest pipe");
  for (const auto& r : ops) {
    const double s = r.time_us * 1e-6;
    out += fmt::format(
        "{:<14} {:<22} {:<18} {:>10.2f} {:>9.2f} {:>11.0f} {:>8.2f} {:>7.1f} "
        "{:>9.1f} {:>6.1f}  {} {:.0f}%\n",
        trim(r.op, 14), trim(r.node, 22), trim(r.kernel, 18), r.time_us, r.launch_us, r.cycles,
        s > 0 ? r.flops / s * 1e-12 : 0.0, 100 * r.compute_utilization,
        s > 0 ? r.hbm_bytes / s * 1e-9 : 0.0, 100 * r.hbm_utilization, pipe_name(r.busiest),
        100 * r.pipe_busy[static_cast<std::size_t>(r.busiest)]);
  }
  const double s = total_us * 1e-6;
  out += fmt::format(
      "total on {}: {:.2f} us simulated, {:.2f} GFLOP ({:.2f} TFLOP/s), {} from HBM ({:.1f} GB/s); "
      "the timing model took {:.2f} ms\n",
      profile, total_us, total_flops * 1e-9, s > 0 ? total_flops / s * 1e-12 : 0.0,
      human_bytes(total_hbm_bytes), s > 0 ? total_hbm_bytes / s * 1e-9 : 0.0, model_wall_ms);
  return out;
}

std::string GraphReport::roofline_table(const DeviceProfile& p) const {
  std::string out = fmt::format(
      "{:<14} {:<22} {:>10} {:>11} {:>9} {:>8} {:>7} {:>12} {:>10} {:>7}\n", "op", "node", "GFLOP",
      "HBM bytes", "FLOP/B", "ridge", "bound", "attainable", "achieved", "of att.");
  for (const auto& r : ops) {
    if (r.time_us <= 0) continue;
    // The unit the op computes on decides its roof: cube ops the matmul peak, others the vector's.
    const double peak =
        r.compute_on_cube ? p.peak_flops(DType::F16) : p.peak_vector_flops(DType::F16);
    const double bw = p.hbm_gbps * 1e9;
    const double intensity = r.hbm_bytes > 0 ? r.flops / r.hbm_bytes : 0;
    const double ridge = peak / bw;
    const double attainable = std::min(peak, intensity * bw);
    const double achieved = r.flops / (r.time_us * 1e-6);
    out += fmt::format(
        "{:<14} {:<22} {:>10.3f} {:>11} {:>9.1f} {:>8.1f} {:>7} {:>9.2f} TF {:>7.2f} TF "
        "{:>6.1f}%\n",
        trim(r.op, 14), trim(r.node, 22), r.flops * 1e-9, human_bytes(r.hbm_bytes), intensity,
        ridge, intensity >= ridge ? "compute" : "memory", attainable * 1e-12, achieved * 1e-12,
        attainable > 0 ? 100 * achieved / attainable : 0.0);
  }
  return out;
}

std::string Simulation::to_chrome_trace() const {
  // Track ids: cube cores first, then vector cores, each with its pipes in pipeline order.
  std::map<std::pair<std::string, int>, int> tids;
  auto core_key = [](const std::string& core) {
    const bool cube = core.rfind("aic", 0) == 0;
    return std::pair<int, int>(cube ? 0 : 1, std::stoi(core.substr(3)));
  };
  std::vector<std::pair<std::string, int>> tracks;
  for (const auto& s : spans) tracks.emplace_back(s.core, static_cast<int>(s.pipe));
  std::sort(tracks.begin(), tracks.end(), [&](const auto& a, const auto& b) {
    return std::make_pair(core_key(a.first), a.second) <
           std::make_pair(core_key(b.first), b.second);
  });
  tracks.erase(std::unique(tracks.begin(), tracks.end()), tracks.end());
  std::string out = "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n";
  out += fmt::format(
      "{{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":1,\"args\":{{\"name\":\"npu-sim {}\"}}}}",
      report.profile);
  out +=
      ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":1,\"args\":{\"name\":\"ops\"}}";
  int next = 2;
  for (const auto& t : tracks) {
    tids[t] = next;
    out += fmt::format(
        ",\n{{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":{},\"args\":{{\"name\":\"{} "
        "{}\"}}}}",
        next, t.first, pipe_name(static_cast<Pipe>(t.second)));
    out += fmt::format(
        ",\n{{\"name\":\"thread_sort_index\",\"ph\":\"M\",\"pid\":1,\"tid\":{},\"args\":{{\"sort_"
        "index\":{}}}}}",
        next, next);
    ++next;
  }
  for (const auto& r : report.ops)
    out += fmt::format(
        ",\n{{\"name\":\"{}\",\"cat\":\"op\",\"ph\":\"X\",\"pid\":1,\"tid\":1,\"ts\":{:.4f},"
        "\"dur\":{:.4f},\"args\":{{\"node\":\"{}\",\"kernel\":\"{}\",\"tiling\":\"{}\","
        "\"launch_us\":{:.3f},\"cycles\":{:.0f}}}}}",
        r.op, r.start_us, r.time_us, r.node, r.kernel, r.tiling, r.launch_us, r.cycles);
  for (const auto& s : spans)
    out += fmt::format(
        ",\n{{\"name\":\"{}\",\"cat\":\"{}\",\"ph\":\"X\",\"pid\":1,\"tid\":{},\"ts\":{:.4f},"
        "\"dur\":{:.4f}}}",
        s.op, pipe_name(s.pipe), tids[{s.core, static_cast<int>(s.pipe)}], s.start_us,
        s.end_us - s.start_us);
  if (spans_truncated)
    out +=
        ",\n{\"name\":\"trace truncated: raise "
        "SimulateOptions::max_spans\",\"ph\":\"i\",\"s\":\"g\",\"pid\":1,\"tid\":1,\"ts\":0}";
  out += "\n]}\n";
  return out;
}

std::vector<float> cube_matmul(const std::vector<float>& a, const std::vector<float>& b,
                               std::int64_t m, std::int64_t k, std::int64_t n, DType dtype) {
  if (m < 0 || k < 0 || n < 0 || a.size() != static_cast<std::size_t>(m * k) ||
      b.size() != static_cast<std::size_t>(k * n))
    throw Error(
        ErrorCode::ShapeMismatch,
        fmt::format("cube_matmul: a has {} elements and b {}, but M x K = {} and K x N = {}",
                    a.size(), b.size(), m * k, k * n));
  if (dtype != DType::F16 && dtype != DType::BF16 && dtype != DType::F32)
    throw Error(ErrorCode::Unsupported,
                fmt::format("cube_matmul computes in f16, bf16 or f32, not {}", dtype_name(dtype)));
  std::vector<float> a_dev(a.size());
  detail::npu_sim::widen(a.data(), DType::F32, static_cast<std::int64_t>(a.size()), a_dev.data(),
                         dtype);
  const auto packed = detail::npu_sim::pack_b(b.data(), DType::F32, k, n, false, dtype);
  std::vector<float> c(static_cast<std::size_t>(m * n));
  detail::npu_sim::gemm_f32(a_dev.data(), k, packed, m, c.data(), n);
  for (float& v : c) {
    if (dtype == DType::F16) v = f16_bits_to_f32(f32_to_f16_bits(v));
    if (dtype == DType::BF16) v = bf16_bits_to_f32(f32_to_bf16_bits(v));
  }
  return c;
}

std::vector<std::int32_t> cube_matmul_i8(const std::vector<std::int8_t>& a,
                                         const std::vector<std::int8_t>& b, std::int64_t m,
                                         std::int64_t k, std::int64_t n) {
  if (m < 0 || k < 0 || n < 0 || a.size() != static_cast<std::size_t>(m * k) ||
      b.size() != static_cast<std::size_t>(k * n))
    throw Error(ErrorCode::ShapeMismatch,
                fmt::format("cube_matmul_i8: a has {} elements and b {}, but M x K = {} and K x N "
                            "= {}",
                            a.size(), b.size(), m * k, k * n));
  if (k >= (std::int64_t{1} << 17))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("cube_matmul_i8: K = {} could overflow the int32 accumulator", k));
  std::vector<std::int32_t> c(static_cast<std::size_t>(m * n));
  detail::npu_sim::gemm_i8(a.data(), b.data(), m, k, n, c.data());
  return c;
}

}  // namespace porta::npu_sim
