// GEMM on the cpu backend next to a direct oneDNN call on the same shapes, in one run: square
// 512..4096 and DeepSeek-V2-Lite's expert shapes (T x 2048 . 2048 x 1408 and T x 1408 . 1408 x
// 2048 for T = 1, 16, 128, 512), f32 and bf16; then a dense SwiGLU MLP block (2048 -> 10944 ->
// 2048) at T = 512 against the 2048-cube GEMM of the same dtype. Medians of several repetitions.
//
//   porta-bench-cpu-gemm [--quick] [--reps N]
//
// "porta" is Executable::run(inputs, outputs) of a one-matmul graph whose weight is a graph
// constant, into an output tensor reused from call to call (the whole public call of a serving
// loop: input and output checks, binding, the cpu kernel); "kernel" is the cpu kernel's own time
// from the profile. "direct" is a oneDNN matmul primitive created once with the weight reordered
// into its preferred layout, executed on preallocated memory holding the same values. Where that
// layout is the weight's own (f32 on AVX2), the direct call works on the very memory porta's
// kernel uses (input, weight, output): at T = 1 the GEMM only streams its weight, and two copies
// of the operands differ by where their pages fall in the caches (measured: +-50 us either way on
// 300 us, depending on the allocation), which is not time porta adds. The two alternate which
// goes first. Where this oneDNN has no bf16 matmul for the ISA (AVX2), the direct bf16 column is
// the f32 primitive: the best a direct caller gets there.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>
#include <oneapi/dnnl/dnnl.hpp>

#include <porta/porta.hpp>

#include "timing.hpp"

namespace {

using porta::DType;
using porta::Tensor;
using porta_bench::Clock;
using porta_bench::interleaved_medians;
using porta_bench::median;

int reps_for(double flops, int base) {
  // Small problems get more repetitions (noise), the 137-GFLOP ones the minimum of 5.
  const int extra = static_cast<int>(std::clamp(4e9 / std::max(flops, 1.0), 0.0, 200.0));
  return std::max(base, std::min(base + extra, 200));
}

Tensor random_tensor(porta::Shape shape, DType dtype, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(static_cast<std::size_t>(shape.numel()));
  for (auto& x : v) x = dist(rng);
  return Tensor::from_f32(std::move(shape), dtype, v);
}

bool native_bf16(const dnnl::engine& engine) {
  try {
    using dt = dnnl::memory::data_type;
    const dnnl::memory::desc a({16, 16}, dt::bf16, dnnl::memory::format_tag::ab);
    const dnnl::memory::desc b({16, 16}, dt::bf16, dnnl::memory::format_tag::any);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, a), engine);
    return std::string(pd.impl_info_str()).rfind("ref", 0) != 0;
  } catch (const dnnl::error&) {
    return false;
  }
}

// A oneDNN matmul [M, K] x [K, N] with the weight reordered once, on preallocated memory.
class DirectMatmul {
 public:
  // a and b hold the values of porta's operands. In f32, where the primitive wants b's own
  // layout, the call works on porta's very memory: a, b, and c (porta's output tensor).
  DirectMatmul(dnnl::engine& engine, std::int64_t m, std::int64_t k, std::int64_t n,
               dnnl::memory::data_type type, const Tensor& a, const Tensor& b, const Tensor& c)
      : stream_(engine) {
    using tag = dnnl::memory::format_tag;
    const dnnl::memory::desc a_md({m, k}, type, tag::ab), c_md({m, n}, type, tag::ab);
    const dnnl::memory::desc b_user({k, n}, type, tag::ab), b_any({k, n}, type, tag::any);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_any, c_md), engine);
    if (pd.weights_desc() == b_user && b.dtype() == DType::F32 &&
        type == dnnl::memory::data_type::f32) {
      a_ = dnnl::memory(a_md, engine, a.data());
      b_ = dnnl::memory(b_user, engine, b.data());
      c_ = dnnl::memory(c_md, engine, c.data());
      shares_weight_ = true;
    } else {
      a_ = dnnl::memory(a_md, engine);
      c_ = dnnl::memory(c_md, engine);
      fill(a_, a, type);
      dnnl::memory b_src(b_user, engine);
      fill(b_src, b, type);
      b_ = dnnl::memory(pd.weights_desc(), engine);
      dnnl::reorder(b_src, b_).execute(stream_, b_src, b_);
      stream_.wait();
    }
    primitive_ = dnnl::matmul(pd);
    args_ = {{DNNL_ARG_SRC, a_}, {DNNL_ARG_WEIGHTS, b_}, {DNNL_ARG_DST, c_}};
  }
  void operator()() {
    primitive_.execute(stream_, args_);
    stream_.wait();
  }
  bool shares_weight() const { return shares_weight_; }

 private:
  static void fill(dnnl::memory& dst, const Tensor& values, dnnl::memory::data_type type) {
    const Tensor converted =
        values.to(type == dnnl::memory::data_type::bf16 ? DType::BF16 : DType::F32);
    std::memcpy(dst.get_data_handle(), converted.data(), converted.nbytes());
  }

  bool shares_weight_ = false;
  dnnl::stream stream_;
  dnnl::memory a_, b_, c_;
  dnnl::matmul primitive_;
  std::unordered_map<int, dnnl::memory> args_;
};

