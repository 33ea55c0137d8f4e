// Prefill's GEMMs on GGUF's packed blocks (backends/cpu/ggml: exactly dequantized f32 panels of
// weight rows through the register-tiled GEMM) next to oneDNN's sgemm on the same weights already
// in f32, in one run: the dense projections of a prompt (T rows through one matrix) and the
// routed experts of one (T · top-k rows spread over the experts), on Qwen3-30B-A3B's and
// DeepSeek-V2-Lite's shapes. The f32 sgemm is the ceiling the dequantizing path aims at: it does
// the same arithmetic with no decoding, on weights four to eight times the size. A third column
// runs llama.cpp's numerics (ActivationQuant::GgmlQ8: activations in 8-bit blocks, integer
// kernels with AVX-512 VNNI or AVX2).
//
//   porta-bench-cpu-ggml-prefill [--quick] [--type q4_K] [--prompts 1,8,128]
//
// --type runs one block type (any ggml type porta quantizes: q5_0, iq4_nl, ...) in place of q8_0
// and q4_K; cases whose K is not whole blocks of it are left out.
// --prompts sets the prompt lengths T (1 is decode's product); expert cases whose T spreads to
// under one row per expert are left out. PORTA_GGML_ISA=avx2 (or plain) caps the instruction set
// of porta's ggml kernels, to measure the AVX2 paths on an AVX-512 machine; the first line says
// which ran.
//
// Medians of interleaved repetitions, on all threads of the one OpenMP pool.
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <porta/ggml_quants.hpp>
#include <porta/quant.hpp>

#include "../backends/cpu/ggml/block_dot.hpp"
#include "../backends/cpu/ggml/ggml_linear.hpp"
#include "../backends/cpu/ggml/q8_kernels.hpp"
#include "timing.hpp"

namespace {

namespace cg = porta::detail::cpu::ggml;
using porta::gguf::GgmlType;

struct Case {
  const char* what;
  std::int64_t n, k;
  std::int64_t experts = 0;  // 0: a dense layer over every row
};

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string only;
  std::vector<std::int64_t> prompts;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      quick = true;
    } else if (a == "--type") {
      only = porta_bench::flag_value(argc, argv, i);
    } else if (a == "--prompts") {
      for (const std::string& t : porta_bench::split_list(porta_bench::flag_value(argc, argv, i)))
        prompts.push_back(std::stoll(t));
    } else {
      fmt::print(stderr,
                 "usage: porta-bench-cpu-ggml-prefill [--quick] [--type NAME] "
                 "[--prompts T,T,...]\n");
      return 2;
    }
  }
  const int reps = quick ? 3 : 7;
  const std::vector<Case> cases = {
      {"qwen3 q_proj", 4096, 2048},
      {"qwen3 o_proj", 2048, 4096},
      {"qwen3 experts gate", 768, 2048, 128},
      {"qwen3 experts down", 2048, 768, 128},
      {"v2-lite experts gate", 1408, 2048, 64},
      // K 1408 is not whole 256-element super-blocks: quantizers write 32-element types here.
      {"v2-lite experts down", 2048, 1408, 64},
  };
  if (prompts.empty())
    prompts = quick ? std::vector<std::int64_t>{128} : std::vector<std::int64_t>{128, 512};
  fmt::print("{} threads; GFLOP/s of the product (2·rows·N·K), medians of {} runs\n",
             omp_get_max_threads(), reps);
  fmt::print("ggml kernels: f32 {}, ggml_q8 {}\n", cg::block_isa_name(cg::best_block_isa()),
             cg::has_q8_isa() ? cg::q8_isa_name(cg::best_q8_isa())
                              : "none (rounded activations, f32 kernels)");
  fmt::print("{:>22} {:>5} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}\n", "case", "type", "T",
             "packed", "f32 sgemm", "packed/f32", "ggml_q8", "q8/packed", "rows/blk");
  const std::vector<GgmlType> types = only.empty()
                                          ? std::vector<GgmlType>{GgmlType::Q8_0, GgmlType::Q4_K}
                                          : std::vector<GgmlType>{porta::gguf::parse_type(only)};
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  for (const Case& c : cases)
    for (const GgmlType type : types) {
      if (c.k % porta::gguf::traits_of(type).block_elements != 0) continue;
      const std::int64_t experts = std::max<std::int64_t>(c.experts, 1);
      std::vector<float> wf(static_cast<std::size_t>(experts * c.n * c.k));
      for (auto& v : wf) v = normal(rng);
      const std::size_t matrix_bytes =
          porta::gguf::row_bytes(type, static_cast<std::uint64_t>(c.n * c.k));
      std::vector<std::byte> packed(matrix_bytes * static_cast<std::size_t>(experts));
      porta::gguf::quantize(type, wf, packed);
      // The sgemm's weights: the packed ones dequantized, so both products are of one matrix.
      porta::gguf::dequantize(type, packed, wf);
      for (const std::int64_t t : prompts) {
        // Top-8 of 128 (Qwen3) or top-6 of 64 (V2-Lite) experts, evenly spread: rows per expert.
        const std::int64_t per_expert = c.experts == 0 ? t : t * (experts == 128 ? 8 : 6) / experts;
        if (per_expert == 0) continue;
        const std::int64_t rows = per_expert * experts;
        std::vector<float> x(static_cast<std::size_t>(rows * c.k)),
            y(static_cast<std::size_t>(rows * c.n));
        for (auto& v : x) v = normal(rng);
        std::vector<porta::detail::cpu::quant::QuantBlock> blocks;
        for (std::int64_t e = 0; e < experts; ++e) {
          porta::detail::QuantMatrix w;
          w.data = packed.data() + static_cast<std::size_t>(e) * matrix_bytes;
          w.scheme = porta::ggml_scheme(type);
          w.n = c.n;
          w.k = c.k;
          blocks.push_back({w, e * per_expert, per_expert});
        }
        const auto packed_run = [&](porta::ActivationQuant act) {
          if (c.experts == 0)
            cg::blocks_linear(x.data(), rows, blocks[0].w, y.data(), act);
          else
            cg::blocks_linear_experts(x.data(), c.k, blocks, c.n, y.data(), act);
        };
        const auto med = porta_bench::interleaved_medians(
            reps, {[&] { packed_run(porta::ActivationQuant::None); },
                   [&] { packed_run(porta::ActivationQuant::GgmlQ8); },
                   [&] {
                     if (c.experts == 0) {  // oneDNN's own threads
                       dnnl_sgemm('N', 'T', rows, c.n, c.k, 1.0f, x.data(), c.k, wf.data(), c.k,
                                  0.0f, y.data(), c.n);
                       return;
                     }
#pragma omp parallel for schedule(dynamic)
                     for (std::int64_t e = 0; e < experts; ++e)
                       dnnl_sgemm('N', 'T', per_expert, c.n, c.k, 1.0f,
                                  x.data() + e * per_expert * c.k, c.k, wf.data() + e * c.n * c.k,
                                  c.k, 0.0f, y.data() + e * per_expert * c.n, c.n);
                   }});
        const double gflop = 2.0 * static_cast<double>(rows * c.n * c.k) / 1e9;
        fmt::print("{:>22} {:>5} {:>6} {:>9.1f} {:>9.1f} {:>9.2f}x {:>9.1f} {:>9.2f}x {:>8}\n",
                   c.what, porta::gguf::type_name(type), t, gflop / med[0], gflop / med[2],
                   med[2] / med[0], gflop / med[1], med[0] / med[1], per_expert);
      }
    }
  return 0;
}
