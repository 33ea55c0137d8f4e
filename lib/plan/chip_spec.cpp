// A cluster profile's "chip" object: inline peak figures, or "npu_sim_profile" naming one of
// npu-sim's single-chip profiles whose cores, clock, cube rate and HBM give the peaks (so the
// planner and `porta sim` agree on what a 910B2 is). Inline fields override the derived ones.
#include "plan/profile_parts.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <porta/error.hpp>

#include "plan/embedded_data.hpp"

namespace porta::plan::detail {

namespace {

// Peak dense fp16/bf16 TFLOPS, int8 TOPS and HBM of an npu-sim profile.
ChipSpec chip_from_npu_sim(const std::string& name, const Fields& where) {
  const auto text = find_embedded("chip", name);
  if (!text) {
    std::string known;
    for (const auto& n : embedded_names("chip")) known += (known.empty() ? "" : ", ") + n;
    where.fail("npu_sim_profile", fmt::format("names no npu-sim profile '{}' (built in: {})", name, known));
  }
  const auto j = nlohmann::json::parse(*text);
  const std::string source = fmt::format("npu-sim profile '{}'", name);
  const Fields f(j, source);
  ChipSpec chip;
  chip.name = f.text("description", name);
  const Fields cube = f.object("cube");
  if (f.text("model", "ascend") == "roofline") {
    chip.bf16_tflops = f.positive("roofline_tflops");
  } else {
    const Fields cores = f.object("cores");
    chip.bf16_tflops = cores.count("cube") * cube.positive("flops_per_cycle") *
                       f.positive("clock_mhz") * 1e6 / 1e12;
  }
  chip.int8_tops = chip.bf16_tflops * cube.positive("int8_rate", 0.0, true);
  const Fields hbm = f.object("hbm");
  chip.hbm_gb = hbm.positive("gb");
  chip.hbm_tbps = hbm.positive("tbps");
  return chip;
}

}  // namespace

ChipSpec parse_chip(const Fields& f) {
  ChipSpec chip;
  const bool derived = f.has("npu_sim_profile");
  if (derived) chip = chip_from_npu_sim(f.text("npu_sim_profile"), f);
  // Inline figures: required without a profile, overrides with one.
  auto field = [&](const char* key, double current, bool allow_zero) {
    return derived ? f.positive(key, current, allow_zero)
                   : f.positive(key, allow_zero ? std::optional<double>(0.0) : std::nullopt,
                                allow_zero);
  };
  chip.name = f.text("name", derived ? chip.name : std::optional<std::string>{});
  chip.bf16_tflops = field("bf16_tflops", chip.bf16_tflops, false);
  chip.fp8_tflops = field("fp8_tflops", chip.fp8_tflops, true);
  chip.int8_tops = field("int8_tops", chip.int8_tops, true);
  chip.hbm_gb = field("hbm_gb", chip.hbm_gb, false);
  chip.hbm_tbps = field("hbm_tbps", chip.hbm_tbps, false);
  chip.gemm_efficiency = f.fraction("gemm_efficiency");
  chip.attention_efficiency = f.fraction("attention_efficiency");
  chip.hbm_efficiency = f.fraction("hbm_efficiency");
  chip.kernel_overhead_us = f.positive("kernel_overhead_us", 0.0, true);
  return chip;
}

}  // namespace porta::plan::detail