struct PortaMatmul {
  porta::Executable exe;
  std::map<std::string, Tensor> inputs, outputs;
  void operator()() { exe.run(inputs, outputs); }
};

PortaMatmul porta_matmul(const Tensor& a, const Tensor& w, bool profile) {
  const std::int64_t m = a.shape()[0], n = w.shape()[1];
  porta::Graph g;
  auto a_in = g.input("a", a.shape(), a.dtype());
  g.output("c", g.name(g.matmul(a_in, g.weight("w", w)), "gemm"));
  PortaMatmul p;
  p.exe = porta::compile(g, {.backend = "cpu", .fallback = "", .profile = profile});
  p.inputs["a"] = a;
  p.outputs["c"] = Tensor::empty({m, n}, a.dtype());
  return p;
}

struct Row {
  std::string label;
  double flops, porta_s, kernel_s, direct_s;
  bool shared_weight = false;  // the direct call used porta's operand memory
  double paired_s = 0;         // median over repetitions of (porta - direct), back to back
};

void print_row(const Row& r) {
  fmt::print("{:<34} {:>10.3f} {:>10.3f} {:>10.3f} {:>9.1f} {:>9.1f} {:>7.3f}\n", r.label,
             r.porta_s * 1e3, r.kernel_s * 1e3, r.direct_s * 1e3, r.flops / r.porta_s * 1e-9,
             r.flops / r.direct_s * 1e-9, r.direct_s / r.porta_s);
}

Row measure(dnnl::engine& engine, bool native, std::int64_t m, std::int64_t k, std::int64_t n,
            DType dtype, int base_reps) {
  const double flops = 2.0 * m * k * n;
  const int reps = reps_for(flops, base_reps);
  Row row{fmt::format("{} {}x{}x{}", porta::dtype_name(dtype), m, k, n), flops, 0, 0, 0};
  // One weight, shared by both porta executables (graph weights share the tensor's memory) and,
  // where its layout allows, by the direct call.
  const Tensor a = random_tensor({m, k}, dtype, 1), w = random_tensor({k, n}, dtype, 2);
  auto plain = porta_matmul(a, w, false);
  auto profiled = porta_matmul(a, w, true);  // the kernel's own time, from the profile
  const auto type =
      dtype == DType::BF16 && native ? dnnl::memory::data_type::bf16 : dnnl::memory::data_type::f32;
  DirectMatmul direct(engine, m, k, n, type, a, w, plain.outputs.at("c"));
  row.shared_weight = direct.shares_weight();
  // Interleaved, so that porta and the direct call see the same machine load (CI machines and
  // shared hosts are noisy); one warm-up call each.
  plain();
  profiled();
  direct();
  std::vector<double> porta_s, kernel_s, direct_s;
  const auto seconds = [](const std::function<void()>& body) {
    const auto start = Clock::now();
    body();
    return porta_bench::seconds_since(start);
  };
  for (int r = 0; r < reps; ++r) {
    // Alternating which goes first, so that neither always inherits the other's cache state.
    if (r % 2 == 0) {
      porta_s.push_back(seconds([&] { plain(); }));
      direct_s.push_back(seconds([&] { direct(); }));
    } else {
      direct_s.push_back(seconds([&] { direct(); }));
      porta_s.push_back(seconds([&] { plain(); }));
    }
    if (flops <= 4e9) {  // the big shapes skip it: run() and the direct call tell the story
      profiled();
      kernel_s.push_back(profiled.exe.profile().ops.at(0).time_us * 1e-6);
    }
  }
  std::vector<double> paired(porta_s.size());
  for (std::size_t i = 0; i < paired.size(); ++i) paired[i] = porta_s[i] - direct_s[i];
  row.paired_s = median(paired);
  row.porta_s = median(porta_s);
  row.kernel_s = kernel_s.empty() ? NAN : median(kernel_s);
  row.direct_s = median(direct_s);
  return row;
}

