// `porta bench --compare A.json B.json`: two runs side by side, matched on (case, dtype, T,
// backend), with B's speed-up over A per row and its geometric mean.
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "bench_output.hpp"

namespace porta::cli::bench {

namespace {

std::string ms(double v) {
  if (v >= 100) return fmt::format("{:.0f}", v);
  if (v >= 1) return fmt::format("{:.2f}", v);
  return fmt::format("{:.4f}", v);
}

std::string run_label(const std::vector<Record>& run, const std::string& name) {
  const BuildInfo& b = run.front().build;
  return fmt::format("{}: porta {} ({}), {} {}, {}, on {}", name, b.porta_version, b.git_commit,
                     b.compiler, b.flags, b.build_type, run.front().host.cpu);
}

}  // namespace

std::string compare_runs(const std::vector<Record>& a, const std::vector<Record>& b,
                         const std::string& a_name, const std::string& b_name) {
  using Key = std::pair<std::string, std::string>;
  std::map<Key, const Record*> in_b;
  for (const auto& r : b) in_b[{r.key(), r.backend}] = &r;
  std::string out = fmt::format("## porta bench: B against A\n\n- A = {}\n- B = {}\n\n",
                                run_label(a, a_name), run_label(b, b_name));
  out +=
      "| case | backend | A median ms | B median ms | B speed-up | A GFLOP/s | B GFLOP/s | A "
      "device "
      "ms | B device ms | B device speed-up |\n"
      "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n";
  double log_sum = 0;
  int matched = 0;
  std::vector<std::string> only_a, unmeasured;
  std::map<Key, bool> seen;
  for (const auto& ra : a) {
    const Key key{ra.key(), ra.backend};
    seen[key] = true;
    auto it = in_b.find(key);
    if (it == in_b.end()) {
      only_a.push_back(fmt::format("{} on {}", ra.key(), ra.backend));
      continue;
    }
    const Record& rb = *it->second;
    if (ra.status != Status::Ok || rb.status != Status::Ok) {
      unmeasured.push_back(fmt::format("{} on {} (A {}, B {})", ra.key(), ra.backend,
                                       status_name(ra.status), status_name(rb.status)));
      continue;
    }
    const double speedup = rb.wall.median > 0 ? ra.wall.median / rb.wall.median : 0;
    if (speedup > 0) {
      log_sum += std::log(speedup);
      ++matched;
    }
    std::string sim_a = "-", sim_b = "-", sim_speedup = "-";
    if (ra.device_ms) sim_a = ms(*ra.device_ms);
    if (rb.device_ms) sim_b = ms(*rb.device_ms);
    if (ra.device_ms && rb.device_ms && *rb.device_ms > 0)
      sim_speedup = fmt::format("{:.2f}x", *ra.device_ms / *rb.device_ms);
    out += fmt::format("| {} | {} | {} | {} | {:.2f}x | {:.1f} | {:.1f} | {} | {} | {} |\n",
                       ra.key(), ra.backend, ms(ra.wall.median), ms(rb.wall.median), speedup,
                       ra.gflops, rb.gflops, sim_a, sim_b, sim_speedup);
  }
  if (matched > 0)
    out += fmt::format("\nGeometric mean of B's speed-up over {} matched rows: {:.3f}x\n", matched,
                       std::exp(log_sum / matched));
  else
    out += "\nNo case was measured in both runs.\n";
  std::vector<std::string> only_b;
  for (const auto& rb : b)
    if (!seen.count({rb.key(), rb.backend}))
      only_b.push_back(fmt::format("{} on {}", rb.key(), rb.backend));
  auto list = [&out](const char* title, const std::vector<std::string>& items) {
    if (items.empty()) return;
    out += fmt::format("\n{}:\n", title);
    for (const auto& item : items) out += fmt::format("- {}\n", item);
  };
  list("Only in A", only_a);
  list("Only in B", only_b);
  list("Not measured in both (skipped or failed)", unmeasured);
  return out;
}

}  // namespace porta::cli::bench
