// The ragged grouped expert GEMM of the opencl backend next to one clblast::Gemm call per expert,
// on DeepSeek-V2-Lite's MoE-layer shapes (hidden 2048, 64 experts of width 1408, top-6): the
// gate/up projection rows[P, 2048] . w[e]ᵀ (w: [64, 1408, 2048]) and the down projection
// rows[P, 1408] . w[e]ᵀ (w: [64, 2048, 1408]), P = T * 6 routed rows, T = 512 (128 with --quick).
// Medians of at least 5 repetitions, the two timed alternately (one of each per repetition);
// both results are compared.
//
//   porta-bench-opencl-moe-layer [--quick] [--reps N] [--tokens T] [--device opencl:N]
//
// "porta op" is the grouped_matmul op's time inside Executable::run() (profile): one launch that
// finds each expert's rows from the offsets on the device. "per-expert CLBlast" is 64 Gemm calls
// on resident buffers (the offsets known on the host, as a caller of CLBlast must have them),
// followed by clFinish.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <clblast.h>
#include <fmt/format.h>

#include <porta/porta.hpp>

#include "../backends/opencl/opencl_lowering.hpp"
#include "../backends/opencl/opencl_runtime.hpp"
#include "../backends/opencl/opencl_tuning.hpp"
#include "runtime/backend.hpp"

#include "timing.hpp"

