// The plan search: for each attention TP degree, micro-batch count and expert redundancy the
// cluster allows, the largest batch that fits memory and meets the latency target (step time
// grows with the batch, so a bisection finds it), keeping the plan with the most tokens/s per
// chip. A whole R1 decode search is a few hundred step evaluations (milliseconds).
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include <porta/error.hpp>
#include <porta/plan.hpp>

namespace porta::plan {

namespace {

struct Candidate {
  Parallelism par;
  StepReport report;
  bool ok = false;
};

}  // namespace

Plan search_plan(const model::ModelConfig& m, const ClusterProfile& cluster,
                 const PlanRequest& req, const Assumptions& as) {
  if (req.chips < 1)
    throw Error(ErrorCode::InvalidArgument, fmt::format("chips must be >= 1, not {}", req.chips));
  if (req.tpot_ms && !(*req.tpot_ms > 0))
    throw Error(ErrorCode::InvalidArgument, fmt::format("TPOT target must be positive, not {}", *req.tpot_ms));
  if (req.ttft_ms && !(*req.ttft_ms > 0))
    throw Error(ErrorCode::InvalidArgument, fmt::format("TTFT target must be positive, not {}", *req.ttft_ms));
  const bool decode = req.phase == Phase::Decode;
  Plan plan;

  std::vector<int> tps;
  for (int tp : {1, 2, 4, 8, 16})
    if ((!req.attention_tp || *req.attention_tp == tp) && req.chips % tp == 0 &&
        m.num_heads % tp == 0 && tp <= cluster.scale_up_domain && tp <= req.chips)
      tps.push_back(tp);
  if (tps.empty())
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("attention TP {} does not divide {} chips and {} heads",
                            req.attention_tp.value_or(0), req.chips, m.num_heads));
  std::vector<int> mbs = req.micro_batches ? std::vector<int>{*req.micro_batches}
                                           : std::vector<int>{1, 2};
  // Redundancy: the replicas that fill the slots the chips hold anyway, or one more slot each.
  std::vector<int> redundancy{0};
  if (m.num_experts > 0 && req.chips > 1) {
    const int E = static_cast<int>(m.num_experts);
    const int slots = (E + req.chips - 1) / req.chips;
    redundancy = {slots * req.chips - E, (slots + 1) * req.chips - E};
  }

  auto meets = [&](const StepReport& r) {
    if (!r.fits_memory) return false;
    if (decode && req.tpot_ms && r.tpot_ms > *req.tpot_ms) return false;
    if (!decode && req.ttft_ms && r.ttft_ms > *req.ttft_ms) return false;
    return true;
  };
  Workload base;
  base.phase = req.phase;
  base.format = req.format;
  base.context = req.context;
  base.prefix_hit = req.prefix_hit;
  base.kv_bytes = req.kv_bytes;
  // Without a latency target the batch is bounded by memory, and prefill by a token budget.
  const std::int64_t max_batch =
      decode ? 8192 : std::max<std::int64_t>(1, 65536 / std::max<std::int64_t>(1, req.context));

  Candidate best;
  StepReport failure;
  for (int tp : tps)
    for (int mb : mbs)
      for (int red : redundancy) {
        Parallelism par{req.chips, tp, red, mb};
        auto eval = [&](std::int64_t b) {
          Workload w = base;
          w.batch = b;
          ++plan.candidates;
          return step_time(m, cluster, par, w, as);
        };
        Candidate c;
        c.par = par;
        if (req.batch) {
          c.report = eval(*req.batch);
          c.ok = meets(c.report);
        } else {
          // A decode micro-batch holds whole sequences; a prompt splits into two by tokens.
          const std::int64_t lo_b = decode ? mb : 1;
          StepReport lo = eval(lo_b);
          if (!meets(lo)) {
            c.report = lo;
          } else {
            std::int64_t good = lo_b, bad = max_batch + 1;
            while (bad - good > 1) {
              const std::int64_t mid = good + (bad - good) / 2;
              if (meets(eval(mid)))
                good = mid;
              else
                bad = mid;
            }
            c.report = eval(good);
            c.ok = true;
          }
        }
        if (c.ok && (!best.ok ||
                     c.report.tokens_per_s_per_chip > best.report.tokens_per_s_per_chip * 1.0001))
          best = c;
        else if (!c.ok) {
          // Explain a failure with the candidate that came closest: one that fits memory and is
          // fastest, else the one that needs the least memory.
          const StepReport& f = c.report;
          const StepReport& kept = failure;
          const bool first = kept.time.step_ms == 0;
          const bool better = f.fits_memory ? (!kept.fits_memory || f.time.step_ms < kept.time.step_ms)
                                            : (!kept.fits_memory && f.memory.total_gb() < kept.memory.total_gb());
          if (first || better) failure = f;
        }
      }

  if (best.ok) {
    plan.feasible = true;
    plan.report = best.report;
    return plan;
  }
  plan.report = failure;
  const StepReport& r = plan.report;
  if (!r.fits_memory)
    plan.reason = fmt::format(
        "does not fit: {:.1f} GB per chip needed at batch {} (weights {:.1f} GB, KV {:.1f} GB) of "
        "{:.1f} GB usable; use more chips or a smaller weight format",
        r.memory.total_gb(), r.workload.batch, r.memory.weights_gb, r.memory.kv_cache_gb,
        cluster.chip.hbm_gb * as.memory_usable);
  else if (decode)
    plan.reason = fmt::format("TPOT target {:.1f} ms not met even at batch {} ({:.1f} ms)",
                              req.tpot_ms.value_or(0), r.workload.batch, r.tpot_ms);
  else
    plan.reason = fmt::format("TTFT target {:.1f} ms not met even at batch {} ({:.1f} ms)",
                              req.ttft_ms.value_or(0), r.workload.batch, r.ttft_ms);
  return plan;
}

}  // namespace porta::plan
