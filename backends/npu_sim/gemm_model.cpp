// The cube GEMM tile program and its timing. It mirrors Ascend C's MatMul: the output is cut
// into base tiles (baseM x baseN) whose operands fit L0A/L0B double-buffered and whose fp32
// accumulator fits L0C; K is staged through L1 in blocks of step_k (double-buffered); output
// tiles are spread over the cube cores round-robin, in waves; FixPipe casts and writes each tile.
#include <algorithm>
#include <cmath>
#include <list>
#include <map>
#include <tuple>
#include <unordered_map>

#include <fmt/format.h>

#include <porta/error.hpp>

#include "timing.hpp"

namespace porta::detail::npu_sim {

namespace {

std::int64_t round_up(std::int64_t x, std::int64_t to) { return (x + to - 1) / to * to; }
std::int64_t ceil_div(std::int64_t x, std::int64_t by) { return (x + by - 1) / by; }

double cube_rate(const DeviceProfile& p, DType t) {
  if (t == DType::I8) return p.int8_rate;
  if (t == DType::F32) return p.fp32_rate;
  return 1.0;
}

// One output tile as the core sees it.
struct TileDesc {
  std::int64_t m = 0, n = 0, k = 0;
  double miss_a = 1, miss_b = 1;  // 1 when the operand block is not in L2 (first touch)
  auto key() const { return std::tie(m, n, k, miss_a, miss_b); }
  bool operator<(const TileDesc& o) const { return key() < o.key(); }
};

struct CoreOutcome {
  double end = 0;
  std::array<double, kPipeCount> busy{};
  double l1 = 0, l0 = 0;
  Traffic traffic;
  struct Span {
    Pipe pipe;
    double start, end;
  };
  std::vector<Span> spans;
};

class CoreProgram {
 public:
  CoreProgram(const DeviceProfile& p, const GemmProblem& prob, const GemmTiling& t,
              const Contention& c, bool keep_spans)
      : p_(p), t_(t), c_(c), keep_spans_(keep_spans) {
    es_ = static_cast<double>(dtype_size(prob.dtype));
    b_gm_es_ = prob.b_bytes_per_elem();
    out_es_ = static_cast<double>(dtype_size(prob.out_dtype));
    rate_ = cube_rate(p, prob.dtype);
    l0a_bpc_ = bytes_per_cycle(p, p.l1_to_l0a_gbps);
    l0b_bpc_ = bytes_per_cycle(p, p.l1_to_l0b_gbps);
  }

