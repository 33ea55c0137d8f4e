// Products on GGUF's packed blocks (backends/cpu/ggml) next to the bf16 decode kernel, in one
// run, on DeepSeek-V2-Lite's routed-expert shapes per token: 6 experts' gate+up (16896 x 2048)
// and down (6 x 2048 rows x 1408; not whole K-quant blocks, so the 32-element types only), for
// one row of activations (decode) and four (an expert's block in a short prefill). Each subject
// rotates through copies of its weights that together exceed the caches, so the weights stream
// from memory as a real model's do; the bandwidth bound is their bytes divided by the machine's
// streaming read bandwidth (timing.hpp), which decode cannot beat.
//
//   porta-bench-cpu-ggml-blocks [--quick] [--type q4_K] [--isa avx2|plain]
//
// --isa runs the packed products on another implementation than the CPU's best (AVX2 on an
// AVX-512 machine shows roughly what an AVX2-only CPU gets; the bf16 kernel then runs its AVX2
// implementation too).
//
// Medians of interleaved repetitions, on all threads of the one OpenMP pool (the packed path's
// parallel loop, and the bf16 kernel split the same way).
#include <omp.h>

#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <porta/dtype.hpp>
#include <porta/ggml_quants.hpp>

#include "../backends/cpu/ggml/block_dot.hpp"
#include "../backends/cpu/moe/dot_rows.hpp"
#include "timing.hpp"

namespace {

namespace cg = porta::detail::cpu::ggml;
namespace cm = porta::detail::cpu::moe;
using porta::gguf::GgmlType;

struct Matrix {
  std::int64_t n, k;
};

void bf16_matmul(cm::DotIsa isa, const std::uint16_t* w, const Matrix& m, const float* x,
                 std::int64_t rows, float* y) {
#pragma omp parallel
  {
    const std::int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
    const std::int64_t b = m.n * t / threads, e = m.n * (t + 1) / threads;
    cm::small_gemm_isa(isa, x, m.k, rows, w, porta::DType::BF16, m.k, b, e, y, m.n);
  }
}

// Copies of `bytes` bytes that together hold at least 768 MB, beyond any cache.
template <class T>
std::vector<std::vector<T>> copies_beyond_caches(const std::vector<T>& v) {
  const std::size_t bytes = v.size() * sizeof(T);
  const std::size_t count = std::max<std::size_t>(2, (std::size_t{768} << 20) / bytes + 1);
  return std::vector<std::vector<T>>(count, v);
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string only;
  cg::BlockIsa isa = cg::best_block_isa();
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      quick = true;
    } else if (a == "--type") {
      only = porta_bench::flag_value(argc, argv, i);
    } else if (a == "--isa") {
      const std::string name = porta_bench::flag_value(argc, argv, i);
      bool found = false;
      for (const cg::BlockIsa candidate : cg::available_block_isas())
        if (name == cg::block_isa_name(candidate)) {
          isa = candidate;
          found = true;
        }
      if (!found) {
        fmt::print(stderr, "--isa {}: not available on this CPU\n", name);
        return 2;
      }
    } else {
      fmt::print(stderr,
                 "usage: porta-bench-cpu-ggml-blocks [--quick] [--type NAME] [--isa NAME]\n");
      return 2;
    }
  }
  const int reps = quick ? 5 : 15;
  const cm::DotIsa bf16_isa = isa == cg::BlockIsa::Avx512 ? cm::best_dot_isa()
                              : isa == cg::BlockIsa::Avx2 ? cm::DotIsa::Avx2
                                                          : cm::DotIsa::Plain;
  const std::vector<Matrix> shapes = {{6 * 2 * 1408, 2048}, {6 * 2048, 1408}};
  const double gbps = porta_bench::streaming_read_gbps();
  fmt::print("streaming read bandwidth: {:.1f} GB/s; isa {}; {} threads\n", gbps,
             cg::block_isa_name(isa), omp_get_max_threads());
  fmt::print("{:>7} {:>3} {:>13} {:>9} {:>9} {:>8} {:>9} {:>9} {:>9}\n", "type", "T", "shape", "ms",
             "bf16 ms", "vs bf16", "GB/s", "bound ms", "of bound");
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  for (const std::int64_t t : {std::int64_t{1}, std::int64_t{4}}) {
    for (const Matrix& m : shapes) {
      std::vector<float> wf(static_cast<std::size_t>(m.n * m.k));
      for (auto& v : wf) v = normal(rng);
      std::vector<std::uint16_t> wb(wf.size());
      for (std::size_t i = 0; i < wf.size(); ++i) wb[i] = porta::f32_to_bf16_bits(wf[i]);
      const auto bf16_copies = copies_beyond_caches(wb);
      std::vector<float> x(static_cast<std::size_t>(t * m.k), 0.5f),
          y(static_cast<std::size_t>(t * m.n));
      for (const GgmlType type :
           {GgmlType::Q8_0, GgmlType::Q6_K, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q5_K,
            GgmlType::Q3_K, GgmlType::Q2_K, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q4_K,
            GgmlType::IQ4_NL, GgmlType::IQ4_XS}) {
        if (!only.empty() && only != porta::gguf::type_name(type)) continue;
        if (m.k % porta::gguf::traits_of(type).block_elements != 0) continue;  // llama.cpp
        // writes such tensors in a 32-element type instead
        std::vector<std::byte> packed(
            porta::gguf::row_bytes(type, static_cast<std::uint64_t>(m.n * m.k)));
        porta::gguf::quantize(type, wf, packed);
        const auto packed_copies = copies_beyond_caches(packed);
        std::size_t next_packed = 0, next_bf16 = 0;
        const auto med = porta_bench::interleaved_medians(
            reps, {[&] {
                     const auto& w = packed_copies[next_packed++ % packed_copies.size()];
                     cg::block_matmul(isa, type, w.data(), m.n, m.k, x.data(), m.k, t, y.data(),
                                      m.n);
                   },
                   [&] {
                     bf16_matmul(bf16_isa, bf16_copies[next_bf16++ % bf16_copies.size()].data(), m,
                                 x.data(), t, y.data());
                   }});
        const double bound = static_cast<double>(packed.size()) / (gbps * 1e9);
        fmt::print(
            "{:>7} {:>3} {:>6}x{:<6} {:>9.3f} {:>9.3f} {:>7.2f}x {:>9.1f} {:>9.3f} {:>8.0f}%\n",
            porta::gguf::type_name(type), t, m.n, m.k, med[0] * 1e3, med[1] * 1e3, med[1] / med[0],
            static_cast<double>(packed.size()) / med[0] / 1e9, bound * 1e3, 100 * bound / med[0]);
      }
    }
  }
}
