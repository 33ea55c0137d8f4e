// Expert load balancing: statistics of how routing spreads tokens over experts, DeepSeek-V3's
// aux-loss-free bias update, and an EPLB-style plan that replicates hot experts over devices.
//
// The router reports `expert_counts` (kept assignments per expert) every batch. From them,
// load_stats() says how uneven the load is (max/mean imbalance: 1 is perfect balance; with E
// experts it is at most E); update_bias() nudges the router's selection bias so that the next
// batches even out (b_i += gamma * sign(mean - load_i), as in DeepSeek-V3 §2.1.2); and
// plan_expert_placement() turns a measured load into replica counts and a device assignment, so
// that hot experts are served by several devices (DeepSeek's EPLB).
#pragma once

#include <porta/config.hpp>

#include <cstdint>
#include <span>
#include <vector>

#include <porta/tensor.hpp>

PORTA_API_BEGIN
namespace porta::moe {

struct LoadStats {
  std::vector<std::int64_t> load;  // assignments per expert
  std::int64_t total = 0;          // all assignments
  double mean = 0.0;               // total / E
  std::int64_t max = 0, min = 0;
  std::int64_t hottest = -1, coldest = -1;  // an expert with the max (min) load, lowest index
  double imbalance = 0.0;                   // max / mean; 0 when there was no load at all
  double cv = 0.0;        // coefficient of variation: population stddev / mean (0 when idle)
  std::int64_t idle = 0;  // experts that got no assignment
};

// Statistics of one load vector (at least one expert; loads must be >= 0, else porta::Error).
LoadStats load_stats(std::span<const std::int64_t> load);
// From the router's expert_counts output: an i32 or i64 tensor [E].
LoadStats load_stats(const Tensor& expert_counts);

// Sums expert_counts over batches (a training step's micro-batches, a serving window).
class LoadTracker {
 public:
  explicit LoadTracker(std::int64_t num_experts);
  void add(std::span<const std::int64_t> counts);
  void add(const Tensor& expert_counts);  // i32 or i64 [E]
  LoadStats stats() const { return load_stats(load_); }
  std::int64_t batches() const noexcept { return batches_; }
  void reset();

 private:
  std::vector<std::int64_t> load_;
  std::int64_t batches_ = 0;
};

// Aux-loss-free balancing (DeepSeek-V3): b_i += gamma * sign(mean_j load_j - load_i), with
// sign(0) = 0, so overloaded experts become less attractive and underloaded ones more. The bias
// is the router's selection bias (it changes which experts are chosen, never their weights).
void update_bias(std::span<float> bias, std::span<const std::int64_t> load, float gamma);
// The same on tensors: bias f32 [E] (updated in place), expert_counts i32 or i64 [E].
void update_bias(const Tensor& bias, const Tensor& expert_counts, float gamma);

// Where experts go when `num_devices` devices hold `slots_per_device` expert replicas each
// (num_devices * slots_per_device >= E). Every expert gets one replica; each extra slot goes to
// the expert with the highest load per replica (ties to the lower index); the replicas are then
// packed heaviest first onto the device with the least load so far that has a free slot and
// does not already hold that expert, each replica carrying load / replicas.
struct ExpertPlacement {
  std::vector<std::int64_t> replicas;                     // [E] replicas per expert
  std::vector<std::vector<std::int64_t>> device_experts;  // experts each device holds
  std::vector<double> device_load;                        // expected load per device
  double imbalance = 0.0;  // max / mean device load (1 is perfect; 0 when there is no load)
};
ExpertPlacement plan_expert_placement(std::span<const std::int64_t> load, std::int64_t num_devices,
                                      std::int64_t slots_per_device);

}  // namespace porta::moe
PORTA_API_END
