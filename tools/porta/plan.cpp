// `porta plan`: how many chips, at what speed. Searches batch size and parallelism for the best
// throughput per chip of a model on a cluster profile under TPOT/TTFT targets (lib/plan, no
// numerics), prints the plan and its breakdown, optionally next to a second cluster.
#include <chrono>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <porta/error.hpp>
#include <porta/plan.hpp>

#include "commands.hpp"

namespace porta::cli {

namespace {

struct PlanArgs {
  std::string model;
  std::string cluster;
  std::string compare;
  int chips = 0;
  double tpot_ms = 0;
  double ttft_ms = 0;
  std::string dtype = "fp8";
  std::string phase = "decode";
  std::string format = "text";
  std::int64_t context = 4096;
  double prefix_hit = 0;
  std::int64_t batch = 0;
  int micro_batches = 0;
  int attention_tp = 0;
  double kv_bytes = 2;
  double mtp_accept = 0;
  double occupancy = 1;
  bool list = false;
};

std::string list_text() {
  std::string out = "built-in clusters:";
  for (const auto& n : plan::builtin_clusters()) out += " " + n;
  out += "\nbuilt-in models:";
  for (const auto& n : plan::builtin_models()) out += " " + n;
  return out + "\n";
}

int run_plan(const PlanArgs& a) {
  if (a.list) {
    fmt::print("{}", list_text());
    return 0;
  }
  if (a.model.empty() || a.cluster.empty() || a.chips < 1) {
    fmt::print(stderr, "porta plan: --model, --cluster and --chips are required (see --list)\n");
    return kExitUsage;
  }
  if (a.phase != "decode" && a.phase != "prefill")
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("--phase must be decode or prefill, not '{}'", a.phase));
  if (a.format != "text" && a.format != "json")
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("--format must be text or json, not '{}'", a.format));
  const auto start = std::chrono::steady_clock::now();
  const model::ModelConfig model = plan::load_model(a.model);
  plan::PlanRequest req;
  req.chips = a.chips;
  req.phase = a.phase == "decode" ? plan::Phase::Decode : plan::Phase::Prefill;
  req.format = plan::parse_weight_format(a.dtype);
  req.context = a.context;
  req.prefix_hit = a.prefix_hit;
  req.kv_bytes = a.kv_bytes;
  if (a.tpot_ms > 0) req.tpot_ms = a.tpot_ms;
  if (a.ttft_ms > 0) req.ttft_ms = a.ttft_ms;
  if (a.batch > 0) req.batch = a.batch;
  if (a.micro_batches > 0) req.micro_batches = a.micro_batches;
  if (a.attention_tp > 0) req.attention_tp = a.attention_tp;
  plan::Assumptions assumptions;
  assumptions.mtp_accept = a.mtp_accept;
  assumptions.occupancy = a.occupancy;

  std::vector<std::string> clusters{a.cluster};
  if (!a.compare.empty()) clusters.push_back(a.compare);
  nlohmann::json all = nlohmann::json::array();
  std::string text;
  for (const auto& name : clusters) {
    const plan::ClusterProfile cluster = plan::load_cluster(name);
    const plan::Plan p = plan::search_plan(model, cluster, req, assumptions);
    if (a.format == "json")
      all.push_back(nlohmann::json::parse(plan::plan_to_json(p, cluster, a.model)));
    else
      text += plan::plan_to_text(p, cluster, a.model);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (a.format == "json")
    fmt::print("{}\n", (all.size() == 1 ? all[0] : all).dump(2));
  else
    fmt::print("{}(searched in {:.2f} s)\n", text, seconds);
  return 0;
}

}  // namespace

Command add_plan_command(CLI::App& app) {
  auto a = std::make_shared<PlanArgs>();
  app.add_option("--model", a->model, "Model: a built-in name (see --list) or a config.json");
  app.add_option("--cluster", a->cluster, "Cluster profile: a built-in name or a .json file");
  app.add_option("--chips", a->chips, "Chips in the deployment (EP degree)");
  app.add_option("--tpot-ms", a->tpot_ms, "Decode: time-per-output-token target (ms)");
  app.add_option("--ttft-ms", a->ttft_ms, "Prefill: time-to-first-token target (ms)");
  app.add_option("--dtype", a->dtype, "Weight format: bf16, fp8, w8a8, w4a16");
  app.add_option("--phase", a->phase, "decode or prefill");
  app.add_option("--compare", a->compare, "A second cluster profile, side by side");
  app.add_option("--format", a->format, "text or json");
  app.add_option("--context", a->context, "Decode: KV length; prefill: prompt length (tokens)");
  app.add_option("--prefix-hit", a->prefix_hit, "Prefill: fraction of the prompt already cached");
  app.add_option("--batch", a->batch, "Fix the batch per chip instead of searching it");
  app.add_option("--micro-batches", a->micro_batches, "Fix 1, or 2 (dual-batch overlap)");
  app.add_option("--attention-tp", a->attention_tp, "Fix the attention TP degree (1: DP)");
  app.add_option("--kv-bytes", a->kv_bytes, "Bytes per KV-cache element (2 bf16, 1 fp8/int8)");
  app.add_option("--mtp-accept", a->mtp_accept,
                 "Decode: accepted multi-token-prediction tokens per step (0: off)");
  app.add_option("--occupancy", a->occupancy,
                 "Average fraction of the planned batch in flight (1: peak; the DeepSeek anchor "
                 "fits 0.68)");
  app.add_flag("--list", a->list, "List the built-in clusters and models");
  return [a] { return run_plan(*a); };
}

}  // namespace porta::cli
