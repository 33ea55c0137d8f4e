// GEMM on the opencl backend next to a direct clblast::Gemm call on the same device and shapes,
// in one run: square 512..2048 (f32) and DeepSeek-V2-Lite's expert shapes (T x 2048 . 2048 x 1408
// for T = 16, 128, 512). Medians of several repetitions (at least 5).
//
//   porta-bench-opencl-gemm [--quick] [--reps N] [--device opencl:N]
//
// "porta op" is the matmul op's own time inside Executable::run() as the profile records it (the
// backend binds the arguments, calls CLBlast on the resident device buffers and waits for the
// event): the same work a direct caller does, so the ratio shows porta's overhead. "porta run" is
// the whole public call for information (it also copies A to the device and C back each run).
// "direct" is clblast::Gemm on buffers allocated once, followed by clFinish. The two are timed
// interleaved, one of each per repetition.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <clblast.h>
#include <fmt/format.h>

#include <porta/porta.hpp>

#include "../backends/opencl/opencl_runtime.hpp"
#include "../backends/opencl/opencl_tuning.hpp"
#include "runtime/backend.hpp"

#include "timing.hpp"

namespace {

using porta_bench::Clock;
using porta_bench::median;

porta::Tensor random_tensor(porta::Shape shape, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(static_cast<std::size_t>(shape.numel()));
  for (auto& x : v) x = dist(rng);
  return porta::Tensor::from_vector<float>(std::move(shape), v);
}

struct Shape3 {
  std::int64_t m, k, n;
  const char* what;
};

struct Row {
  double porta_op = 0, porta_run = 0, direct = 0;
};

Row measure(const std::string& device_name, porta::detail::opencl::Device& device, Shape3 s,
            int reps) {
  Row row;
  const auto a = random_tensor({s.m, s.k}, 1);
  const auto b = random_tensor({s.k, s.n}, 2);
  porta::Graph g;
  g.output("c", g.matmul(g.input("a", {s.m, s.k}, porta::DType::F32), g.weight("b", b)));
  auto exe = porta::compile(g, {.backend = device_name, .fallback = ""});
  const std::map<std::string, porta::Tensor> inputs{{"a", a}};
  cl_int status = CL_SUCCESS;
  const auto bytes = [](std::int64_t r, std::int64_t c) {
    return static_cast<std::size_t>(r * c) * sizeof(float);
  };
  cl_mem da =
      clCreateBuffer(device.context(), CL_MEM_READ_WRITE, bytes(s.m, s.k), nullptr, &status);
  cl_mem db =
      clCreateBuffer(device.context(), CL_MEM_READ_WRITE, bytes(s.k, s.n), nullptr, &status);
  cl_mem dc =
      clCreateBuffer(device.context(), CL_MEM_READ_WRITE, bytes(s.m, s.n), nullptr, &status);
  cl_command_queue queue = device.queue();
  clEnqueueWriteBuffer(queue, da, CL_TRUE, 0, bytes(s.m, s.k), a.data(), 0, nullptr, nullptr);
  clEnqueueWriteBuffer(queue, db, CL_TRUE, 0, bytes(s.k, s.n), b.data(), 0, nullptr, nullptr);
  const auto direct = [&] {
    const auto code = clblast::Gemm<float>(
        clblast::Layout::kRowMajor, clblast::Transpose::kNo, clblast::Transpose::kNo,
        static_cast<std::size_t>(s.m), static_cast<std::size_t>(s.n), static_cast<std::size_t>(s.k),
        1.0f, da, 0, static_cast<std::size_t>(s.k), db, 0, static_cast<std::size_t>(s.n), 0.0f, dc,
        0, static_cast<std::size_t>(s.n), &queue);
    if (code != clblast::StatusCode::kSuccess)
      throw std::runtime_error(fmt::format("clblast::Gemm failed: {}", static_cast<int>(code)));
    clFinish(queue);
  };
  // Interleaved, one porta run then one direct call per repetition, so that a change in the
  // machine's load hits both columns alike.
  exe.run(inputs);  // warm-up: CLBlast compiles its kernels for this shape
  direct();
  std::vector<double> op_times, run_times, direct_times;
  for (int r = 0; r < reps; ++r) {
    const auto start = Clock::now();
    exe.run(inputs);
    run_times.push_back(std::chrono::duration<double>(Clock::now() - start).count());
    op_times.push_back(exe.profile().ops.at(0).time_us * 1e-6);
    const auto direct_start = Clock::now();
    direct();
    direct_times.push_back(std::chrono::duration<double>(Clock::now() - direct_start).count());
  }
  row.porta_op = median(op_times);
  row.porta_run = median(run_times);
  row.direct = median(direct_times);
  clReleaseMemObject(da);
  clReleaseMemObject(db);
  clReleaseMemObject(dc);
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  int reps = 5;
  std::string device_name = "opencl";
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
      reps = std::max(5, std::atoi(argv[++i]));
    } else if (std::strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
      device_name = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--quick] [--reps N>=5] [--device opencl:N]\n", argv[0]);
      return 2;
    }
  }
  try {
    auto backend = porta::detail::get_backend(device_name);
    auto& device = porta::detail::opencl::device_of(*backend);
    fmt::print("OpenCL GEMM on {} ({}), f32, medians of {} reps\n", backend->name(),
               backend->info().description, reps);
    std::vector<Shape3> shapes = {{512, 512, 512, "square"},
                                  {1024, 1024, 1024, "square"},
                                  {2048, 2048, 2048, "square"},
                                  {16, 2048, 1408, "V2-Lite expert, T=16"},
                                  {128, 2048, 1408, "V2-Lite expert, T=128"},
                                  {512, 2048, 1408, "V2-Lite expert, T=512"}};
    if (quick) shapes = {{512, 512, 512, "square"}, {1024, 1024, 1024, "square"}};
    fmt::print("{:>22} {:>16} {:>11} {:>11} {:>11} {:>9} {:>9}\n", "shape", "M x K x N",
               "direct ms", "porta op", "porta run", "GFLOP/s", "op/direct");
    for (const auto& s : shapes) {
      const Row row = measure(device_name, device, s, reps);
      const double flops =
          2.0 * static_cast<double>(s.m) * static_cast<double>(s.k) * static_cast<double>(s.n);
      fmt::print("{:>22} {:>16} {:>11.2f} {:>11.2f} {:>11.2f} {:>9.1f} {:>8.3f}x\n", s.what,
                 fmt::format("{}x{}x{}", s.m, s.k, s.n), row.direct * 1e3, row.porta_op * 1e3,
                 row.porta_run * 1e3, flops / row.porta_op * 1e-9, row.direct / row.porta_op);
    }
    fmt::print("op/direct >= 1 means porta's op is as fast as the direct CLBlast call.\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "porta-bench-opencl-gemm: %s\n", e.what());
    return 1;
  }
  return 0;
}
