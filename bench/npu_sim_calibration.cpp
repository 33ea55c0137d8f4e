// npu-sim calibration: fp16 N x N x N GEMM on the 910b2 profile, the model's TFLOPS next to the
// torch_npu measurements it is calibrated against (the spec's calibration data), with the ratio
// and whether it is inside the +-15 % band; then the tile program the model chose and how long
// the timing model itself takes (median of repetitions).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include <fmt/format.h>

#include <porta/npu_sim.hpp>

#include "timing.hpp"

int main(int argc, char** argv) {
  const std::string spec = argc > 1 ? argv[1] : "910b2";
  const auto profile = porta::npu_sim::load_profile(spec);
  struct Point {
    std::int64_t n;
    double target_tflops;
  };
  const Point points[] = {{1024, 98}, {2048, 251}, {4096, 315}};
  fmt::print("npu-sim calibration on {} ({}), peak {:.1f} TFLOPS fp16\n", profile.name,
             profile.description, profile.peak_flops(porta::DType::F16) * 1e-12);
  fmt::print("{:>6} {:>12} {:>13} {:>7} {:>8} {:>10} {:>11}  {}\n", "N", "model TFLOPS",
             "target TFLOPS", "ratio", "in 15%", "time (us)", "model (ms)", "tile program");
  bool all_in = true;
  for (const auto& pt : points) {
    std::vector<double> wall;
    porta::npu_sim::OpReport r;
    for (int rep = 0; rep < 7; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      r = porta::npu_sim::simulate_matmul(profile, pt.n, pt.n, pt.n, porta::DType::F16);
      wall.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    const double tflops = r.flops / (r.time_us * 1e-6) * 1e-12;
    const double ratio = tflops / pt.target_tflops;
    const bool in = ratio >= 0.85 && ratio <= 1.15;
    all_in = all_in && in;
    fmt::print("{:>6} {:>12.1f} {:>13.1f} {:>7.3f} {:>8} {:>10.2f} {:>11.3f}  {}\n", pt.n, tflops,
               pt.target_tflops, ratio, in ? "yes" : "NO", r.time_us, porta_bench::median(wall),
               r.tiling);
  }
  fmt::print("{}\n", all_in ? "all points within +-15 %" : "SOME POINTS OUTSIDE +-15 %");
  return all_in ? 0 : 1;
}