// The dense SwiGLU MLP block and the `cube`-cube GEMM of the same dtype, both through porta,
// interleaved: {block seconds, cube GEMM seconds}.
std::pair<double, double> swiglu_block_and_cube(std::int64_t tokens, DType dtype, std::int64_t cube,
                                                int reps) {
  constexpr std::int64_t hidden = 2048, inter = 10944;
  porta::Graph g;
  auto x = g.input("x", {tokens, hidden}, dtype);
  auto gate =
      g.matmul(x, g.weight("w_gate", random_tensor({inter, hidden}, dtype, 11)), {false, true});
  auto up = g.matmul(x, g.weight("w_up", random_tensor({inter, hidden}, dtype, 12)), {false, true});
  auto down =
      g.matmul(g.swiglu(gate, up), g.weight("w_down", random_tensor({hidden, inter}, dtype, 13)),
               {false, true});
  g.output("y", down);
  auto exe = porta::compile(g, {.backend = "cpu", .fallback = "", .profile = false});
  std::map<std::string, Tensor> inputs{{"x", random_tensor({tokens, hidden}, dtype, 14)}};
  std::map<std::string, Tensor> outputs{{"y", Tensor::empty({tokens, hidden}, dtype)}};
  auto gemm = porta_matmul(random_tensor({cube, cube}, dtype, 15),
                           random_tensor({cube, cube}, dtype, 16), false);
  const auto t = interleaved_medians(reps, {[&] { exe.run(inputs, outputs); }, [&] { gemm(); }});
  return {t[0], t[1]};
}

