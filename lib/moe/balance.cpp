// Expert load statistics, the aux-loss-free bias update and the EPLB-style placement plan
// (include/porta/moe_balance.hpp).
#include <porta/moe_balance.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include <porta/error.hpp>

namespace porta::moe {
namespace {

std::vector<std::int64_t> counts_of(const Tensor& t, const char* what) {
  if (t.shape().rank() != 1)
    throw Error(ErrorCode::ShapeMismatch,
                fmt::format("{} must be 1-D [E], not {}", what, t.description()));
  std::vector<std::int64_t> out(static_cast<std::size_t>(t.numel()));
  if (t.dtype() == DType::I32) {
    const auto* p = t.data_as<std::int32_t>();
    std::copy(p, p + t.numel(), out.begin());
  } else if (t.dtype() == DType::I64) {
    const auto* p = t.data_as<std::int64_t>();
    std::copy(p, p + t.numel(), out.begin());
  } else {
    throw Error(ErrorCode::DTypeMismatch,
                fmt::format("{} must be i32 or i64, not {}", what, t.description()));
  }
  return out;
}

void check_load(std::span<const std::int64_t> load) {
  if (load.empty()) throw Error(ErrorCode::InvalidArgument, "expert load of zero experts");
  for (std::size_t e = 0; e < load.size(); ++e)
    if (load[e] < 0)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("expert load[{}] = {} is negative", e, load[e]));
}

}  // namespace

LoadStats load_stats(std::span<const std::int64_t> load) {
  check_load(load);
  LoadStats s;
  s.load.assign(load.begin(), load.end());
  const auto experts = static_cast<double>(load.size());
  s.total = std::accumulate(load.begin(), load.end(), std::int64_t{0});
  s.mean = static_cast<double>(s.total) / experts;
  const auto [lo, hi] = std::minmax_element(load.begin(), load.end());
  // minmax_element returns the first minimum but the last maximum: find the first of each.
  s.max = *hi;
  s.min = *lo;
  s.hottest = std::find(load.begin(), load.end(), s.max) - load.begin();
  s.coldest = lo - load.begin();
  s.idle = std::count(load.begin(), load.end(), std::int64_t{0});
  if (s.total > 0) {
    s.imbalance = static_cast<double>(s.max) / s.mean;
    double sq = 0.0;
    for (std::int64_t l : load)
      sq += (static_cast<double>(l) - s.mean) * (static_cast<double>(l) - s.mean);
    s.cv = std::sqrt(sq / experts) / s.mean;
  }
  return s;
}

LoadStats load_stats(const Tensor& expert_counts) {
  return load_stats(counts_of(expert_counts, "expert_counts"));
}

LoadTracker::LoadTracker(std::int64_t num_experts) {
  if (num_experts < 1)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("LoadTracker needs at least one expert, not {}", num_experts));
  load_.assign(static_cast<std::size_t>(num_experts), 0);
}

void LoadTracker::add(std::span<const std::int64_t> counts) {
  if (counts.size() != load_.size())
    throw Error(ErrorCode::ShapeMismatch, fmt::format("LoadTracker of {} experts given {} counts",
                                                      load_.size(), counts.size()));
  check_load(counts);
  for (std::size_t e = 0; e < load_.size(); ++e) load_[e] += counts[e];
  ++batches_;
}

void LoadTracker::add(const Tensor& expert_counts) {
  add(counts_of(expert_counts, "expert_counts"));
}

void LoadTracker::reset() {
  std::fill(load_.begin(), load_.end(), 0);
  batches_ = 0;
}

