// The cpu backend's quantized kernels on every instruction-set path this CPU has (forced one at
// a time): W8A8 bit for bit against the reference (exact integer sums, the same float steps),
// weight-only within f32 summation-order error, the register dequantization exactly, quantized
// MoE experts at decode and prefill sizes, and `porta devices` naming the path.
#include <cmath>
#include <cstdlib>
#include <random>

#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <porta/porta.hpp>

#include "../../backends/cpu/ggml/q8_kernels.hpp"
#include "../../backends/cpu/quant/quant_cpu.hpp"
#include "check/conformance.hpp"
#include "core/error_check.hpp"
#include "quant/quant_test_support.hpp"

namespace cpu_quant_tests {

using namespace porta;
namespace q = porta::detail::cpu::quant;

namespace {

using quant_test::make_scheme;

// Restores the default path however a test ends.
struct ForcedIsa {
  explicit ForcedIsa(q::QuantIsa isa) { q::set_quant_isa(isa); }
  ~ForcedIsa() { q::set_quant_isa(std::nullopt); }
};

Tensor random_f32(Shape shape, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(static_cast<std::size_t>(shape.numel()));
  for (auto& x : v) x = dist(rng);
  return Tensor::from_vector<float>(std::move(shape), v);
}

std::vector<float> run_on(Graph& g, const std::string& backend,
                          const std::map<std::string, Tensor>& inputs) {
  auto out = compile(g, {.backend = backend, .fallback = ""}).run(inputs);
  return out.begin()->second.to_f32();
}

double max_rel_error(const std::vector<float>& a, const std::vector<float>& b) {
  double scale = 0, worst = 0;
  for (float v : b) scale = std::max(scale, static_cast<double>(std::fabs(v)));
  for (std::size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::fabs(static_cast<double>(a[i]) - b[i]));
  return worst / (scale == 0 ? 1 : scale);
}

bool have_cpu() {
  for (const auto& d : list_devices())
    if (d.name == "cpu" && d.available) return true;
  return false;
}

}  // namespace

TEST_CASE("cpu quantized matmul matches the reference on every kernel path", "[cpu][quant]") {
  if (!have_cpu()) return;
  const std::int64_t n = 40;
  // Rows 1, 2, 3 and 7 take the decode row kernels (up to 8 rows at once), 48 the prefill path
  // (oneDNN's GEMM on VNNI CPUs; weight-only: a dequantized panel through the register-tiled
  // GEMM, its 40 columns a whole tile group and a partial one), 200 a prompt's (weight-only: the
  // panel through oneDNN's sgemm). K = 200 and 224 end rows, and K = 224 groups of 32, in partial
  // vectors (200 skips the grouped schemes). Static activations: a scale of 1/120 keeps the
  // codes inside [-127, 127], 1/300 clamps many to -128 (the AVX2 path must then widen to
  // int16), and offsets 0 and -5.
  const QuantActivationParams statics[] = {
      {1.0f / 120.0f, -5.0f}, {1.0f / 300.0f, 0.0f}, {1.0f / 300.0f, 7.0f}};
  for (auto isa : q::available_quant_isas())
    for (std::int64_t k : {320, 200, 224}) {
      ForcedIsa forced(isa);
      for (std::int64_t rows : {1, 2, 3, 7, 48, 200}) {
        const auto x = random_f32({rows, k}, 11);
        const QuantScheme int8_schemes[] = {
            make_scheme(QuantFormat::Int8), make_scheme(QuantFormat::Int8, 32),
            make_scheme(QuantFormat::Int8, 0, true), make_scheme(QuantFormat::Int8, 32, true)};
        for (const auto& s : int8_schemes)
          for (int act = 0; act < 4; ++act) {
            if (s.group_k != 0 && k % s.group_k != 0) continue;
            const auto mode = act == 0 ? ActivationQuant::DynamicInt8 : ActivationQuant::StaticInt8;
            const QuantActivationParams params = act == 0 ? statics[0] : statics[act - 1];
            INFO(q::quant_isa_name(isa)
                 << " rows " << rows << " k " << k << " " << describe(s) << " " << to_string(mode)
                 << " scale " << params.scale << " offset " << params.offset);
            Graph g;
            g.output("y",
                     g.matmul(g.input("x", {rows, k}, DType::F32),
                              g.weight("w", quantize(random_f32({n, k}, 12), s)), mode, params));
            // Exact integer sums and the reference's float steps: equal bit for bit.
            CHECK(run_on(g, "cpu", {{"x", x}}) == run_on(g, "reference", {{"x", x}}));
          }
        const QuantScheme weight_schemes[] = {
            make_scheme(QuantFormat::Int8), make_scheme(QuantFormat::Int4, 32),
            make_scheme(QuantFormat::Int4, 64, true), make_scheme(QuantFormat::F8E4M3),
            make_scheme(QuantFormat::Int4, 0, true)};
        for (const auto& s : weight_schemes) {
          if (s.group_k != 0 && k % s.group_k != 0) continue;
          INFO(q::quant_isa_name(isa) << " rows " << rows << " k " << k << " " << describe(s));
          Graph g;
          g.output("y", g.matmul(g.input("x", {rows, k}, DType::F32),
                                 g.weight("w", quantize(random_f32({n, k}, 13), s))));
          CHECK(max_rel_error(run_on(g, "cpu", {{"x", x}}), run_on(g, "reference", {{"x", x}})) <
                2e-6);
        }
      }
    }
}

TEST_CASE("cpu W8A8 row kernels sum exactly at the ends of the int8 range", "[cpu][quant]") {
  if (!have_cpu()) return;
  // Weights of ±127 (and -128 / 127 asymmetric) against activation codes of ±127 (dynamic: a row
  // of ±amax) and -128 / 127 (static, clamped): the largest products the VNNI, AVX2 and int16
  // paths must carry without saturating. The symmetric outputs are closed-form sums.
  // 2 rows: the decode kernels; 48: the prefill path.
  const std::int64_t k = 136, n = 3;
  std::vector<float> w(static_cast<std::size_t>(n * k));
  for (std::int64_t c = 0; c < k; ++c) {
    w[static_cast<std::size_t>(c)] = -1.0f;                         // all at the low end
    w[static_cast<std::size_t>(k + c)] = 1.0f;                      // all at the high end
    w[static_cast<std::size_t>(2 * k + c)] = c % 2 ? 1.0f : -1.0f;  // alternating
  }
  const auto qw = quantize(Tensor::from_vector<float>({n, k}, w), make_scheme(QuantFormat::Int8));
  for (auto isa : q::available_quant_isas())
    for (std::int64_t rows : {2, 48})
      for (auto mode : {ActivationQuant::DynamicInt8, ActivationQuant::StaticInt8}) {
        // Even rows all at -amax, odd rows alternating.
        std::vector<float> xv(static_cast<std::size_t>(rows * k));
        for (std::int64_t m = 0; m < rows; ++m)
          for (std::int64_t c = 0; c < k; ++c)
            xv[static_cast<std::size_t>(m * k + c)] = m % 2 == 0 || c % 2 == 0 ? -1.0f : 1.0f;
        const auto x = Tensor::from_vector<float>({rows, k}, xv);
        ForcedIsa forced(isa);
        INFO(q::quant_isa_name(isa) << " rows " << rows << " " << to_string(mode));
        Graph g;
        // Static: codes clamp(round(x · 200) − 3) = −128 for x = −1, 127 for x = 1.
        g.output("y", g.matmul(g.input("x", {rows, k}, DType::F32), g.weight("w", qw), mode,
                               {1.0f / 200.0f, -3.0f}));
        const auto got = run_on(g, "cpu", {{"x", x}});
        CHECK(got == run_on(g, "reference", {{"x", x}}));
        // Per-channel symmetric weights are ±127 codes with s = 1/127: y = Σ (q_x − o)·q_w · s ·
        // s_x.
        const double sx = mode == ActivationQuant::DynamicInt8 ? 1.0 / 127.0 : 1.0 / 200.0;
        const double lo = mode == ActivationQuant::DynamicInt8 ? -127.0 : -128.0 + 3.0;
        const double hi = mode == ActivationQuant::DynamicInt8 ? 127.0 : 127.0 + 3.0;
        for (std::int64_t m = 0; m < rows; ++m)
          for (std::int64_t j = 0; j < n; ++j) {
            double acc = 0;
            for (std::int64_t c = 0; c < k; ++c) {
              const double code = m % 2 == 0 || c % 2 == 0 ? lo : hi;
              const double wq = j == 0 ? -127 : j == 1 ? 127 : (c % 2 ? 127 : -127);
              acc += code * wq;
            }
            CHECK(got[static_cast<std::size_t>(m * n + j)] ==
                  Approx(acc / 127.0 * sx).epsilon(1e-6));
          }
        // Asymmetric: rows of -1 and of 1 quantize to codes -128 and 127 with zero points 127
        // and -128; held to the reference.
        Graph ga;
        ga.output("y", ga.matmul(ga.input("x", {rows, k}, DType::F32),
                                 ga.weight("w", quantize(Tensor::from_vector<float>({n, k}, w),
                                                         make_scheme(QuantFormat::Int8, 0, true))),
                                 mode, {1.0f / 200.0f, -3.0f}));
        CHECK(run_on(ga, "cpu", {{"x", x}}) == run_on(ga, "reference", {{"x", x}}));
      }
}

TEST_CASE("cpu's 16-lane activation quantizer gives the library's codes and scales",
          "[cpu][quant]") {
  if (!q::vector_quantizer(q::available_quant_isas().back())) return;  // no AVX-512 here
  // K = 37: two whole vectors and a tail. Rows: random; ties of round half to even (amax 127
  // makes s = 1, so x/s = ±0.5, 2.5, ... exactly); zeros; NaN; infinity; subnormals; values
  // far outside the static range.
  const std::int64_t k = 37;
  std::vector<std::vector<float>> rows;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> dist(-3.0f, 3.0f);
  rows.emplace_back(k);
  for (auto& v : rows.back()) v = dist(rng);
  rows.emplace_back(k);
  for (std::int64_t c = 0; c < k; ++c)
    rows.back()[static_cast<std::size_t>(c)] = c == 0 ? 127.0f : (c % 2 ? 0.5f : -1.5f) + c % 5;
  rows.emplace_back(k, 0.0f);
  rows.emplace_back(k, 1.0f);
  rows.back()[20] = std::nanf("");
  rows.emplace_back(k, -2.0f);
  rows.back()[36] = -INFINITY;
  rows.emplace_back(k, 1e-42f);
  rows.back()[3] = -3e-41f;
  rows.emplace_back(k, 0.0f);
  for (std::int64_t c = 0; c < k; ++c) rows.back()[static_cast<std::size_t>(c)] = 40.0f * (c - 18);
  std::vector<float> x;
  for (const auto& r : rows) x.insert(x.end(), r.begin(), r.end());
  const auto count = static_cast<std::int64_t>(rows.size());
  const QuantActivationParams statics[] = {{0.37f, -5.0f}, {1.0f / 300.0f, 0.0f}, {0.5f, 3.0f}};
  for (int act = 0; act < 4; ++act) {
    const auto mode = act == 0 ? ActivationQuant::DynamicInt8 : ActivationQuant::StaticInt8;
    const QuantActivationParams params = act == 0 ? QuantActivationParams{} : statics[act - 1];
    INFO(to_string(mode) << " scale " << params.scale << " offset " << params.offset);
    const auto want = q::quantize_rows(x.data(), k, count, k, mode, params, 16, false);
    const auto got = q::quantize_rows(x.data(), k, count, k, mode, params, 16, true);
    CHECK(got.codes == want.codes);
    CHECK(got.sums == want.sums);
    CHECK(got.has_min_code == want.has_min_code);
    for (std::int64_t m = 0; m < count; ++m) {
      const float a = got.scales[static_cast<std::size_t>(m)];
      const float b = want.scales[static_cast<std::size_t>(m)];
      CHECK(((std::isnan(a) && std::isnan(b)) || a == b));
    }
  }
}

TEST_CASE("cpu dequantizes int8 and int4 rows to the exact element values", "[cpu][quant]") {
  const QuantScheme schemes[] = {
      make_scheme(QuantFormat::Int8, 32, true), make_scheme(QuantFormat::Int4, 32, true),
      make_scheme(QuantFormat::Int4, 0), make_scheme(QuantFormat::F8E4M3)};
  for (const auto& s : schemes) {
    // K = 200: per-channel rows end in a partial 16-lane chunk.
    const std::int64_t k = s.group_k == 0 ? 200 : 192;
    const auto w = quantize(random_f32({5, k}, 21), s);
    const auto want = dequantize(w).to_f32();
    porta::detail::QuantMatrix m;
    m.data = w.data.data();
    m.scale = w.scale.data();
    m.zero = s.zero_point ? static_cast<const std::int8_t*>(w.zero.data()) : nullptr;
    m.scheme = s;
    m.n = 5;
    m.k = k;
    for (auto isa : q::available_quant_isas()) {
      INFO(describe(s) << " on " << q::quant_isa_name(isa));
      std::vector<float> got(want.size());
      q::dequantize_rows(isa, m, 0, 5, got.data());
      CHECK(got == want);
    }
  }
}

TEST_CASE("cpu quantized MoE experts and grouped matmul match the reference", "[cpu][quant]") {
  if (!have_cpu()) return;
  porta::check::CheckOptions options;
  options.backends = {"cpu"};
  options.ops = {"quant_matmul", "quant_grouped_matmul", "quant_moe_experts"};
  // Every path in f32; the bf16 cases (the same kernels after widening) on the default path.
  for (auto isa : q::available_quant_isas()) {
    ForcedIsa forced(isa);
    options.dtypes = {DType::F32};
    if (isa == q::available_quant_isas().back()) options.dtypes.push_back(DType::BF16);
    for (const auto& r : porta::check::run_conformance(options)) {
      INFO(q::quant_isa_name(isa) << ": " << r.op << " " << r.label << " " << dtype_name(r.dtype)
                                  << ": " << r.message);
      CHECK(r.status == porta::check::Status::Pass);
    }
  }
}

TEST_CASE("porta devices names the cpu's quantized-kernel path", "[cpu][quant]") {
  if (!have_cpu()) return;
  const auto info = device_info("cpu");
  const auto& props = info.properties;
  const auto it = std::find_if(props.begin(), props.end(),
                               [](const auto& p) { return p.first == "quant_kernels"; });
  REQUIRE(it != props.end());
  CHECK(it->second.rfind(q::quant_isa_name(q::available_quant_isas().back()), 0) == 0);
  // The GGUF blocks' kernels, and whether ggml_q8 has its integer ones on this CPU.
  const auto ggml = std::find_if(props.begin(), props.end(),
                                 [](const auto& p) { return p.first == "ggml_kernels"; });
  REQUIRE(ggml != props.end());
  namespace cg = porta::detail::cpu::ggml;
  CHECK_THAT(ggml->second,
             Catch::Contains(cg::has_q8_isa() ? fmt::format("ggml_q8: {} integer kernels",
                                                            cg::q8_isa_name(cg::best_q8_isa()))
                                              : std::string("ggml_q8: rounded activations")));
  setenv("PORTA_CPU_QUANT_ISA", "sse9", 1);
  REQUIRE_PORTA_ERROR(q::active_quant_isa(), ErrorCode::InvalidArgument, "PORTA_CPU_QUANT_ISA=sse9",
                      "plain");
  setenv("PORTA_CPU_QUANT_ISA", "plain", 1);
  CHECK(q::active_quant_isa() == q::QuantIsa::Plain);
  unsetenv("PORTA_CPU_QUANT_ISA");
}

}  // namespace cpu_quant_tests