// The cube GEMM through porta in f32 and in bf16, interleaved: {f32 seconds, bf16 seconds}.
std::pair<double, double> f32_and_bf16_cube(std::int64_t cube, int reps) {
  auto f32 = porta_matmul(random_tensor({cube, cube}, DType::F32, 17),
                          random_tensor({cube, cube}, DType::F32, 18), false);
  auto bf16 = porta_matmul(random_tensor({cube, cube}, DType::BF16, 17),
                           random_tensor({cube, cube}, DType::BF16, 18), false);
  const auto t = interleaved_medians(reps, {[&] { f32(); }, [&] { bf16(); }});
  return {t[0], t[1]};
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  int base_reps = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--quick") {
      quick = true;
    } else if (arg == "--reps" && i + 1 < argc) {
      base_reps = std::max(1, std::atoi(argv[++i]));
    } else {
      fmt::print(stderr, "usage: porta-bench-cpu-gemm [--quick] [--reps N]\n");
      return 2;
    }
  }
  if (quick) base_reps = std::min(base_reps, 3);
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  const bool native = native_bf16(engine);
  const auto info = porta::device_info("cpu");
  fmt::print("cpu: {}\n", info.description);
  for (const auto& [key, value] : info.properties) fmt::print("  {}: {}\n", key, value);
  fmt::print("direct bf16: {}\n\n",
             native ? "oneDNN bf16 matmul" : "oneDNN f32 matmul (no bf16 kernel for this ISA)");

  const std::vector<std::int64_t> squares = quick
                                                ? std::vector<std::int64_t>{512, 1024}
                                                : std::vector<std::int64_t>{512, 1024, 2048, 4096};
  const std::vector<std::int64_t> tokens =
      quick ? std::vector<std::int64_t>{1, 128} : std::vector<std::int64_t>{1, 16, 128, 512};

  fmt::print("{:<34} {:>10} {:>10} {:>10} {:>9} {:>9} {:>7}\n", "shape (MxKxN)", "porta ms",
             "kernel ms", "direct ms", "porta GF", "direct GF", "ratio");
  std::vector<std::pair<std::string, Row>> t1_rows;
  double worst_big_ratio = 1e9;
  for (DType dtype : {DType::F32, DType::BF16}) {
    for (auto s : squares) {
      const Row r = measure(engine, native, s, s, s, dtype, base_reps);
      print_row(r);
      if (s >= 1024) worst_big_ratio = std::min(worst_big_ratio, r.direct_s / r.porta_s);
    }
    for (auto t : tokens)
      for (auto [k, n] : {std::pair<std::int64_t, std::int64_t>{2048, 1408}, {1408, 2048}}) {
        const Row r = measure(engine, native, t, k, n, dtype, base_reps);
        print_row(r);
        if (t == 1) t1_rows.emplace_back(std::string(porta::dtype_name(dtype)), r);
      }
  }

  // Both a difference of medians and the median of the back-to-back differences, which cancels
  // load that drifts across the repetitions.
  fmt::print(
      "\nper-call overhead at T = 1 (porta - direct: of medians, paired; kernel - direct):\n");
  for (const auto& [dtype, r] : t1_rows)
    fmt::print("  {:<30} run() {:+8.2f} us, paired {:+8.2f} us   kernel {:+8.2f} us   ({})\n",
               r.label, (r.porta_s - r.direct_s) * 1e6, r.paired_s * 1e6,
               (r.kernel_s - r.direct_s) * 1e6,
               r.shared_weight ? "same memory" : "separate copies");

  // The fixed cost per call, where the GEMM itself is negligible (1x64x64): what porta adds to a
  // matmul, free of the 5.7-MFLOP expert GEMM's run-to-run noise.
  {
    const Row tiny = measure(engine, native, 1, 64, 64, DType::F32, quick ? 500 : 2000);
    fmt::print(
        "  {:<30} run() {:+8.2f} us, paired {:+8.2f} us   kernel {:+8.2f} us   (direct {:.2f} "
        "us)\n",
        tiny.label, (tiny.porta_s - tiny.direct_s) * 1e6, tiny.paired_s * 1e6,
        (tiny.kernel_s - tiny.direct_s) * 1e6, tiny.direct_s * 1e6);
  }

  const std::int64_t block_tokens = 512;
  const std::int64_t cube = quick ? 1024 : 2048;
  const double block_flops = 3 * 2.0 * block_tokens * 2048 * 10944;
  const double cube_flops = 2.0 * static_cast<double>(cube * cube * cube);
  fmt::print(
      "\nSwiGLU MLP block 2048 -> 10944 -> 2048 at T = {} ({:.1f} GFLOP), interleaved with the "
      "{}-cube GEMM:\n",
      block_tokens, block_flops * 1e-9, cube);
  for (DType dtype : {DType::F32, DType::BF16}) {
    const auto [block_s, cube_s] =
        swiglu_block_and_cube(block_tokens, dtype, cube, quick ? 2 : base_reps);
    const double gf = block_flops / block_s * 1e-9, ref = cube_flops / cube_s * 1e-9;
    fmt::print(
        "  {:<5} {:9.1f} ms  {:7.1f} GFLOP/s  = {:5.1f} % of the {}-cube GEMM ({:.1f} "
        "GFLOP/s)\n",
        porta::dtype_name(dtype), block_s * 1e3, gf, 100 * gf / ref, cube, ref);
  }
  fmt::print("\nporta / direct at >= 1024 (worst): {:.3f}\n", worst_big_ratio);
  const auto [f32_s, bf16_s] = f32_and_bf16_cube(cube, quick ? 2 : base_reps);
  fmt::print("bf16 / f32 GEMM GFLOP/s at {} (interleaved): {:.2f}\n", cube, f32_s / bf16_s);
  return 0;
}