void update_bias(std::span<float> bias, std::span<const std::int64_t> load, float gamma) {
  check_load(load);
  if (bias.size() != load.size())
    throw Error(
        ErrorCode::ShapeMismatch,
        fmt::format("bias has {} entries but the load has {} experts", bias.size(), load.size()));
  if (!std::isfinite(gamma))
    throw Error(ErrorCode::InvalidArgument, fmt::format("gamma {} is not finite", gamma));
  // Compare load_i · E with the total rather than load_i with a rounded mean, so that an expert
  // exactly at the mean is left alone.
  const auto experts = static_cast<std::int64_t>(load.size());
  const std::int64_t total = std::accumulate(load.begin(), load.end(), std::int64_t{0});
  for (std::size_t e = 0; e < bias.size(); ++e) {
    const std::int64_t scaled = load[e] * experts;
    const float sign = scaled < total ? 1.0f : scaled > total ? -1.0f : 0.0f;
    bias[e] += gamma * sign;
  }
}

void update_bias(const Tensor& bias, const Tensor& expert_counts, float gamma) {
  if (bias.dtype() != DType::F32 || bias.shape().rank() != 1)
    throw Error(ErrorCode::DTypeMismatch,
                fmt::format("bias must be f32 [E], not {}", bias.description()));
  const auto counts = counts_of(expert_counts, "expert_counts");
  update_bias(std::span<float>(bias.data_as<float>(), static_cast<std::size_t>(bias.numel())),
              counts, gamma);
}

ExpertPlacement plan_expert_placement(std::span<const std::int64_t> load, std::int64_t num_devices,
                                      std::int64_t slots_per_device) {
  check_load(load);
  const auto experts = static_cast<std::int64_t>(load.size());
  if (num_devices < 1 || slots_per_device < 1 || num_devices * slots_per_device < experts)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{} devices of {} slots cannot hold {} experts", num_devices,
                            slots_per_device, experts));
  ExpertPlacement p;
  p.replicas.assign(load.size(), 1);
  // A device holds an expert at most once, so an expert has at most num_devices replicas.
  std::int64_t spare = num_devices * slots_per_device - experts;
  while (spare > 0) {
    std::int64_t best = -1;
    for (std::int64_t e = 0; e < experts; ++e) {
      const auto ei = static_cast<std::size_t>(e);
      if (p.replicas[ei] >= num_devices) continue;
      if (best < 0) {
        best = e;
        continue;
      }
      const auto bi = static_cast<std::size_t>(best);
      // load[e] / replicas[e] > load[best] / replicas[best], compared exactly.
      if (load[ei] * p.replicas[bi] > load[bi] * p.replicas[ei]) best = e;
    }
    if (best < 0) break;  // every expert is on every device already
    ++p.replicas[static_cast<std::size_t>(best)];
    --spare;
  }
  struct Replica {
    double load;
    std::int64_t expert;
  };
  std::vector<Replica> pieces;
  for (std::int64_t e = 0; e < experts; ++e) {
    const auto ei = static_cast<std::size_t>(e);
    for (std::int64_t r = 0; r < p.replicas[ei]; ++r)
      pieces.push_back({static_cast<double>(load[ei]) / static_cast<double>(p.replicas[ei]), e});
  }
  std::stable_sort(pieces.begin(), pieces.end(),
                   [](const Replica& a, const Replica& b) { return a.load > b.load; });
  const auto devices = static_cast<std::size_t>(num_devices);
  p.device_experts.assign(devices, {});
  p.device_load.assign(devices, 0.0);
  for (const Replica& piece : pieces) {
    std::size_t target = devices;
    for (std::size_t d = 0; d < devices; ++d) {
      const auto& held = p.device_experts[d];
      if (static_cast<std::int64_t>(held.size()) >= slots_per_device) continue;
      if (std::find(held.begin(), held.end(), piece.expert) != held.end()) continue;
      if (target == devices || p.device_load[d] < p.device_load[target]) target = d;
    }
    if (target == devices)
      throw Error(
          ErrorCode::Internal,
          fmt::format("expert placement: no device can take a replica of expert {}", piece.expert));
    p.device_experts[target].push_back(piece.expert);
    p.device_load[target] += piece.load;
  }
  const double total = std::accumulate(p.device_load.begin(), p.device_load.end(), 0.0);
  if (total > 0)
    p.imbalance = *std::max_element(p.device_load.begin(), p.device_load.end()) /
                  (total / static_cast<double>(devices));
  return p;
}

}  // namespace porta::moe
