// Vector-core kernels (elementwise, norms, softmax, rope, the router, casts) as UB-sized chunks
// streamed CopyIn -> Compute -> CopyOut with double-buffered queues; row gathers as one DMA per
// row; the roofline estimate for ops without a kernel model; and composing an op's kernels into
// its report.
#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "timing.hpp"

namespace porta::detail::npu_sim {

namespace {

std::int64_t ceil_div(std::int64_t x, std::int64_t by) { return (x + by - 1) / by; }
double align_up(double x, double to) { return std::ceil(x / to) * to; }

struct Chunk {
  double mte2 = 0, vec = 0, mte3 = 0;
  bool operator<(const Chunk& o) const {
    return std::tie(mte2, vec, mte3) < std::tie(o.mte2, o.vec, o.mte3);
  }
};

struct StreamOutcome {
  double end = 0;
  std::array<double, kPipeCount> busy{};
  struct Span {
    Pipe pipe;
    double start, end;
  };
  std::vector<Span> spans;
};

// CopyIn -> Compute -> CopyOut with queues of depth 2 (TQue depth 2: double buffering).
StreamOutcome run_stream(const std::vector<Chunk>& chunks, double setup, bool keep_spans) {
  StreamOutcome o;
  std::array<double, kPipeCount> free{};
  auto issue = [&](Pipe pipe, double ready, double duration) {
    auto& f = free[static_cast<std::size_t>(pipe)];
    const double start = std::max(ready, f);
    f = start + duration;
    o.busy[static_cast<std::size_t>(pipe)] += duration;
    if (keep_spans && duration > 0) o.spans.push_back({pipe, start, f});
    return f;
  };
  if (setup > 0) issue(Pipe::Mte2, 0, setup);
  std::array<double, 2> in_free{0, 0}, out_free{0, 0};
  for (std::size_t j = 0; j < chunks.size(); ++j) {
    const auto slot = j % 2;
    const double in = issue(Pipe::Mte2, in_free[slot], chunks[j].mte2);
    const double done = issue(Pipe::Vector, std::max(in, out_free[slot]), chunks[j].vec);
    in_free[slot] = done;
    out_free[slot] = issue(Pipe::Mte3, done, chunks[j].mte3);
  }
  for (double f : free) o.end = std::max(o.end, f);
  return o;
}

// Runs per-core chunk lists (chunk i on core i % cores), lowering the bandwidth shares while the
// cores together ask more than L2 or HBM can give. `traffic_of(i)` is chunk i's GM traffic.
template <class MakeChunk, class TrafficOf>
KernelResult run_cores(const DeviceProfile& p, std::int64_t chunks, double setup,
                       MakeChunk&& make_chunk, TrafficOf&& traffic_of, SpanSink* sink) {
  KernelResult r;
  const auto cores = std::min<std::int64_t>(p.vector_cores, std::max<std::int64_t>(chunks, 0));
  r.cores_used = static_cast<int>(cores);
  r.waves = cores > 0 ? static_cast<int>(ceil_div(chunks, cores)) : 0;
  for (auto pipe : {Pipe::Mte2, Pipe::Vector, Pipe::Mte3})
    r.pipe_cores[static_cast<std::size_t>(pipe)] = p.vector_cores;
  if (cores == 0) return r;
  Traffic traffic;
  for (std::int64_t i = 0; i < chunks; ++i) {
    const Traffic t = traffic_of(i);
    traffic.hit += t.hit;
    traffic.miss += t.miss;
    traffic.write += t.write;
  }
  Contention contention;
  for (int round = 0;; ++round) {
    const bool last = round == 5;
    std::map<std::vector<Chunk>, StreamOutcome> classes;
    double end = 0;
    std::array<double, kPipeCount> busy{};
    std::vector<const StreamOutcome*> outcome(static_cast<std::size_t>(cores));
    for (std::int64_t c = 0; c < cores; ++c) {
      std::vector<Chunk> list;
      for (std::int64_t i = c; i < chunks; i += cores) list.push_back(make_chunk(i, contention));
      auto it = classes.find(list);
      if (it == classes.end())
        it = classes.emplace(list, run_stream(list, setup, sink != nullptr)).first;
      outcome[static_cast<std::size_t>(c)] = &it->second;
      end = std::max(end, it->second.end);
      for (std::size_t i = 0; i < busy.size(); ++i) busy[i] += it->second.busy[i];
    }
    if (!last && settle(p, traffic, end, contention)) continue;
    r.cycles = std::max(end, traffic_floor(p, traffic));
    r.busy_cycles = busy;
    if (sink != nullptr) {
      const double us = 1e6 / p.clock_hz();
      for (std::int64_t c = 0; c < cores; ++c) {
        const std::string core = fmt::format("aiv{}", c);
        for (const auto& s : outcome[static_cast<std::size_t>(c)]->spans)
          sink->add(core, s.pipe, s.start * us, s.end * us);
      }
    }
    break;
  }
  r.time_us = r.cycles / p.clock_hz() * 1e6;
  return r;
}

}  // namespace

void SpanSink::add(const std::string& core, Pipe pipe, double start_us, double end_us) {
  if (spans == nullptr) return;
  if (spans->size() >= max_spans) {
    truncated = true;
    return;
  }
  spans->push_back({core, pipe, origin_us + start_us, origin_us + end_us, op});
}

KernelResult time_vector(const DeviceProfile& p, const VectorWork& w, SpanSink* sink) {
  const double total_elems = static_cast<double>(w.rows) * static_cast<double>(w.row_elems);
  if (total_elems <= 0) {  // an empty tensor: the kernel launches and does nothing
    KernelResult empty;
    empty.kernel = "vector";
    empty.tiling = w.what + ": empty";
    empty.flops = w.flops;
    return empty;
  }
  const double align = static_cast<double>(p.ub_alignment);
  // UB per element: the streamed inputs and outputs plus a working copy in the compute dtype.
  const double per_elem = w.in_bytes_per_elem + w.out_bytes_per_elem + w.compute_bytes;
  const double capacity =
      std::max(p.vector_repeat_bytes / w.compute_bytes,
               std::floor((static_cast<double>(p.ub_bytes) - w.fixed_bytes) / 2.0 / per_elem));
  // Elements per UB fill and fills: whole rows when they fit, else pieces of one row.
  double rows_per_fill = 1, elems_per_fill = 0, pieces = 1;
  std::int64_t fills = 0;
  const double padded_row =
      align_up(static_cast<double>(w.row_elems) * w.compute_bytes, align) / w.compute_bytes;
  if (w.rows == 1) {
    const double repeat_elems = p.vector_repeat_bytes / w.compute_bytes;
    elems_per_fill = std::max(repeat_elems, std::floor(capacity / repeat_elems) * repeat_elems);
    fills = static_cast<std::int64_t>(std::ceil(total_elems / elems_per_fill));
  } else if (padded_row <= capacity) {
    rows_per_fill = std::floor(capacity / padded_row);
    elems_per_fill = rows_per_fill * static_cast<double>(w.row_elems);
    fills = ceil_div(w.rows, static_cast<std::int64_t>(rows_per_fill));
  } else {
    pieces = std::ceil(padded_row / capacity);
    elems_per_fill = static_cast<double>(w.row_elems) / pieces;
    fills = w.rows * static_cast<std::int64_t>(pieces);
  }
  if (total_elems == 0) fills = 0;
  const double passes = pieces > 1 ? w.row_passes : 1.0;
  // Elements and rows of fill i (the last one may be partial).
  const auto fill_of = [&](std::int64_t i) {
    double elems = elems_per_fill, rows = rows_per_fill;
    if (w.rows == 1 && i == fills - 1)
      elems = total_elems - elems_per_fill * static_cast<double>(fills - 1);
    if (w.rows > 1 && pieces == 1 && i == fills - 1) {
      rows = static_cast<double>(w.rows) - rows_per_fill * static_cast<double>(fills - 1);
      elems = rows * static_cast<double>(w.row_elems);
    }
    return std::pair<double, double>(elems, rows);
  };
  KernelResult r = run_cores(
      p, fills, w.fixed_bytes > 0 ? dma_cycles(p, w.fixed_bytes, 1, Contention{}) : 0.0,
      [&](std::int64_t i, const Contention& contention) {
        const auto [elems, rows] = fill_of(i);
        Chunk c;
        c.mte2 = dma_cycles(p, elems * w.in_bytes_per_elem * passes, 1.0, contention);
        // A partial repeat is masked, not skipped: each row rounds up to whole repeats.
        const double row_repeats = w.rows == 1
                                       ? std::ceil(elems * w.compute_bytes / p.vector_repeat_bytes)
                                       : rows * std::ceil(std::min(padded_row, elems) *
                                                          w.compute_bytes / p.vector_repeat_bytes);
        c.vec = row_repeats * w.cycles_per_repeat * passes;
        c.mte3 = write_cycles(p, elems * w.out_bytes_per_elem, p.ub_to_gm_gbps, contention);
        return c;
      },
      [&](std::int64_t i) {
        const double elems = fill_of(i).first;
        return Traffic{0, elems * w.in_bytes_per_elem * passes, elems * w.out_bytes_per_elem};
      },
      sink);
  r.kernel = "vector";
  r.flops = w.flops;
  const double in = total_elems * w.in_bytes_per_elem * passes + w.fixed_bytes * r.cores_used;
  const double out = total_elems * w.out_bytes_per_elem;
  r.hbm_bytes = r.l2_bytes = r.ub_bytes = in + out;
  r.peak_ub = static_cast<std::uint64_t>(
      std::min(static_cast<double>(p.ub_bytes), 2.0 * elems_per_fill * per_elem + w.fixed_bytes));
  r.tiling =
      fmt::format("{}: {} UB fills of {:.0f} elements ({} per row{}), {} vector cores", w.what,
                  fills, elems_per_fill, w.row_elems,
                  pieces > 1 ? fmt::format(", rows split in {:.0f}", pieces) : "", r.cores_used);
  return r;
}

KernelResult time_gather(const DeviceProfile& p, const GatherWork& w, SpanSink* sink) {
  const double seg_ub = align_up(w.segment_bytes, static_cast<double>(p.ub_alignment));
  const double fill_bytes = static_cast<double>(p.ub_bytes) / 4;  // in and out, double-buffered
  const auto per_fill = static_cast<std::int64_t>(std::max(1.0, std::floor(fill_bytes / seg_ub)));
  const std::int64_t fills = w.segments > 0 ? ceil_div(w.segments, per_fill) : 0;
  const double out_per_fill = fills > 0 ? w.out_bytes / static_cast<double>(fills) : 0;
  const double vec_per_fill = fills > 0 ? w.vector_cycles / static_cast<double>(fills) : 0;
  KernelResult r = run_cores(
      p, fills, 0.0,
      [&](std::int64_t i, const Contention& contention) {
        const std::int64_t segs = std::min(per_fill, w.segments - i * per_fill);
        Chunk c;
        c.mte2 = static_cast<double>(segs) * dma_cycles(p, w.segment_bytes, 1.0, contention);
        c.vec = vec_per_fill;
        c.mte3 = write_cycles(p, out_per_fill, p.ub_to_gm_gbps, contention);
        return c;
      },
      [&](std::int64_t i) {
        const auto segs = static_cast<double>(std::min(per_fill, w.segments - i * per_fill));
        return Traffic{0, segs * w.segment_bytes, out_per_fill};
      },
      sink);
  r.kernel = "mte gather";
  r.flops = w.flops;
  const double in = static_cast<double>(w.segments) * w.segment_bytes;
  r.hbm_bytes = r.l2_bytes = r.ub_bytes = in + w.out_bytes;
  r.peak_ub = static_cast<std::uint64_t>(
      std::min(static_cast<double>(p.ub_bytes),
               2.0 * static_cast<double>(per_fill) * seg_ub + 2.0 * out_per_fill));
  r.tiling = fmt::format("{}: {} DMAs of {:.0f} bytes in {} UB fills, {} vector cores", w.what,
                         w.segments, w.segment_bytes, fills, r.cores_used);
  return r;
}

KernelResult time_roofline(const DeviceProfile& p, const std::string& what, double flops,
                           double bytes, DType dtype, bool on_cube) {
  KernelResult r;
  r.kernel = "roofline";
  r.on_cube = on_cube;
  const double peak = on_cube ? p.peak_flops(dtype) : p.peak_vector_flops(dtype);
  const double compute_s = peak > 0 ? flops / peak : 0;
  const double memory_s = bytes / (p.hbm_gbps * 1e9);
  const double seconds = std::max(compute_s, memory_s);
  r.time_us = seconds * 1e6;
  r.cycles = p.clock_mhz > 0 ? seconds * p.clock_hz() : 0;
  r.flops = flops;
  r.hbm_bytes = r.l2_bytes = bytes;
  const auto unit = on_cube ? Pipe::Cube : Pipe::Vector;
  const int cores = on_cube ? p.cube_cores : p.vector_cores;
  r.cores_used = cores;
  if (r.cycles > 0) {
    r.busy_cycles[static_cast<std::size_t>(unit)] = compute_s * p.clock_hz() * cores;
    r.busy_cycles[static_cast<std::size_t>(Pipe::Mte2)] = memory_s * p.clock_hz() * cores;
    r.pipe_cores[static_cast<std::size_t>(unit)] = cores;
    r.pipe_cores[static_cast<std::size_t>(Pipe::Mte2)] = cores;
  }
  r.tiling =
      fmt::format("{}: roofline, {} bound", what, compute_s >= memory_s ? "compute" : "memory");
  return r;
}

OpReport compose(const DeviceProfile& p, const std::string& node, const std::string& op,
                 const std::vector<KernelResult>& kernels, DType dtype) {
  OpReport r;
  r.node = node;
  r.op = op;
  std::array<double, kPipeCount> busy{}, capacity{};
  std::vector<std::string> tilings;
  for (const auto& k : kernels) {
    if (r.kernel.empty())
      r.kernel = k.kernel;
    else if (r.kernel.find(k.kernel) == std::string::npos)
      r.kernel += " + " + k.kernel;
    tilings.push_back(k.tiling);
    r.cycles += k.cycles;
    r.kernel_us += k.time_us;
    if (k.launched) r.launch_us += p.launch_overhead_us;
    r.flops += k.flops;
    r.hbm_bytes += k.hbm_bytes;
    r.l2_bytes += k.l2_bytes;
    r.l1_bytes += k.l1_bytes;
    r.l0_bytes += k.l0_bytes;
    r.ub_bytes += k.ub_bytes;
    r.cores_used = std::max(r.cores_used, k.cores_used);
    r.waves = std::max(r.waves, k.waves);
    r.compute_on_cube = r.compute_on_cube || k.on_cube;
    r.peak_l0a = std::max(r.peak_l0a, k.peak_l0a);
    r.peak_l0b = std::max(r.peak_l0b, k.peak_l0b);
    r.peak_l0c = std::max(r.peak_l0c, k.peak_l0c);
    r.peak_l1 = std::max(r.peak_l1, k.peak_l1);
    r.peak_ub = std::max(r.peak_ub, k.peak_ub);
    for (std::size_t i = 0; i < busy.size(); ++i) {
      busy[i] += k.busy_cycles[i];
      capacity[i] += static_cast<double>(k.pipe_cores[i]) * k.cycles;
    }
  }
  r.tiling = fmt::format("{}", fmt::join(tilings, "; "));
  r.time_us = r.kernel_us + r.launch_us;
  double best = -1;
  for (std::size_t i = 0; i < busy.size(); ++i) {
    r.pipe_busy[i] = capacity[i] > 0 ? busy[i] / capacity[i] : 0;
    if (r.pipe_busy[i] > best) {
      best = r.pipe_busy[i];
      r.busiest = static_cast<Pipe>(i);
    }
  }
  const double seconds = r.time_us * 1e-6;
  const double peak = r.compute_on_cube ? p.peak_flops(dtype) : p.peak_vector_flops(dtype);
  r.compute_utilization = seconds > 0 && peak > 0 ? r.flops / (seconds * peak) : 0;
  r.hbm_utilization = seconds > 0 ? r.hbm_bytes / (seconds * p.hbm_gbps * 1e9) : 0;
  return r;
}

}  // namespace porta::detail::npu_sim
