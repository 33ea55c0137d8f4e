// Products on GGUF's packed blocks (backends/cpu/ggml) next to the bf16 decode kernel, in one
// run, on DeepSeek-V2-Lite's routed-expert shapes per token: 6 experts' gate+up (16896 x 2048)
// and down (6 x 2048 rows x 1408; not whole K-quant blocks, so Q8_0/Q4_0 only). Decode (T = 1)
// streams the packed rows; prefill (T = 64) decodes each weight row once. The bandwidth bound is the weight bytes a token reads divided
// by the machine's streaming read bandwidth (timing.hpp), which decode cannot beat.
//
//   porta-bench-cpu-ggml-blocks [--quick]
//
// Medians of interleaved repetitions; all threads (the packed path's OpenMP loop, and the bf16
// kernel split over std::threads the same way).
#include <cstring>
#include <random>
#include <string>
#include <thread>
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

void bf16_matmul(const std::vector<std::uint16_t>& w, const Matrix& m, const float* x,
                 std::int64_t rows, float* y) {
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      const std::int64_t b = m.n * t / threads, e = m.n * (t + 1) / threads;
      for (std::int64_t r0 = 0; r0 < rows; r0 += 8)
        cm::small_gemm_isa(cm::best_dot_isa(), x + r0 * m.k, m.k, std::min<std::int64_t>(8, rows - r0),
                           w.data(), porta::DType::BF16, m.k, b, e, y + r0 * m.n, m.n);
    });
  for (auto& th : pool) th.join();
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  const int reps = quick ? 3 : 9;
  const std::vector<Matrix> shapes = {{6 * 2 * 1408, 2048}, {6 * 2048, 1408}};
  const double gbps = porta_bench::streaming_read_gbps();
  fmt::print("streaming read bandwidth: {:.1f} GB/s; isa {}; {} threads\n", gbps,
             cg::block_isa_name(cg::best_block_isa()), std::thread::hardware_concurrency());
  fmt::print("{:>6} {:>4} {:>13} {:>10} {:>10} {:>8} {:>10} {:>9}\n", "type", "T", "shape",
             "ms", "bf16 ms", "vs bf16", "bound ms", "of bound");
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  for (const std::int64_t t : {std::int64_t{1}, std::int64_t{64}}) {
    for (const Matrix& m : shapes) {
      std::vector<float> wf(static_cast<std::size_t>(m.n * m.k));
      for (auto& v : wf) v = normal(rng);
      std::vector<std::uint16_t> wb(wf.size());
      for (std::size_t i = 0; i < wf.size(); ++i) wb[i] = porta::f32_to_bf16_bits(wf[i]);
      std::vector<float> x(static_cast<std::size_t>(t * m.k), 0.5f), y(static_cast<std::size_t>(t * m.n));
      for (const GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q6_K}) {
        if (m.k % porta::gguf::traits_of(type).block_elements != 0) {
          // V2-Lite's 1408-wide rows are not whole K-quant super-blocks; llama.cpp writes such
          // tensors in a 32-element type instead.
          fmt::print("{:>6} {:>4} {:>6}x{:<6} (rows are not whole {}-element blocks)\n",
                     porta::gguf::type_name(type), t, m.n, m.k,
                     porta::gguf::traits_of(type).block_elements);
          continue;
        }
        std::vector<std::byte> packed(porta::gguf::row_bytes(type, static_cast<std::uint64_t>(m.n * m.k)));
        porta::gguf::quantize(type, wf, packed);
        const auto med = porta_bench::interleaved_medians(
            reps, {[&] {
                     cg::block_matmul(cg::best_block_isa(), type, packed.data(), m.n, m.k, x.data(),
                                      m.k, t, y.data(), m.n);
                   },
                   [&] { bf16_matmul(wb, m, x.data(), t, y.data()); }});
        const double bound = static_cast<double>(packed.size()) / (gbps * 1e9);
        fmt::print("{:>6} {:>4} {:>6}x{:<6} {:>10.3f} {:>10.3f} {:>7.2f}x {:>10.3f} {:>8.0f}%\n",
                   porta::gguf::type_name(type), t, m.n, m.k, med[0] * 1e3, med[1] * 1e3,
                   med[1] / med[0], bound * 1e3, 100 * bound / med[0]);
      }
    }
  }
}