namespace {

using porta_bench::Clock;
using porta_bench::median;

std::vector<float> random_values(std::size_t count, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(count);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Expert offsets of T tokens each routed to K distinct experts, chosen uniformly at random.
std::vector<std::int32_t> random_offsets(std::int64_t tokens, std::int64_t experts,
                                         std::int64_t k) {
  std::mt19937_64 rng(5);
  std::vector<std::int32_t> order(static_cast<std::size_t>(experts));
  std::vector<std::int32_t> counts(static_cast<std::size_t>(experts), 0);
  for (std::int64_t t = 0; t < tokens; ++t) {
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    for (std::int64_t j = 0; j < k; ++j) ++counts[static_cast<std::size_t>(order[j])];
  }
  std::vector<std::int32_t> offsets(static_cast<std::size_t>(experts + 1), 0);
  for (std::size_t e = 0; e < counts.size(); ++e) offsets[e + 1] = offsets[e] + counts[e];
  return offsets;
}

struct Result {
  double porta_op = 0, direct = 0, max_difference = 0;
};

Result measure(const std::string& device_name, porta::detail::opencl::Device& device,
               std::int64_t P, std::int64_t H, std::int64_t N, std::int64_t E,
               const std::vector<std::int32_t>& offsets, int reps) {
  Result result;
  auto rows_values = random_values(static_cast<std::size_t>(P * H), 1);
  auto w_values = random_values(static_cast<std::size_t>(E * N * H), 2);
  for (auto& v : w_values) v *= 0.05f;
  const auto rows = porta::Tensor::from_vector<float>({P, H}, rows_values);
  const auto w = porta::Tensor::from_vector<float>({E, N, H}, w_values);
  const auto offsets_tensor = porta::Tensor::from_vector<std::int32_t>({E + 1}, offsets);

  porta::Graph g;
  g.output("out", g.grouped_matmul(g.input("rows", {P, H}, porta::DType::F32), g.weight("w", w),
                                   g.input("offsets", {E + 1}, porta::DType::I32)));
  auto exe = porta::compile(g, {.backend = device_name, .fallback = ""});
  const std::map<std::string, porta::Tensor> inputs{{"rows", rows}, {"offsets", offsets_tensor}};
  auto porta_out = exe.run(inputs).at("out").to_f32();

  cl_int status = CL_SUCCESS;
  const auto f32_bytes = [](std::int64_t count) {
    return static_cast<std::size_t>(count) * sizeof(float);
  };
  cl_mem drows =
      clCreateBuffer(device.context(), CL_MEM_READ_WRITE, f32_bytes(P * H), nullptr, &status);
  cl_mem dw =
      clCreateBuffer(device.context(), CL_MEM_READ_WRITE, f32_bytes(E * N * H), nullptr, &status);
  cl_mem dout =
      clCreateBuffer(device.context(), CL_MEM_READ_WRITE, f32_bytes(P * N), nullptr, &status);
  if (status != CL_SUCCESS) throw std::runtime_error("cannot allocate the direct buffers");
  cl_command_queue queue = device.queue();
  clEnqueueWriteBuffer(queue, drows, CL_TRUE, 0, f32_bytes(P * H), rows_values.data(), 0, nullptr,
                       nullptr);
  clEnqueueWriteBuffer(queue, dw, CL_TRUE, 0, f32_bytes(E * N * H), w_values.data(), 0, nullptr,
                       nullptr);
  const auto per_expert = [&] {
    for (std::int64_t e = 0; e < E; ++e) {
      const auto first = static_cast<std::size_t>(offsets[static_cast<std::size_t>(e)]);
      const auto count = static_cast<std::size_t>(offsets[static_cast<std::size_t>(e + 1)]) - first;
      if (count == 0) continue;
      const auto code = clblast::Gemm<float>(
          clblast::Layout::kRowMajor, clblast::Transpose::kNo, clblast::Transpose::kYes, count,
          static_cast<std::size_t>(N), static_cast<std::size_t>(H), 1.0f, drows,
          first * static_cast<std::size_t>(H), static_cast<std::size_t>(H), dw,
          static_cast<std::size_t>(e * N * H), static_cast<std::size_t>(H), 0.0f, dout,
          first * static_cast<std::size_t>(N), static_cast<std::size_t>(N), &queue);
      if (code != clblast::StatusCode::kSuccess)
        throw std::runtime_error(fmt::format("clblast::Gemm failed: {}", static_cast<int>(code)));
    }
    clFinish(queue);
  };
  per_expert();
  // Interleaved, one of each per repetition, so that a change in the machine's load hits both.
  std::vector<double> op_times, direct_times;
  for (int r = 0; r < reps; ++r) {
    exe.run(inputs);
    op_times.push_back(exe.profile().ops.at(0).time_us * 1e-6);
    const auto start = Clock::now();
    per_expert();
    direct_times.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  result.porta_op = median(op_times);
  result.direct = median(direct_times);
  std::vector<float> direct_out(static_cast<std::size_t>(P * N));
  clEnqueueReadBuffer(queue, dout, CL_TRUE, 0, f32_bytes(P * N), direct_out.data(), 0, nullptr,
                      nullptr);
  for (std::size_t i = 0; i < direct_out.size(); ++i)
    result.max_difference = std::max(result.max_difference,
                                     static_cast<double>(std::fabs(direct_out[i] - porta_out[i])));
  clReleaseMemObject(drows);
  clReleaseMemObject(dw);
  clReleaseMemObject(dout);
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  int reps = 5;
  std::int64_t tokens = 512;
  std::string device_name = "opencl";
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
      reps = std::max(5, std::atoi(argv[++i]));
    } else if (std::strcmp(argv[i], "--tokens") == 0 && i + 1 < argc) {
      tokens = std::max(1, std::atoi(argv[++i]));
    } else if (std::strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
      device_name = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--quick] [--reps N>=5] [--tokens T] [--device opencl:N]\n",
                   argv[0]);
      return 2;
    }
  }
  if (quick) tokens = std::min<std::int64_t>(tokens, 128);
  constexpr std::int64_t kHidden = 2048, kExperts = 64, kWidth = 1408, kTopK = 6;
  try {
    auto backend = porta::detail::get_backend(device_name);
    auto& device = porta::detail::opencl::device_of(*backend);
    const auto offsets = random_offsets(tokens, kExperts, kTopK);
    const std::int64_t P = tokens * kTopK;
    const auto [smallest, largest] = std::minmax_element(
        offsets.begin(), offsets.end() - 1,
        [&](const auto& a, const auto& b) { return *(&a + 1) - a < *(&b + 1) - b; });
    fmt::print(
        "Ragged grouped expert GEMM on {} ({}), DeepSeek-V2-Lite MoE layer, T = {} (P = {} rows, "
        "{} experts, {} to {} rows each), f32, {} tiles, medians of {} interleaved reps\n",
        backend->name(), backend->info().description, tokens, P, kExperts,
        *(smallest + 1) - *smallest, *(largest + 1) - *largest,
        porta::detail::opencl::to_string(porta::detail::opencl::grouped_tiles(device)), reps);
    fmt::print("{:>12} {:>22} {:>12} {:>12} {:>9} {:>12} {:>10}\n", "projection", "rows x H -> N",
               "per-expert", "porta op", "GFLOP/s", "max |diff|", "speed-up");
    struct Projection {
      const char* name;
      std::int64_t h, n;
    };
    std::vector<Projection> projections = {{"gate/up", kHidden, kWidth}};
    if (!quick) projections.push_back({"down", kWidth, kHidden});
    for (const auto& p : projections) {
      const Result r = measure(device_name, device, P, p.h, p.n, kExperts, offsets, reps);
      const double flops =
          2.0 * static_cast<double>(P) * static_cast<double>(p.h) * static_cast<double>(p.n);
      fmt::print("{:>12} {:>22} {:>9.2f} ms {:>9.2f} ms {:>9.1f} {:>12.2e} {:>9.3f}x\n", p.name,
                 fmt::format("{}x{} -> {}", P, p.h, p.n), r.direct * 1e3, r.porta_op * 1e3,
                 flops / r.porta_op * 1e-9, r.max_difference, r.direct / r.porta_op);
    }
    fmt::print("speed-up >= 1 means one grouped launch beats one CLBlast call per expert.\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "porta-bench-opencl-moe-layer: %s\n", e.what());
    return 1;
  }
  return 0;
}
