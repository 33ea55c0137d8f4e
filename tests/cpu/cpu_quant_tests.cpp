// The cpu backend's quantized kernels on every instruction-set path this CPU has (forced one at
// a time): W8A8 bit for bit against the reference (exact integer sums, the same float steps),
// weight-only within f32 summation-order error, the register dequantization exactly, quantized
// MoE experts at decode and prefill sizes, and `porta devices` naming the path.
#include <cmath>
#include <cstdlib>
#include <random>

#include <catch2/catch.hpp>

#include <porta/porta.hpp>

#include "../../backends/cpu/quant/quant_cpu.hpp"
#include "check/conformance.hpp"
#include "core/error_check.hpp"

namespace cpu_quant_tests {

using namespace porta;
namespace q = porta::detail::cpu::quant;

namespace {

// Restores the default path however a test ends.
struct ForcedIsa {
  explicit ForcedIsa(q::QuantIsa isa) { q::set_quant_isa(isa); }
  ~ForcedIsa() { q::set_quant_isa(std::nullopt); }
};

QuantScheme make_scheme(QuantFormat f, std::int64_t group = 0, bool asym = false) {
  QuantScheme s;
  s.format = f;
  s.group_k = group;
  s.zero_point = asym;
  return s;
}

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
  // K = 200: per-channel rows end in partial vector chunks (the grouped schemes skip it).
  for (auto isa : q::available_quant_isas())
    for (std::int64_t k : {320, 200}) {
      ForcedIsa forced(isa);
      for (std::int64_t rows : {1, 3, 9, 33}) {
        const auto x = random_f32({rows, k}, 11);
        const QuantScheme int8_schemes[] = {make_scheme(QuantFormat::Int8),
                                            make_scheme(QuantFormat::Int8, 32),
                                            make_scheme(QuantFormat::Int8, 64, true)};
        for (const auto& s : int8_schemes)
          for (auto act : {ActivationQuant::DynamicInt8, ActivationQuant::StaticInt8}) {
            if (s.group_k != 0 && k % s.group_k != 0) continue;
            INFO(q::quant_isa_name(isa)
                 << " rows " << rows << " " << describe(s) << " " << to_string(act));
            Graph g;
            g.output("y", g.matmul(g.input("x", {rows, k}, DType::F32),
                                   g.weight("w", quantize(random_f32({n, k}, 12), s)), act,
                                   {1.0f / 120.0f, -5.0f}));
            // Exact integer sums and the reference's float steps: equal bit for bit.
            CHECK(run_on(g, "cpu", {{"x", x}}) == run_on(g, "reference", {{"x", x}}));
          }
        const QuantScheme weight_schemes[] = {
            make_scheme(QuantFormat::Int8), make_scheme(QuantFormat::Int4, 32),
            make_scheme(QuantFormat::Int4, 64, true), make_scheme(QuantFormat::F8E4M3),
            make_scheme(QuantFormat::Int4, 0, true)};
        for (const auto& s : weight_schemes) {
          if (s.group_k != 0 && k % s.group_k != 0) continue;
          INFO(q::quant_isa_name(isa) << " rows " << rows << " " << describe(s));
          Graph g;
          g.output("y", g.matmul(g.input("x", {rows, k}, DType::F32),
                                 g.weight("w", quantize(random_f32({n, k}, 13), s))));
          CHECK(max_rel_error(run_on(g, "cpu", {{"x", x}}), run_on(g, "reference", {{"x", x}})) <
                2e-6);
        }
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
  setenv("PORTA_CPU_QUANT_ISA", "sse9", 1);
  REQUIRE_PORTA_ERROR(q::active_quant_isa(), ErrorCode::InvalidArgument, "PORTA_CPU_QUANT_ISA=sse9",
                      "plain");
  setenv("PORTA_CPU_QUANT_ISA", "plain", 1);
  CHECK(q::active_quant_isa() == q::QuantIsa::Plain);
  unsetenv("PORTA_CPU_QUANT_ISA");
}

}  // namespace cpu_quant_tests
