// porta::plan: deployment-scale timing of a Mixture-of-Experts model on a cluster, no numerics.
//
// Given a Hugging Face config.json (read by porta::model::parse_config), a cluster profile (a node
// of N chips with their scale-up links, nodes joined by a scale-out network) and a parallelism plan
// (DP or TP attention, EP experts with redundant replicas, micro-batches with dual-batch overlap,
// the weight format), step_time() returns one prefill or decode step broken into compute, HBM,
// communication and the communication left exposed after overlap, with tokens/s per chip,
// TPOT/TTFT, memory per chip and MFU. search_plan() looks for the batch size and parallelism with
// the best throughput per chip under latency targets; `porta plan` is its command line. The model
// (roofline per operator, latency-bandwidth collectives, one calibration anchor) is documented in
// docs/deployment-sim.md together with its sources and the published points it was checked on.
#pragma once

#include <porta/config.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <porta/model/config.hpp>

PORTA_API_BEGIN
namespace porta::plan {

// ---- Hardware -------------------------------------------------------------------------------

// One accelerator: dense peak rates per compute format, memory, and the efficiencies the
// roofline applies (the fraction of peak a large GEMM and a streaming read reach).
struct ChipSpec {
  std::string name;
  double bf16_tflops = 0;  // dense bf16/fp16
  double fp8_tflops = 0;   // 0: no fp8 compute
  double int8_tops = 0;    // 0: no int8 compute
  double hbm_gb = 0;
  double hbm_tbps = 0;
  double gemm_efficiency = 0;    // large-GEMM fraction of peak
  double attention_efficiency = 0;  // attention kernels' (FlashMLA/FlashAttention) fraction of bf16 peak
  double hbm_efficiency = 0;     // streaming-read fraction of HBM bandwidth
  double kernel_overhead_us = 0; // per kernel launched (graph mode)
};

// A link as one chip sees it: bandwidth per direction, the fraction collectives reach, and the
// latency of one message step.
struct LinkSpec {
  std::string name;
  double gbps = 0;        // GB/s per direction: per link (full mesh) or per chip (switched)
  double efficiency = 1;  // achieved / nominal
  double latency_us = 0;  // per step of a collective
  double effective_gbps() const { return gbps * efficiency; }
};

enum class Topology { FullMesh, Switch };

struct ClusterProfile {
  std::string name;
  std::string description;
  ChipSpec chip;
  int chips_per_node = 0;
  // Scale-up: the chips reachable over `scale_up` (a node, or a supernode such as CloudMatrix384).
  Topology scale_up_topology = Topology::Switch;
  LinkSpec scale_up;
  int scale_up_domain = 0;
  // Scale-out: the network between scale-up domains, per chip.
  LinkSpec scale_out;
  int max_chips = 0;  // 0: unlimited

