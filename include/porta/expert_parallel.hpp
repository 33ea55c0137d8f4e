// Expert parallelism: where each MoE layer's experts (and their replicas) live among the ranks of
// a communicator, recorded expert loads, and DeepSeek's EPLB algorithm that turns a load into a
// placement with replicated hot experts.
//
// A placement lists, per rank, the logical expert held in each of its slots; an expert may sit in
// several slots (replicas). moe_experts_ep (include/porta/ops.hpp) dispatches token rows to the
// slots by all_to_all: the j-th assignment of expert e (in the router's `perm` order) goes to
// replica j mod (replicas of e), so tokens of a replicated expert are split deterministically and
// evenly. docs/expert-parallel.md describes the files and the algorithm.
#pragma once

#include <porta/config.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

PORTA_API_BEGIN
namespace porta::ep {

// One MoE layer's placement.
struct ExpertPlacement {
  std::int64_t num_experts = 0;                        // logical experts E
  std::vector<std::vector<std::int64_t>> rank_experts;  // [rank][slot] -> logical expert

  std::int64_t ranks() const { return static_cast<std::int64_t>(rank_experts.size()); }
  // Every (rank, slot) holding `expert`, in rank then slot order: its replicas.
  std::vector<std::pair<std::int64_t, std::int64_t>> replicas(std::int64_t expert) const;
  friend bool operator==(const ExpertPlacement&, const ExpertPlacement&) = default;
};

// Throws porta::Error naming the problem: an expert id out of range, an expert no rank holds,
// no ranks. A rank may hold two replicas of one expert (EPLB's packing can place them so).
void validate(const ExpertPlacement& placement);

// Experts split into `ranks` contiguous runs (rank r: [r·E/ranks, (r+1)·E/ranks)), no replicas.
ExpertPlacement contiguous_placement(std::int64_t num_experts, std::int64_t ranks);

// The placement of every MoE layer of a model, by layer index.
struct ModelPlacement {
  std::map<std::int64_t, ExpertPlacement> layers;
  friend bool operator==(const ModelPlacement&, const ModelPlacement&) = default;
};
// JSON: {"ranks": N, "num_experts": E, "layers": {"3": [[0, 5], [1, 2, 5]], ...}}.
void write_placement(const std::string& path, const ModelPlacement& placement);
ModelPlacement read_placement(const std::string& path);

// Tokens routed to each expert of each MoE layer, summed over a run (`porta run
// --record-expert-load`). JSON: {"num_experts": E, "layers": {"1": [c0, c1, ...], ...}}.
struct ExpertLoad {
  std::int64_t num_experts = 0;
  std::map<std::int64_t, std::vector<std::int64_t>> layers;
};
void write_expert_load(const std::string& path, const ExpertLoad& load);
ExpertLoad read_expert_load(const std::string& path);

// max over ranks of a rank's load divided by the mean over ranks, where a rank's load is the sum
// over its slots of load[expert] / (replicas of expert). 1 is perfect balance.
double imbalance(const ExpertPlacement& placement, const std::vector<double>& load);

// DeepSeek's EPLB (github.com/deepseek-ai/EPLB), per layer: replicate the experts with the
// highest load per replica until there are E + `replicas` slots, then pack the slots onto ranks
// by balanced packing (heaviest first, into the lightest rank that still has room), so every rank
// holds (E + replicas) / ranks slots (fewer only when every rank of a node already holds all of
// its experts), never two replicas of one expert. With `nodes` > 1 it is hierarchical: groups of
// E / `groups` consecutive experts are packed onto nodes first (keeping an expert group's traffic
// inside one node), then replicated and packed onto the node's ranks. Throws porta::Error when
// the sizes do not divide.
struct EplbOptions {
  std::int64_t ranks = 1;
  std::int64_t replicas = 0;  // extra slots in total (physical experts = E + replicas)
  std::int64_t nodes = 1;     // ranks are grouped into nodes of ranks / nodes consecutive ranks
  std::int64_t groups = 0;    // expert groups for the hierarchical step; 0: one per expert
};
ExpertPlacement eplb(const std::vector<std::int64_t>& load, const EplbOptions& options);

}  // namespace porta::ep
PORTA_API_END
