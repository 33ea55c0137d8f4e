// How long `porta plan` takes to search a whole plan (the goal: an R1 decode plan in at
// most 5 s): the median over repetitions of the decode and prefill searches for DeepSeek-R1 and
// the 2xR1 config on the 910B and H800 profiles, side by side, with the step evaluations each ran.
#include <fmt/format.h>

#include <porta/plan.hpp>

#include "timing.hpp"

int main() {
  using namespace porta::plan;
  struct Case {
    const char* model;
    const char* cluster;
    WeightFormat format;
    Phase phase;
    int chips;
  };
  const Case cases[] = {
      {"deepseek-r1", "h800-node", WeightFormat::FP8, Phase::Decode, 144},
      {"deepseek-r1", "h800-node", WeightFormat::FP8, Phase::Prefill, 32},
      {"deepseek-r1", "atlas800-a2", WeightFormat::W8A8, Phase::Decode, 128},
      {"deepseek-2xr1", "atlas800-a2", WeightFormat::W8A8, Phase::Decode, 256},
  };
  std::vector<std::function<void()>> bodies;
  std::vector<int> candidates(std::size(cases));
  for (std::size_t i = 0; i < std::size(cases); ++i)
    bodies.push_back([&, i] {
      const Case& c = cases[i];
      // Loading the profile and config is part of what the command does.
      const auto model = load_model(c.model);
      const auto cluster = load_cluster(c.cluster);
      PlanRequest req;
      req.chips = c.chips;
      req.phase = c.phase;
      req.format = c.format;
      if (c.phase == Phase::Decode) req.tpot_ms = 50;
      candidates[i] = search_plan(model, cluster, req).candidates;
    });
  const auto medians = porta_bench::interleaved_medians(21, bodies);
  fmt::print("{:<14} {:<12} {:<8} {:>6} {:>11} {:>12}\n", "model", "cluster", "phase", "chips",
             "candidates", "median ms");
  for (std::size_t i = 0; i < std::size(cases); ++i)
    fmt::print("{:<14} {:<12} {:<8} {:>6} {:>11} {:>12.2f}\n", cases[i].model, cases[i].cluster,
               phase_name(cases[i].phase), cases[i].chips, candidates[i], medians[i] * 1e3);
}
