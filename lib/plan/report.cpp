// A plan in words (the `porta plan` table) and as JSON (--format json).
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <porta/plan.hpp>

namespace porta::plan {

namespace {

std::string parallelism_text(const StepReport& r) {
  const auto& p = r.parallelism;
  return fmt::format("{} chips: attention {}, experts EP{}{}, {} micro-batch{}", p.chips,
                     p.attention_tp == 1 ? std::string("DP") : fmt::format("TP{}", p.attention_tp),
                     p.chips,
                     p.redundant_experts ? fmt::format(" (+{} redundant)", p.redundant_experts) : "",
                     p.micro_batches, p.micro_batches == 2 ? "es (dual-batch overlap)" : "");
}

}  // namespace

std::string plan_to_text(const Plan& plan, const ClusterProfile& cluster,
                         const std::string& model_name) {
  const StepReport& r = plan.report;
  const auto& w = r.workload;
  std::string out = fmt::format("{} {} on {} ({})\n", model_name, phase_name(w.phase), cluster.name,
                                cluster.chip.name);
  if (!plan.feasible) {
    out += fmt::format("  no plan: {}\n", plan.reason);
    return out;
  }
  const auto& t = r.time;
  const auto& m = r.memory;
  const bool decode = w.phase == Phase::Decode;
  out += fmt::format("  plan        {}\n", parallelism_text(r));
  out += fmt::format("  batch       {} {} per chip, context {}{}, weights {} (GEMMs at {} peak)\n",
                     w.batch, decode ? "sequences" : "prompts", w.context,
                     w.prefix_hit > 0 ? fmt::format(" ({:.0f}% cached)", w.prefix_hit * 100) : "",
                     weight_format_name(w.format), r.compute_format);
  out += fmt::format("  step        {:.2f} ms = busy {:.2f} + exposed comm {:.2f} + step overhead\n",
                     t.step_ms, t.busy_ms, t.exposed_comm_ms);
  out += fmt::format("    compute {:.2f} ms, HBM {:.2f} ms (roofline per operator), launches {:.2f} ms\n",
                     t.compute_ms, t.hbm_ms, t.overhead_ms);
  out += fmt::format("    communication {:.2f} ms before overlap, {:.2f} ms exposed; {:.1f} MB per "
                     "chip on the busiest link, {:.1f} MB over the scale-out network\n",
                     t.comm_ms, t.exposed_comm_ms, t.link_bytes / 1e6, t.scale_out_bytes / 1e6);
  if (decode)
    out += fmt::format("  speed       TPOT {:.1f} ms ({:.1f} tok/s per user), {:.0f} output tok/s per "
                       "chip, {:.0f} per {}-chip node\n",
                       r.tpot_ms, 1000 / r.tpot_ms, r.tokens_per_s_per_chip,
                       r.tokens_per_s_per_chip * cluster.chips_per_node, cluster.chips_per_node);
  else
    out += fmt::format("  speed       TTFT {:.1f} ms, {:.0f} prompt tok/s per chip ({:.0f} computed), "
                       "{:.0f} per {}-chip node\n",
                       r.ttft_ms, r.tokens_per_s_per_chip, r.computed_tokens_per_s_per_chip,
                       r.tokens_per_s_per_chip * cluster.chips_per_node, cluster.chips_per_node);
  out += fmt::format("  memory      {:.1f} GB per chip of {:.0f}: weights {:.1f}, KV cache {:.1f}, "
                     "activations {:.1f}, reserve {:.1f}\n",
                     m.total_gb(), cluster.chip.hbm_gb, m.weights_gb, m.kv_cache_gb,
                     m.activations_gb, m.reserve_gb);
  out += fmt::format("  utilisation MFU {:.1f}% ({:.0f} TFLOPS), HBM {:.2f} TB/s, link {:.0f} GB/s\n",
                     r.mfu * 100, r.achieved_tflops, r.achieved_hbm_tbps, r.achieved_link_gbps);
  return out;
}

std::string plan_to_json(const Plan& plan, const ClusterProfile& cluster,
                         const std::string& model_name) {
  const StepReport& r = plan.report;
  nlohmann::json j;
  j["model"] = model_name;
  j["cluster"] = cluster.name;
  j["chip"] = cluster.chip.name;
  j["feasible"] = plan.feasible;
  if (!plan.feasible) j["reason"] = plan.reason;
  j["candidates"] = plan.candidates;
  const auto& p = r.parallelism;
  j["parallelism"] = {{"chips", p.chips}, {"attention_tp", p.attention_tp},
                      {"expert_parallel", p.chips}, {"redundant_experts", p.redundant_experts},
                      {"micro_batches", p.micro_batches}};
  const auto& w = r.workload;
  j["workload"] = {{"phase", phase_name(w.phase)}, {"format", weight_format_name(w.format)},
                   {"batch", w.batch}, {"context", w.context}, {"prefix_hit", w.prefix_hit},
                   {"kv_bytes", w.kv_bytes}};
  const auto& t = r.time;
  j["time_ms"] = {{"step", t.step_ms}, {"compute", t.compute_ms}, {"hbm", t.hbm_ms},
                  {"busy", t.busy_ms}, {"communication", t.comm_ms},
                  {"exposed_communication", t.exposed_comm_ms}, {"overhead", t.overhead_ms}};
  const auto& m = r.memory;
  j["memory_gb"] = {{"weights", m.weights_gb}, {"kv_cache", m.kv_cache_gb},
                    {"activations", m.activations_gb}, {"reserve", m.reserve_gb},
                    {"total", m.total_gb()}, {"capacity", cluster.chip.hbm_gb}};
  j["tokens_per_s_per_chip"] = r.tokens_per_s_per_chip;
  j["computed_tokens_per_s_per_chip"] = r.computed_tokens_per_s_per_chip;
  if (w.phase == Phase::Decode)
    j["tpot_ms"] = r.tpot_ms;
  else
    j["ttft_ms"] = r.ttft_ms;
  j["mfu"] = r.mfu;
  j["compute_format"] = r.compute_format;
  j["achieved"] = {{"tflops", r.achieved_tflops}, {"hbm_tbps", r.achieved_hbm_tbps},
                   {"link_gbps", r.achieved_link_gbps}};
  return j.dump(2);
}

}  // namespace porta::plan