  // The chip's bandwidth to the rest of its scale-up domain (per direction, nominal): the sum of
  // its links in a full mesh, the switch port otherwise.
  double scale_up_chip_gbps(int peers) const;
};

// Built-in cluster profiles by name (case-insensitive), or a JSON file (a name containing '/' or
// ending in .json). Bad fields are porta::Errors naming the file and the field.
ClusterProfile load_cluster(const std::string& name_or_path);
ClusterProfile parse_cluster(const std::string& json_text, const std::string& source);
std::vector<std::string> builtin_clusters();

// Built-in model configs shipped with porta (deepseek-r1, deepseek-2xr1, ...), or a config.json
// path / directory holding one.
model::ModelConfig load_model(const std::string& name_or_path);
std::vector<std::string> builtin_models();

// ---- Collectives ----------------------------------------------------------------------------

enum class Collective { AllToAll, AllGather, AllReduce, ReduceScatter };
enum class Algorithm { Ring, FullMesh, Hierarchical };

std::string_view collective_name(Collective c) noexcept;
std::string_view algorithm_name(Algorithm a) noexcept;

struct CollectiveCost {
  double time_us = 0;
  double bandwidth_us = 0;  // the bytes / bandwidth terms
  double latency_us = 0;    // the per-step latency terms
  double link_bytes = 0;    // bytes the busiest link of one chip carries (one direction)
};

// `bytes` follows nccl-tests and HCCL's alg_bandwidth: the per-rank buffer of all_reduce, the
// gathered output of all_gather, the per-rank input of reduce_scatter, the per-rank send buffer of
// all_to_all. Ring and FullMesh use `intra` only. Hierarchical uses `intra` inside groups of
// `group` ranks (a node or supernode) and `inter` between groups; `ranks` must be a multiple of
// `group`. `intra.gbps` is the nominal per-direction bandwidth one rank has to one peer (a
// full-mesh link, or the switch port), `intra_chip_gbps` its total to the group.
struct CollectiveLinks {
  LinkSpec intra;              // gbps: to one peer
  double intra_chip_gbps = 0;  // total per chip inside the group (nominal); 0: = intra.gbps
  LinkSpec inter;              // gbps: per chip
  int group = 0;
};
CollectiveCost collective_cost(Collective c, Algorithm a, int ranks, double bytes,
                               const CollectiveLinks& links);

// The links a cluster offers for a collective over `ranks` chips.
CollectiveLinks cluster_links(const ClusterProfile& cluster, int ranks);

// ---- Workload and plan ----------------------------------------------------------------------

enum class WeightFormat { BF16, FP8, W8A8, W4A16 };
enum class Phase { Prefill, Decode };
std::string_view weight_format_name(WeightFormat f) noexcept;
WeightFormat parse_weight_format(const std::string& name);  // porta::Error on unknown names
std::string_view phase_name(Phase p) noexcept;

struct Parallelism {
  int chips = 0;
  int attention_tp = 1;       // 1: data-parallel attention (one replica per chip)
  int redundant_experts = 0;  // extra expert replicas spread over the EP group (EPLB)
  int micro_batches = 1;      // 2: dual-batch overlap of compute with communication
};

struct Workload {
  Phase phase = Phase::Decode;
  WeightFormat format = WeightFormat::FP8;
  std::int64_t batch = 1;        // sequences per chip (decode) or prompts per chip (prefill)
  std::int64_t context = 4096;   // decode: KV length; prefill: prompt length
  double prefix_hit = 0;         // prefill: fraction of the prompt already in the KV cache
  double kv_bytes = 2;           // bytes per cached element (bf16 2, fp8/int8 1)
};

// Assumptions that are not hardware: each has a default documented in docs/deployment-sim.md,
// and the calibration anchor's fitted values are `deepseek_h800_anchor()`.
//
// Imbalance is modelled, not assumed flat: a step waits for its busiest chip, and the busiest of R
// ranks sits about z(R) = sqrt(2 ln R) standard deviations above the mean. Context lengths vary
// between sequences (coefficient of variation `context_cv`), so a DP rank's attention work of
// b sequences exceeds the mean by z(R) · cv / sqrt(b); routed tokens per chip are Poisson around
// their mean μ, so the busiest chip gets z(N) · sqrt(μ) more, on top of the expert-popularity skew
// the redundant replicas (EPLB) do not remove.
struct Assumptions {
  double context_cv = 1.0;              // spread of context lengths (1: exponential-like)
  double expert_skew = 1.05;            // busiest chip / mean left after EPLB's replicas
  double expert_skew_no_eplb = 1.3;     // ... without redundant experts
  double memory_reserve_gb = 4;         // runtime, communication buffers, fragmentation
  double memory_usable = 0.92;          // fraction of HBM the allocator may hand out
  double step_overhead_ms = 0;          // per step: scheduling, sampling, host work
  double kernels_per_layer = 16;        // kernels one micro-batch launches per layer
  double mtp_accept = 0;                // decode: accepted extra tokens per step (MTP)
  // The average fraction of the planned batch in flight over a day of serving. 1 gives the plan's
  // peak; published fleet figures are daily averages (the anchor fits 0.68).
  double occupancy = 1.0;
};

struct StepBreakdown {
  double step_ms = 0;
  double compute_ms = 0;        // FLOPs / (peak × efficiency), summed over operators
  double hbm_ms = 0;            // bytes / (bandwidth × efficiency), summed over operators
  double busy_ms = 0;           // Σ max(compute, HBM) per operator + kernel overheads
  double comm_ms = 0;           // collectives, before overlap
  double exposed_comm_ms = 0;   // collectives not hidden under compute
  double overhead_ms = 0;       // kernel launches and the per-step overhead
  double flops = 0;             // per chip per step
  double hbm_bytes = 0;         // per chip per step
  double link_bytes = 0;        // per chip per step, busiest direction
  double scale_out_bytes = 0;   // the part over the scale-out network
};

struct MemoryBreakdown {
  double weights_gb = 0;
  double kv_cache_gb = 0;
  double activations_gb = 0;
  double reserve_gb = 0;
  double total_gb() const { return weights_gb + kv_cache_gb + activations_gb + reserve_gb; }
};

struct StepReport {
  Parallelism parallelism;
  Workload workload;
  StepBreakdown time;
  MemoryBreakdown memory;
  double tokens_per_s_per_chip = 0;   // decode: output tokens; prefill: prompt tokens (hits incl.),
                                      // × Assumptions::occupancy
  double computed_tokens_per_s_per_chip = 0;
  double tpot_ms = 0;                 // decode
  double ttft_ms = 0;                 // prefill
  double mfu = 0;                     // FLOPs / (step × the chip's peak in the GEMM format)
  double achieved_tflops = 0;
  double achieved_hbm_tbps = 0;
  double achieved_link_gbps = 0;      // busiest link direction, over the communication time
  bool fits_memory = true;
  std::string compute_format;         // the peak the GEMMs run at (bf16, fp8, int8)
};

// Times one step. Throws porta::Error for a plan the cluster cannot hold structurally (more chips
// than the profile allows, TP that does not divide, a format the chip cannot compute).
StepReport step_time(const model::ModelConfig& model, const ClusterProfile& cluster,
                     const Parallelism& parallelism, const Workload& workload,
                     const Assumptions& assumptions = {});

struct PlanRequest {
  int chips = 0;
  Phase phase = Phase::Decode;
  WeightFormat format = WeightFormat::FP8;
  std::int64_t context = 4096;
  double prefix_hit = 0;
  std::optional<double> tpot_ms;
  std::optional<double> ttft_ms;
  std::optional<std::int64_t> batch;   // fix the batch instead of searching it
  std::optional<int> micro_batches;    // fix 1 or 2
  std::optional<int> attention_tp;     // fix the attention TP degree
  double kv_bytes = 2;
};

struct Plan {
  bool feasible = false;
  std::string reason;  // why no plan met the targets (memory, latency), empty when feasible
  StepReport report;
  int candidates = 0;  // step evaluations the search ran
};

Plan search_plan(const model::ModelConfig& model, const ClusterProfile& cluster,
                 const PlanRequest& request, const Assumptions& assumptions = {});

// The fitted assumptions of the DeepSeek H800 calibration anchor (docs/deployment-sim.md).
Assumptions deepseek_h800_anchor();

// Model size figures the plan uses (parameters counted from the config).
struct ModelSize {
  double total_params = 0;
  double active_params = 0;  // per token
  double expert_params = 0;  // routed experts, all layers
};
ModelSize model_size(const model::ModelConfig& model);

std::string plan_to_text(const Plan& plan, const ClusterProfile& cluster,
                         const std::string& model_name);
std::string plan_to_json(const Plan& plan, const ClusterProfile& cluster,
                         const std::string& model_name);

}  // namespace porta::plan
PORTA_API_END
