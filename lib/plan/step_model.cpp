// One prefill or decode step on one chip: the layers' operators through a roofline (each operator
// takes max(FLOPs at the format's peak × GEMM efficiency, bytes at HBM bandwidth × efficiency)
// plus its kernel launches), the layers' collectives through collective_cost(), and their
// overlap: with one micro-batch a layer's communication adds to its compute; with two (DeepSeek's
// dual-batch overlap) one micro-batch's all_to_all runs under the other's compute, so a layer
// costs max(compute, communication) and only the excess is exposed.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include <porta/error.hpp>
#include <porta/plan.hpp>

#include "plan/layer_costs.hpp"

namespace porta::plan {

using detail::LayerWork;
using detail::StepShape;
using detail::Unit;

std::string_view weight_format_name(WeightFormat f) noexcept {
  switch (f) {
    case WeightFormat::BF16: return "bf16";
    case WeightFormat::FP8: return "fp8";
    case WeightFormat::W8A8: return "w8a8";
    case WeightFormat::W4A16: return "w4a16";
  }
  return "?";
}

WeightFormat parse_weight_format(const std::string& name) {
  for (WeightFormat f : {WeightFormat::BF16, WeightFormat::FP8, WeightFormat::W8A8, WeightFormat::W4A16})
    if (weight_format_name(f) == name) return f;
  throw Error(ErrorCode::InvalidArgument,
              fmt::format("unknown weight format '{}' (bf16, fp8, w8a8, w4a16)", name));
}

std::string_view phase_name(Phase p) noexcept { return p == Phase::Decode ? "decode" : "prefill"; }

namespace {

struct FormatPeak {
  double tflops;
  double weight_bytes;
  double dispatch_bytes;
  const char* compute;
};

FormatPeak format_peak(const ChipSpec& chip, WeightFormat f) {
  switch (f) {
    case WeightFormat::BF16: return {chip.bf16_tflops, 2, 2, "bf16"};
    case WeightFormat::W4A16:  // int4 weights with a bf16 scale per 128, dequantised into bf16 GEMMs
      return {chip.bf16_tflops, 0.5 + 2.0 / 128, 2, "bf16"};
    case WeightFormat::FP8:
      if (chip.fp8_tflops <= 0)
        throw Error(ErrorCode::Unsupported,
                    fmt::format("chip '{}' has no fp8 compute; use --dtype w8a8 (int8) or bf16",
                                chip.name));
      // fp8 dispatch carries one f32 scale per 128 elements (DeepEP)
      return {chip.fp8_tflops, 1 + 4.0 / (128 * 128), 1 + 4.0 / 128, "fp8"};
    case WeightFormat::W8A8:
      if (chip.int8_tops <= 0)
        throw Error(ErrorCode::Unsupported,
                    fmt::format("chip '{}' has no int8 compute; use bf16 or w4a16", chip.name));
      return {chip.int8_tops, 1 + 4.0 / 7168, 1 + 4.0 / 128, "int8"};
  }
  return {chip.bf16_tflops, 2, 2, "bf16"};
}

// How many standard deviations the largest of n samples lies above their mean (Gaussian tail).
double busiest_sigmas(int n) { return n > 1 ? std::sqrt(2 * std::log(static_cast<double>(n))) : 0; }

void check(bool ok, const std::string& what) {
  if (!ok) throw Error(ErrorCode::InvalidArgument, what);
}

}  // namespace

StepReport step_time(const model::ModelConfig& m, const ClusterProfile& cluster,
                     const Parallelism& par, const Workload& wl, const Assumptions& as) {
  const ChipSpec& chip = cluster.chip;
  check(par.chips >= 1, fmt::format("chips must be >= 1, not {}", par.chips));
  check(cluster.max_chips == 0 || par.chips <= cluster.max_chips,
        fmt::format("cluster '{}' has at most {} chips, not {}", cluster.name, cluster.max_chips,
                    par.chips));
  check(par.attention_tp >= 1 && par.chips % par.attention_tp == 0 &&
            m.num_heads % par.attention_tp == 0 && par.attention_tp <= cluster.scale_up_domain,
        fmt::format("attention TP {} must divide the chips ({}) and heads ({}) and fit the "
                    "scale-up domain ({})",
                    par.attention_tp, par.chips, m.num_heads, cluster.scale_up_domain));
  check(par.micro_batches == 1 || par.micro_batches == 2,
        fmt::format("micro_batches must be 1 or 2, not {}", par.micro_batches));
  check(wl.batch >= 1, fmt::format("batch must be >= 1, not {}", wl.batch));
  check(wl.context >= 1, fmt::format("context must be >= 1, not {}", wl.context));
  check(wl.prefix_hit >= 0 && wl.prefix_hit < 1,
        fmt::format("prefix_hit must be in [0, 1), not {}", wl.prefix_hit));
  check(par.redundant_experts >= 0,
        fmt::format("redundant_experts must be >= 0, not {}", par.redundant_experts));
  check(as.occupancy > 0 && as.occupancy <= 1,
        fmt::format("occupancy must be in (0, 1], not {}", as.occupancy));
  check(wl.kv_bytes > 0, fmt::format("kv_bytes must be positive, not {}", wl.kv_bytes));

  const FormatPeak peak = format_peak(chip, wl.format);
  const bool decode = wl.phase == Phase::Decode;
  const bool mtp = decode && as.mtp_accept > 0;

  StepShape s;
  s.model = &m;
  s.chips = par.chips;
  s.tp = par.attention_tp;
  s.micro_batches = par.micro_batches;
  s.decode = decode;
  s.context = static_cast<double>(wl.context);
  s.new_tokens = decode ? 1 : std::max(1.0, std::round(s.context * (1 - wl.prefix_hit)));
  const double tokens_per_seq = decode ? (mtp ? 2.0 : 1.0) : s.new_tokens;
  s.sequences = static_cast<double>(wl.batch) / par.micro_batches;
  s.tokens = s.sequences * tokens_per_seq;
  s.weight_bytes = peak.weight_bytes;
  s.dispatch_bytes = peak.dispatch_bytes;
  s.kv_bytes = wl.kv_bytes;
  const int E = static_cast<int>(m.num_experts);
  if (E > 0) {
    s.expert_slots = (E + par.redundant_experts + par.chips - 1) / par.chips;
    s.total_slots = s.expert_slots * par.chips;
    if (par.chips > 1) {
      const double routed = s.tokens * static_cast<double>(m.top_k);  // mean per chip
      // Slots beyond the experts hold replicas of the hot ones, whether asked for or left over.
      const double skew = s.total_slots > E ? as.expert_skew : as.expert_skew_no_eplb;
      s.moe_imbalance = skew * (1 + busiest_sigmas(par.chips) / std::sqrt(std::max(routed, 1.0)));
    }
  }
  // Decode ranks keep the sequences they hold; prefill's scheduler packs prompts so that the ranks'
  // attention work is even (DeepSeek's prefill load balancer), so only decode pays for the spread.
  const int dp_ranks = par.chips / par.attention_tp;
  s.attention_imbalance =
      decode ? 1 + busiest_sigmas(dp_ranks) * as.context_cv /
                       std::sqrt(std::max(s.sequences * par.attention_tp, 1.0))
             : 1.0;

  StepReport r;
  r.parallelism = par;
  r.workload = wl;
  r.compute_format = peak.compute;
  StepBreakdown& t = r.time;
  const double gemm_tflops = peak.tflops * chip.gemm_efficiency;
  const double bf16_tflops = chip.bf16_tflops * chip.gemm_efficiency;
  const double attention_tflops = chip.bf16_tflops * chip.attention_efficiency;
  const double hbm_tbps = chip.hbm_tbps * chip.hbm_efficiency;
  const CollectiveLinks links_ep = cluster_links(cluster, par.chips);
  const CollectiveLinks links_tp = cluster_links(cluster, par.attention_tp);
  const double launch_ms = as.kernels_per_layer * chip.kernel_overhead_us * 1e-3;

  double fill_ms = 0;
  auto run_layer = [&](const LayerWork& w) {
    double busy = 0, comm = 0;
    for (const auto& op : w.ops) {
      const double rate = op.unit == Unit::Gemm ? gemm_tflops
                          : op.unit == Unit::Attention ? attention_tflops
                                                       : bf16_tflops;
      const double c = op.flops / (rate * 1e9);
      const double h = op.bytes / (hbm_tbps * 1e9);
      t.compute_ms += c * par.micro_batches;
      t.hbm_ms += h * par.micro_batches;
      t.flops += op.flops * par.micro_batches;
      t.hbm_bytes += op.bytes * par.micro_batches;
      busy += std::max(c, h);
    }
    busy = (busy + launch_ms) * par.micro_batches;
    t.overhead_ms += launch_ms * par.micro_batches;
    for (const auto& cc : w.comms) {
      const bool tp = cc.collective == Collective::AllReduce;
      const CollectiveLinks& links = tp ? links_tp : links_ep;
      const Algorithm algo = links.group < cc.ranks ? Algorithm::Hierarchical : Algorithm::FullMesh;
      const CollectiveCost cost = collective_cost(cc.collective, algo, cc.ranks, cc.bytes, links);
      comm += cost.time_us * 1e-3 * par.micro_batches;
      t.link_bytes += cost.link_bytes * par.micro_batches;
      if (algo == Algorithm::Hierarchical && cc.collective == Collective::AllToAll)
        t.scale_out_bytes += cc.bytes * (cc.ranks - links.group) / cc.ranks * par.micro_batches;
    }
    t.busy_ms += busy;
    t.comm_ms += comm;
    if (par.micro_batches == 1) {
      t.exposed_comm_ms += comm;
      return busy + comm;
    }
    // Dual-batch overlap: the step starts and ends with half a layer nobody overlaps with.
    fill_ms = std::max(fill_ms, std::min(busy, comm) / 2);
    t.exposed_comm_ms += std::max(0.0, comm - busy);
    return std::max(busy, comm);
  };

  double layers_ms = 0;
  for (std::int64_t l = 0; l < m.num_layers; ++l) layers_ms += run_layer(detail::layer_work(s, l));
  if (mtp) layers_ms += run_layer(detail::moe_layer_work(s));
  layers_ms += fill_ms;
  t.exposed_comm_ms += fill_ms;

  // Embedding gather and LM head (logits for every decode token, the last prompt token in prefill).
  const detail::ParamCounts pc = detail::param_counts(m);
  const double H = static_cast<double>(m.hidden_size), V = static_cast<double>(m.vocab_size);
  const double logit_rows = decode ? s.tokens * par.micro_batches : static_cast<double>(wl.batch);
  const double head_flops = 2 * logit_rows * H * V;
  const double head_bytes = V * H * 2 + logit_rows * V * 4 + s.tokens * par.micro_batches * H * 2;
  const double head_c = head_flops / (bf16_tflops * 1e9), head_h = head_bytes / (hbm_tbps * 1e9);
  t.compute_ms += head_c;
  t.hbm_ms += head_h;
  t.flops += head_flops;
  t.hbm_bytes += head_bytes;
  t.busy_ms += std::max(head_c, head_h);
  t.overhead_ms += as.step_overhead_ms;
  t.step_ms = layers_ms + std::max(head_c, head_h) + as.step_overhead_ms;

  // Memory per chip.
  MemoryBreakdown& mem = r.memory;
  const double tp = par.attention_tp;
  const double attention_params =
      pc.attention_replicated + (pc.attention - pc.attention_replicated) / tp;
  double weights = m.num_layers * attention_params * peak.weight_bytes +
                   pc.dense_layers * pc.dense_mlp * peak.weight_bytes +
                   pc.moe_layers * (pc.shared_experts * peak.weight_bytes + pc.router * 2 +
                                    s.expert_slots * pc.expert * peak.weight_bytes) +
                   pc.embedding * 2;
  if (mtp) weights += attention_params * peak.weight_bytes + pc.shared_experts * peak.weight_bytes +
                      s.expert_slots * pc.expert * peak.weight_bytes;
  mem.weights_gb = weights / 1e9;
  // The KV cache a chip holds: MLA's latent is per token, not per head, so TP replicates it; GQA
  // splits by KV heads as far as they go.
  const double kv_split = m.mla ? 1.0 : std::min(tp, static_cast<double>(m.num_kv_heads));
  const double seqs_held = static_cast<double>(wl.batch) * tp / kv_split;
  const double kv_layers = static_cast<double>(m.num_layers) + (mtp ? 1 : 0);
  mem.kv_cache_gb = seqs_held * s.context * kv_layers *
                    detail::kv_bytes_per_token_layer(m, wl.kv_bytes) / 1e9;
  const double k = static_cast<double>(std::max<std::int64_t>(m.top_k, 1));
  mem.activations_gb = s.tokens * par.micro_batches * tp * H * 2 * (6 + 2 * k) / 1e9;
  mem.reserve_gb = as.memory_reserve_gb;
  r.fits_memory = mem.total_gb() <= chip.hbm_gb * as.memory_usable;

  // Rates.
  const double step_s = t.step_ms * 1e-3;
  const double batch = static_cast<double>(wl.batch);
  if (decode) {
    r.tpot_ms = t.step_ms / (1 + as.mtp_accept);
    r.tokens_per_s_per_chip = batch * (1 + as.mtp_accept) / step_s;
    r.computed_tokens_per_s_per_chip = batch * tokens_per_seq / step_s;
  } else {
    r.ttft_ms = t.step_ms;
    r.tokens_per_s_per_chip = batch * s.context / step_s;
    r.computed_tokens_per_s_per_chip = batch * s.new_tokens / step_s;
  }
  r.tokens_per_s_per_chip *= as.occupancy;
  r.computed_tokens_per_s_per_chip *= as.occupancy;
  r.achieved_tflops = t.flops / step_s / 1e12;
  r.mfu = r.achieved_tflops / peak.tflops;
  r.achieved_hbm_tbps = t.hbm_bytes / step_s / 1e12;
  r.achieved_link_gbps = t.comm_ms > 0 ? t.link_bytes / (t.comm_ms * 1e-3) / 1e9 : 0;
  return r;
}

}  // namespace porta::plan
