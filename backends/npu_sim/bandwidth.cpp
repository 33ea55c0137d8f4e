// The data-path rates every kernel model shares: the MTE2 DMA curve (a start latency plus an
// asymptotic rate, through the two msKPP single-core points), each core's own caps (the DMA
// engine for L2 hits, the per-core GM path for HBM misses, FixPipe and MTE3 for writes), and the
// chip's aggregate limits (L2 read and write bandwidth, HBM) that the cores moving data share.
#include <algorithm>
#include <cmath>

#include "timing.hpp"

namespace porta::detail::npu_sim {

namespace {

struct DmaCurve {
  double latency_cycles = 0;
  double bytes_per_cycle = 1;
};

// t(b) = latency + b / asymptote through (1 burst, mte2_one_burst_gbps) and (128 bursts,
// mte2_peak_gbps): the single-core GM->L1 measurements.
DmaCurve dma_curve(const DeviceProfile& p) {
  const double burst = static_cast<double>(p.burst_bytes);
  const double t1 = burst / (p.mte2_one_burst_gbps * 1e9);
  const double t128 = 128 * burst / (p.mte2_peak_gbps * 1e9);
  const double asymptote = 127 * burst / std::max(1e-15, t128 - t1);
  return {std::max(0.0, t1 - burst / asymptote) * p.clock_hz(), asymptote / p.clock_hz()};
}

double l2_read_limit(const DeviceProfile& p) { return p.l2_read_bytes_per_cycle * p.cube_cores; }
double l2_write_limit(const DeviceProfile& p) { return p.l2_write_bytes_per_cycle * p.cube_cores; }
double hbm_limit(const DeviceProfile& p) { return bytes_per_cycle(p, p.hbm_gbps); }

}  // namespace

double bytes_per_cycle(const DeviceProfile& p, double gbps) { return gbps * 1e9 / p.clock_hz(); }

double dma_cycles(const DeviceProfile& p, double bytes, double miss, const Contention& c) {
  if (bytes <= 0) return 0;
  const DmaCurve d = dma_curve(p);
  const double hit_bpc = d.bytes_per_cycle * c.hit;
  const double miss_bpc = std::min(d.bytes_per_cycle, p.gm_bytes_per_cycle) * c.miss;
  return d.latency_cycles + bytes * (1 - miss) / hit_bpc + bytes * miss / miss_bpc;
}

double write_cycles(const DeviceProfile& p, double bytes, double gbps, const Contention& c) {
  if (bytes <= 0) return 0;
  return dma_curve(p).latency_cycles + bytes / (bytes_per_cycle(p, gbps) * c.write);
}

double traffic_floor(const DeviceProfile& p, const Traffic& t) {
  return std::max({(t.hit + t.miss) / l2_read_limit(p), t.write / l2_write_limit(p),
                   (t.miss + t.write) / hbm_limit(p)});
}

bool settle(const DeviceProfile& p, const Traffic& t, double cycles, Contention& c) {
  if (cycles <= 0) return false;
  const double slack = 1.005;
  const double read_over = (t.hit + t.miss) / cycles / l2_read_limit(p);
  const double write_over = t.write / cycles / l2_write_limit(p);
  const double hbm_over = (t.miss + t.write) / cycles / hbm_limit(p);
  bool changed = false;
  if (hbm_over > slack) {
    c.miss /= hbm_over;
    c.write /= hbm_over;
    changed = true;
  }
  if (read_over > slack) {
    c.hit /= read_over;
    if (hbm_over <= slack) c.miss /= read_over;
    changed = true;
  }
  if (write_over > slack && hbm_over <= slack) {
    c.write /= write_over;
    changed = true;
  }
  return changed;
}

}  // namespace porta::detail::npu_sim