  CoreOutcome run(const std::vector<TileDesc>& tiles) {
    out_ = {};
    free_ = {};
    std::array<double, 2> l1_free{0, 0}, l0_free{0, 0}, l0c_free{0, 0};
    std::int64_t l1_count = 0, l0_count = 0, tile_count = 0;
    for (const TileDesc& tile : tiles) {
      const double m16 = static_cast<double>(round_up(tile.m, 16));
      const double n16 = static_cast<double>(round_up(tile.n, 16));
      bool first_step = true;
      double last_cube = 0;
      for (std::int64_t k0 = 0; k0 < tile.k; k0 += t_.step_k) {
        // CopyIn to L1 (MTE2): the A block and the B block of this K step, into a free slot.
        const std::int64_t kb = std::min(t_.step_k, tile.k - k0);
        const auto slot = static_cast<std::size_t>(l1_count++ % 2);
        const double a_bytes = static_cast<double>(tile.m * kb) * es_;
        const double b_bytes = static_cast<double>(kb * tile.n) * b_gm_es_;
        double loaded = issue(Pipe::Mte2, l1_free[slot], dma_cycles(p_, a_bytes, tile.miss_a, c_));
        loaded = issue(Pipe::Mte2, loaded, dma_cycles(p_, b_bytes, tile.miss_b, c_));
        out_.l1 += a_bytes + b_bytes;
        out_.traffic.miss += a_bytes * tile.miss_a + b_bytes * tile.miss_b;
        out_.traffic.hit += a_bytes * (1 - tile.miss_a) + b_bytes * (1 - tile.miss_b);
        double block_read = loaded;
        for (std::int64_t s = 0; s < kb; s += t_.base_k) {
          // L1 -> L0A/L0B (MTE1) in the NZ layout, padded to 16x16 fractals, then one mmad.
          const double ks = static_cast<double>(round_up(std::min(t_.base_k, kb - s), 16));
          const auto l0 = static_cast<std::size_t>(l0_count++ % 2);
          const double a0 = m16 * ks * es_, b0 = ks * n16 * es_;
          block_read =
              issue(Pipe::Mte1, std::max(loaded, l0_free[l0]), a0 / l0a_bpc_ + b0 / l0b_bpc_);
          out_.l0 += a0 + b0;
          double ready = block_read;
          if (first_step) {  // the tile's accumulator must have been drained by FixPipe
            ready = std::max(ready, l0c_free[static_cast<std::size_t>(tile_count % t_.l0c_depth)]);
            first_step = false;
          }
          const double mmad = (m16 / 16) * (n16 / 16) * (ks / 16) / rate_ + p_.mmad_startup_cycles;
          last_cube = issue(Pipe::Cube, ready, mmad);
          l0_free[l0] = last_cube;
        }
        l1_free[slot] = block_read;
      }
      // FixPipe: L0C -> GM with the f32 -> fp16/bf16 cast, once per output tile.
      const double c_bytes = static_cast<double>(tile.m * tile.n) * out_es_;
      const double written =
          issue(Pipe::FixPipe, last_cube, write_cycles(p_, c_bytes, p_.l0c_to_gm_gbps, c_));
      out_.l0 += m16 * n16 * 4;
      out_.traffic.write += c_bytes;
      l0c_free[static_cast<std::size_t>(tile_count % t_.l0c_depth)] = written;
      ++tile_count;
    }
    for (double f : free_) out_.end = std::max(out_.end, f);
    return std::move(out_);
  }

 private:
  double issue(Pipe pipe, double ready, double duration) {
    auto& f = free_[static_cast<std::size_t>(pipe)];
    const double start = std::max(ready, f);
    f = start + duration;
    out_.busy[static_cast<std::size_t>(pipe)] += duration;
    if (keep_spans_) out_.spans.push_back({pipe, start, f});
    return f;
  }

  const DeviceProfile& p_;
  const GemmTiling& t_;
  const Contention& c_;
  bool keep_spans_;
  double es_ = 2, b_gm_es_ = 2, out_es_ = 2, rate_ = 1, l0a_bpc_ = 1, l0b_bpc_ = 1;
  std::array<double, kPipeCount> free_{};
  CoreOutcome out_;
};

// L2 as an LRU of operand blocks (an A row-block or a B column-block, K deep), touched in the
// order the tiles are issued; output tiles pass through it too.
class L2Blocks {
 public:
  explicit L2Blocks(double capacity) : capacity_(capacity) {}
  bool contains(std::uint64_t id) const { return where_.count(id) != 0; }
  bool touch(std::uint64_t id, double bytes) {
    auto it = where_.find(id);
    if (it != where_.end()) {
      order_.splice(order_.begin(), order_, it->second);
      return true;
    }
    order_.push_front({id, bytes});
    where_[id] = order_.begin();
    used_ += bytes;
    while (used_ > capacity_ && order_.size() > 1) {
      used_ -= order_.back().second;
      where_.erase(order_.back().first);
      order_.pop_back();
    }
    return false;
  }

