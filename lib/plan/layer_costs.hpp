// The work one micro-batch does in one transformer layer on one chip: operators with their FLOPs,
// HBM bytes and the compute format they run in, and the collectives the layer needs. Shapes come
// from the ModelConfig; the split from the parallelism plan. No timing here (step_model.cpp).
#pragma once

#include <vector>

#include <porta/plan.hpp>

namespace porta::plan::detail {

// The weight format's GEMM peak, the attention kernels' bf16 rate, or plain bf16 GEMMs (router).
enum class Unit { Gemm, Attention, Bf16 };

struct OpCost {
  const char* name;
  double flops = 0;
  double bytes = 0;
  Unit unit = Unit::Gemm;
};

struct CommCost {
  Collective collective;
  int ranks;
  double bytes;
};

struct LayerWork {
  std::vector<OpCost> ops;
  std::vector<CommCost> comms;
};

// Everything the layer costs need, derived once per step.
struct StepShape {
  const model::ModelConfig* model = nullptr;
  int chips = 0;
  int tp = 1;
  int micro_batches = 1;
  double tokens = 0;        // tokens one micro-batch computes on a chip
  double sequences = 0;     // sequences in one micro-batch on a chip (per DP rank)
  double context = 0;       // decode: KV length; prefill: prompt length
  double new_tokens = 0;    // prefill: uncached prompt tokens per sequence
  bool decode = true;
  double weight_bytes = 2;  // per parameter of quantised weights
  double dispatch_bytes = 2;  // per element of the all_to_all dispatch
  double kv_bytes = 2;
  int expert_slots = 0;     // routed experts held per chip (replicas included)
  int total_slots = 0;      // over the EP group
  double moe_imbalance = 1;
  double attention_imbalance = 1;
};

LayerWork layer_work(const StepShape& s, std::int64_t layer);
// The MTP module / an extra MoE layer: the same work as a MoE layer.
LayerWork moe_layer_work(const StepShape& s);

// Parameter counts per part of the model (weights the plan stores).
struct ParamCounts {
  double attention = 0;        // per layer
  double attention_replicated = 0;  // per layer, the part TP does not split (MLA down-projections)
  double dense_mlp = 0;        // per dense layer
  double shared_experts = 0;   // per MoE layer
  double expert = 0;           // one routed expert
  double router = 0;           // per MoE layer
  double embedding = 0;        // embedding + LM head
  int moe_layers = 0;
  int dense_layers = 0;
};
ParamCounts param_counts(const model::ModelConfig& m);

// Bytes of KV cache per token per layer.
double kv_bytes_per_token_layer(const model::ModelConfig& m, double element_bytes);

}  // namespace porta::plan::detail
