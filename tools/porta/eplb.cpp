// `porta eplb --load FILE --ranks N --replicas R [--nodes M] [--groups G] --out FILE`: DeepSeek's
// expert-parallel load balancer on a load `porta run --record-expert-load` wrote; prints each MoE
// layer's max/mean rank load before (contiguous experts, no replicas) and after, and writes the
// placement `porta run --placement` applies.
#include <algorithm>

#include <fmt/format.h>

#include <porta/error.hpp>
#include <porta/expert_parallel.hpp>

#include "commands.hpp"

namespace porta::cli {

Command add_eplb_command(CLI::App& app) {
  struct Options {
    std::string load, out;
    ep::EplbOptions eplb;
  };
  auto o = std::make_shared<Options>();
  app.add_option("--load", o->load, "Expert load JSON (porta run --record-expert-load)")
      ->required();
  app.add_option("--ranks", o->eplb.ranks, "Ranks (processes) the experts go to")->required();
  app.add_option("--replicas", o->eplb.replicas, "Extra expert slots in total (replicas)")
      ->capture_default_str();
  app.add_option("--nodes", o->eplb.nodes,
                 "Nodes the ranks group into (consecutive ranks): hierarchical when > 1")
      ->capture_default_str();
  app.add_option("--groups", o->eplb.groups,
                 "Expert groups kept on one node (hierarchical); 0: one per expert")
      ->capture_default_str();
  app.add_option("--out", o->out, "Placement JSON to write")->required();
  return [o] {
    const ep::ExpertLoad load = ep::read_expert_load(o->load);
    if (load.layers.empty())
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("'{}' records no MoE layer", o->load));
    ep::ModelPlacement placement;
    double worst_before = 0, worst_after = 0;
    fmt::print("{:>6} {:>12} {:>12}\n", "layer", "max/mean", "after EPLB");
    for (const auto& [layer, counts] : load.layers) {
      const std::vector<double> weights(counts.begin(), counts.end());
      const auto before = ep::imbalance(ep::contiguous_placement(load.num_experts, o->eplb.ranks),
                                        weights);
      const auto& p = placement.layers[layer] = ep::eplb(counts, o->eplb);
      const auto after = ep::imbalance(p, weights);
      worst_before = std::max(worst_before, before);
      worst_after = std::max(worst_after, after);
      fmt::print("{:>6} {:>12.3f} {:>12.3f}\n", layer, before, after);
    }
    fmt::print("worst layer: max/mean {:.3f} -> {:.3f} ({} ranks, {} replicas, {} node(s))\n",
               worst_before, worst_after, o->eplb.ranks, o->eplb.replicas, o->eplb.nodes);
    ep::write_placement(o->out, placement);
    fmt::print("placement: written to {}\n", o->out);
    return 0;
  };
}

}  // namespace porta::cli