 private:
  double capacity_, used_ = 0;
  std::list<std::pair<std::uint64_t, double>> order_;
  std::unordered_map<std::uint64_t, std::list<std::pair<std::uint64_t, double>>::iterator> where_;
};

// Every core's tile list, in the order the core runs them: tile i goes to core i % cores. Tiles
// are issued row by row within panels of output columns narrow enough that the panel's B blocks
// stay in L2 (the swizzle real kernels use). L2 is judged per wave: a block resident from an
// earlier wave hits; a block first touched in this wave is fetched from HBM once, the fetch
// shared by the tiles of the wave that read it.
std::vector<std::vector<TileDesc>> assign_tiles(const DeviceProfile& p, const GemmProblem& prob,
                                                const GemmTiling& t, std::size_t& tile_count) {
  const double es = static_cast<double>(dtype_size(prob.dtype));
  const double b_es = prob.b_bytes_per_elem();
  const double out_es = static_cast<double>(dtype_size(prob.out_dtype));
  const double l2 = static_cast<double>(p.l2_bytes);
  struct Issued {
    TileDesc desc;
    std::uint64_t a, b, c;
    double a_bytes, b_bytes, c_bytes;
  };
  std::vector<Issued> tiles;
  std::uint64_t next_id = 0;
  const std::uint64_t shared_b_base = 1ull << 62;
  for (const auto& g : prob.groups) {
    if (g.m == 0 || g.n == 0) continue;
    const auto mb = ceil_div(g.m, t.base_m), nb = ceil_div(g.n, t.base_n);
    const std::uint64_t a_base = next_id;
    const std::uint64_t b_base =
        prob.b_shared ? shared_b_base : a_base + static_cast<std::uint64_t>(mb);
    const std::uint64_t c_base = a_base + static_cast<std::uint64_t>(mb + nb);
    next_id += static_cast<std::uint64_t>(mb + nb + mb * nb);
    const double b_block = static_cast<double>(t.base_n * g.k) * b_es;
    const auto panel = std::max<std::int64_t>(1, static_cast<std::int64_t>(l2 / 2 / b_block));
    for (std::int64_t j0 = 0; j0 < nb; j0 += panel)
      for (std::int64_t i = 0; i < mb; ++i)
        for (std::int64_t j = j0; j < std::min(nb, j0 + panel); ++j) {
          Issued x;
          x.desc.m = std::min(t.base_m, g.m - i * t.base_m);
          x.desc.n = std::min(t.base_n, g.n - j * t.base_n);
          x.desc.k = g.k;
          x.a = a_base + static_cast<std::uint64_t>(i);
          x.b = b_base + static_cast<std::uint64_t>(j);
          x.c = c_base + static_cast<std::uint64_t>(i * nb + j);
          x.a_bytes = static_cast<double>(x.desc.m * g.k) * es;
          x.b_bytes = static_cast<double>(x.desc.n * g.k) * b_es;
          x.c_bytes = static_cast<double>(x.desc.m * x.desc.n) * out_es;
          tiles.push_back(x);
        }
  }
  tile_count = tiles.size();
  const auto cores = static_cast<std::size_t>(p.cube_cores);
  L2Blocks resident(l2);
  std::vector<std::vector<TileDesc>> per_core(std::min(cores, tiles.size()));
  for (std::size_t w0 = 0; w0 < tiles.size(); w0 += cores) {
    const std::size_t w1 = std::min(tiles.size(), w0 + cores);
    std::unordered_map<std::uint64_t, int> readers;
    for (std::size_t i = w0; i < w1; ++i) {
      ++readers[tiles[i].a];
      ++readers[tiles[i].b];
    }
    for (std::size_t i = w0; i < w1; ++i) {
      auto& x = tiles[i];
      x.desc.miss_a = resident.contains(x.a) ? 0 : 1.0 / readers[x.a];
      x.desc.miss_b = resident.contains(x.b) ? 0 : 1.0 / readers[x.b];
    }
    for (std::size_t i = w0; i < w1; ++i) {
      resident.touch(tiles[i].a, tiles[i].a_bytes);
      resident.touch(tiles[i].b, tiles[i].b_bytes);
      resident.touch(tiles[i].c, tiles[i].c_bytes);
      per_core[i % cores].push_back(tiles[i].desc);
    }
  }
  return per_core;
}

// The least cycles a tiling can take: its mmads perfectly balanced over the cores, or its loads
// at the DMA engines' full rate. Prunes the tile search.
double lower_bound(const DeviceProfile& p, const GemmProblem& prob, const GemmTiling& t) {
  double mmad = 0, loads = 0;
  std::int64_t tiles = 0;
  const double es = static_cast<double>(dtype_size(prob.dtype));
  for (const auto& g : prob.groups) {
    if (g.m == 0 || g.n == 0) continue;
    const auto mb = ceil_div(g.m, t.base_m), nb = ceil_div(g.n, t.base_n);
    tiles += mb * nb;
    mmad += static_cast<double>(round_up(g.m, 16) / 16) *
            static_cast<double>(round_up(g.n, 16) / 16) *
            static_cast<double>(round_up(g.k, 16) / 16);
    loads += static_cast<double>(g.k) *
             (prob.b_bytes_per_elem() * static_cast<double>(mb * std::min(g.n, nb * t.base_n)) +
              es * static_cast<double>(nb * std::min(g.m, mb * t.base_m)));
  }
  const double cores =
      static_cast<double>(std::min<std::int64_t>(p.cube_cores, std::max<std::int64_t>(tiles, 1)));
  const Contention none;
  const double dma_bpc = 1.0 / std::max(1e-12, dma_cycles(p, 1e9, 0, none) / 1e9);
  return std::max(mmad / cube_rate(p, prob.dtype) / cores, loads / (cores * dma_bpc));
}

}  // namespace

std::vector<GemmTiling> gemm_tilings(const DeviceProfile& p, const GemmProblem& prob) {
  std::int64_t max_m = 16, max_n = 16, max_k = 16;
  for (const auto& g : prob.groups) {
    max_m = std::max(max_m, round_up(g.m, 16));
    max_n = std::max(max_n, round_up(g.n, 16));
    max_k = std::max(max_k, round_up(g.k, 16));
  }
  const auto es = static_cast<std::int64_t>(dtype_size(prob.dtype));
  const auto acc = std::int64_t{4};  // fp32 / int32 accumulator in L0C
  static constexpr std::int64_t kCandidates[][2] = {
      {128, 256}, {256, 128}, {128, 128}, {64, 256}, {256, 64}, {64, 128},
      {128, 64},  {64, 64},   {32, 256},  {16, 256}, {32, 128}, {16, 128},
      {32, 64},   {16, 64},   {32, 32},   {16, 32},  {16, 16}};
  std::vector<GemmTiling> out;
  for (const auto& c : kCandidates) {
    GemmTiling t;
    t.base_m = std::min(c[0], max_m);
    t.base_n = std::min(c[1], max_n);
    if (std::any_of(out.begin(), out.end(), [&](const GemmTiling& o) {
          return o.base_m == t.base_m && o.base_n == t.base_n;
        }))
      continue;
    if (static_cast<std::uint64_t>(t.base_m * t.base_n * acc) > p.l0c_bytes) continue;
    t.l0c_depth = static_cast<std::uint64_t>(2 * t.base_m * t.base_n * acc) <= p.l0c_bytes ? 2 : 1;
    for (std::int64_t bk : {256, 128, 64, 32, 16}) {
      if (static_cast<std::uint64_t>(2 * t.base_m * bk * es) <= p.l0a_bytes &&
          static_cast<std::uint64_t>(2 * bk * t.base_n * es) <= p.l0b_bytes) {
        t.base_k = std::min(bk, max_k);
        break;
      }
    }
    if (t.base_k == 0) continue;
    t.step_k = t.base_k;
    while (t.step_k * 2 <= max_k &&
           static_cast<std::uint64_t>(2 * (t.base_m + t.base_n) * t.step_k * 2 * es) <= p.l1_bytes)
      t.step_k *= 2;
    out.push_back(t);
  }
  return out;
}

KernelResult time_gemm(const DeviceProfile& p, const GemmProblem& prob, const GemmTiling* tiling,
                       SpanSink* sink) {
  if (tiling == nullptr) {
    auto candidates = gemm_tilings(p, prob);
    if (candidates.empty())
      throw Error(ErrorCode::Unsupported,
                  fmt::format("npu-sim profile {}: no GEMM base tile fits L0A/L0B/L0C", p.name));
    // The tiler picks what the model says is fastest, as an autotuned kernel would; tilings whose
    // lower bound cannot beat the best so far are not simulated.
    std::vector<std::pair<double, std::size_t>> order;
    for (std::size_t i = 0; i < candidates.size(); ++i)
      order.emplace_back(lower_bound(p, prob, candidates[i]), i);
    std::sort(order.begin(), order.end());
    const GemmTiling* best = nullptr;
    double best_cycles = 0;
    for (const auto& [bound, i] : order) {
      if (best != nullptr && bound >= best_cycles) break;
      const double cycles = time_gemm(p, prob, &candidates[i], nullptr).cycles;
      if (best == nullptr || cycles < best_cycles) {
        best = &candidates[i];
        best_cycles = cycles;
      }
    }
    return time_gemm(p, prob, best, sink);
  }
  const GemmTiling& t = *tiling;
  KernelResult r;
  r.kernel = "cube gemm";
  r.on_cube = true;
  std::size_t tiles = 0;
  const auto per_core = assign_tiles(p, prob, t, tiles);
  r.cores_used = static_cast<int>(per_core.size());
  r.waves = per_core.empty() ? 0 : static_cast<int>(per_core.front().size());
  const double es = static_cast<double>(dtype_size(prob.dtype));
  r.peak_l0a = static_cast<std::uint64_t>(2.0 * static_cast<double>(t.base_m * t.base_k) * es);
  r.peak_l0b = static_cast<std::uint64_t>(2.0 * static_cast<double>(t.base_k * t.base_n) * es);
  r.peak_l0c = static_cast<std::uint64_t>(t.l0c_depth * t.base_m * t.base_n * 4);
  r.peak_l1 =
      static_cast<std::uint64_t>(2.0 * static_cast<double>((t.base_m + t.base_n) * t.step_k) * es);
  for (const auto& g : prob.groups) r.flops += 2.0 * static_cast<double>(g.m * g.n * g.k);
  r.tiling =
      fmt::format("base {}x{}x{}, L1 step {}, L0C x{}, {} tiles on {} cores in {} waves", t.base_m,
                  t.base_n, t.base_k, t.step_k, t.l0c_depth, tiles, r.cores_used, r.waves);
  for (int pipe : {0, 1, 2, 3}) r.pipe_cores[static_cast<std::size_t>(pipe)] = p.cube_cores;
  if (tiles == 0) return r;

  // Run every core's program; cores with the same tile list share one run. Repeat with lower
  // bandwidth shares while the cores together ask more than L2 or HBM can give.
  Contention contention;
  for (int round = 0;; ++round) {
    const bool last = round == 5;
    CoreProgram program(p, prob, t, contention, sink != nullptr);
    std::map<std::vector<TileDesc>, CoreOutcome> classes;
    double end = 0;
    std::array<double, kPipeCount> busy{};
    Traffic traffic;
    double l1 = 0, l0 = 0;
    for (const auto& list : per_core) {
      auto it = classes.find(list);
      if (it == classes.end()) it = classes.emplace(list, program.run(list)).first;
      const CoreOutcome& o = it->second;
      end = std::max(end, o.end);
      for (std::size_t i = 0; i < busy.size(); ++i) busy[i] += o.busy[i];
      traffic.hit += o.traffic.hit;
      traffic.miss += o.traffic.miss;
      traffic.write += o.traffic.write;
      l1 += o.l1;
      l0 += o.l0;
    }
    if (!last && settle(p, traffic, end, contention)) continue;
    r.cycles = std::max(end, traffic_floor(p, traffic));
    r.busy_cycles = busy;
    r.hbm_bytes = traffic.miss + traffic.write;
    r.l2_bytes = traffic.hit + traffic.miss + traffic.write;
    r.l1_bytes = l1;
    r.l0_bytes = l0;
    if (sink != nullptr) {
      const double us = 1e6 / p.clock_hz();
      for (std::size_t c = 0; c < per_core.size(); ++c) {
        const std::string core = fmt::format("aic{}", c);
        for (const auto& s : classes.at(per_core[c]).spans)
          sink->add(core, s.pipe, s.start * us, s.end * us);
      }
    }
    break;
  }
  r.time_us = r.cycles / p.clock_hz() * 1e6;
  return r;
}

}  // namespace porta::detail::npu_sim
