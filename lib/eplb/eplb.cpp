// DeepSeek's expert-parallel load balancer (EPLB), written from the description of
// github.com/deepseek-ai/EPLB: hierarchically, pack expert groups onto nodes first (balanced
// packing); then, inside each node, replicate the experts with the most load per replica and pack
// the replicas onto the node's ranks, heaviest first, into the lightest rank with room: that step
// is porta::moe::plan_expert_placement (include/porta/moe_balance.hpp), which also keeps two
// replicas of one expert off the same rank.
#include <porta/error.hpp>
#include <porta/expert_parallel.hpp>
#include <porta/moe_balance.hpp>

#include <algorithm>
#include <numeric>

#include <fmt/format.h>

namespace porta::ep {

namespace {

// Items into `packs` packs of equal item count, balancing the summed weight: items by weight,
// heaviest first (ties: lower index), each into the lightest pack that is not full (ties: lower
// pack). Returns each item's pack.
std::vector<std::int64_t> balanced_packing(const std::vector<double>& weight, std::int64_t packs) {
  const auto n = static_cast<std::int64_t>(weight.size());
  const std::int64_t capacity = n / packs;
  std::vector<std::int64_t> order(weight.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
    return weight[static_cast<std::size_t>(a)] > weight[static_cast<std::size_t>(b)];
  });
  std::vector<double> load(static_cast<std::size_t>(packs), 0.0);
  std::vector<std::int64_t> count(static_cast<std::size_t>(packs), 0);
  std::vector<std::int64_t> pack_of(weight.size(), -1);
  for (auto item : order) {
    std::int64_t best = -1;
    for (std::int64_t p = 0; p < packs; ++p) {
      const auto up = static_cast<std::size_t>(p);
      if (count[up] >= capacity) continue;
      if (best < 0 || load[up] < load[static_cast<std::size_t>(best)]) best = p;
    }
    const auto ub = static_cast<std::size_t>(best);
    pack_of[static_cast<std::size_t>(item)] = best;
    load[ub] += weight[static_cast<std::size_t>(item)];
    ++count[ub];
  }
  return pack_of;
}

void require(bool ok, const std::string& what) {
  if (!ok) throw Error(ErrorCode::InvalidArgument, "eplb: " + what);
}

}  // namespace

ExpertPlacement eplb(const std::vector<std::int64_t>& load, const EplbOptions& o) {
  const auto experts = static_cast<std::int64_t>(load.size());
  const std::int64_t groups = o.groups == 0 ? experts : o.groups;
  const std::int64_t physical = experts + o.replicas;
  require(experts > 0, "no expert loads");
  for (auto l : load) require(l >= 0, fmt::format("a negative load {}", l));
  require(o.ranks >= 1 && o.nodes >= 1 && o.replicas >= 0,
          fmt::format("ranks ({}) and nodes ({}) must be >= 1, replicas ({}) >= 0", o.ranks,
                      o.nodes, o.replicas));
  require(physical % o.ranks == 0,
          fmt::format("{} experts + {} replicas = {} slots do not split evenly over {} ranks",
                      experts, o.replicas, physical, o.ranks));
  require(o.ranks % o.nodes == 0,
          fmt::format("{} ranks do not split evenly into {} nodes", o.ranks, o.nodes));
  require(groups >= 1 && experts % groups == 0 && groups % o.nodes == 0,
          fmt::format("{} expert groups must divide {} experts and be a multiple of {} nodes",
                      groups, experts, o.nodes));
  require(physical % o.nodes == 0 && physical / o.nodes >= experts / o.nodes,
          fmt::format("{} slots do not split evenly over {} nodes", physical, o.nodes));

  // 1. Expert groups onto nodes (a single node takes them all).
  const std::int64_t group_size = experts / groups;
  std::vector<double> group_load(static_cast<std::size_t>(groups), 0.0);
  for (std::int64_t e = 0; e < experts; ++e)
    group_load[static_cast<std::size_t>(e / group_size)] +=
        static_cast<double>(load[static_cast<std::size_t>(e)]);
  const auto node_of_group = balanced_packing(group_load, o.nodes);

  ExpertPlacement out;
  out.num_experts = experts;
  out.rank_experts.resize(static_cast<std::size_t>(o.ranks));
  const std::int64_t ranks_per_node = o.ranks / o.nodes;
  for (std::int64_t node = 0; node < o.nodes; ++node) {
    std::vector<std::int64_t> node_experts;
    for (std::int64_t gi = 0; gi < groups; ++gi)
      if (node_of_group[static_cast<std::size_t>(gi)] == node)
        for (std::int64_t e = gi * group_size; e < (gi + 1) * group_size; ++e)
          node_experts.push_back(e);
    std::vector<std::int64_t> node_load;
    for (auto e : node_experts) node_load.push_back(load[static_cast<std::size_t>(e)]);
    // 2. Replicate within the node, 3. pack the node's slots onto its ranks.
    const auto packed =
        moe::plan_expert_placement(node_load, ranks_per_node, physical / o.ranks);
    for (std::int64_t r = 0; r < ranks_per_node; ++r)
      for (auto e : packed.device_experts[static_cast<std::size_t>(r)])
        out.rank_experts[static_cast<std::size_t>(node * ranks_per_node + r)].push_back(
            node_experts[static_cast<std::size_t>(e)]);
  }
  for (auto& slots : out.rank_experts) std::sort(slots.begin(), slots.end());
  validate(out);
  return out;
}

}  // namespace porta::ep
