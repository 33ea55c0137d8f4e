// Cluster profiles: a chip, a node of `chips_per_node` chips, a scale-up fabric (HCCS full mesh,
// NVSwitch, CloudMatrix's UB) spanning `domain` chips, and a scale-out network. Built-in profiles
// are embedded from lib/plan/data/clusters/; a user's JSON file has the same fields.
#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <porta/error.hpp>
#include <porta/plan.hpp>

#include "plan/embedded_data.hpp"
#include "plan/profile_parts.hpp"

namespace porta::plan {

using detail::Fields;

double ClusterProfile::scale_up_chip_gbps(int peers) const {
  if (scale_up_topology == Topology::Switch) return scale_up.gbps;
  return scale_up.gbps * std::max(1, std::min(peers, scale_up_domain - 1));
}

namespace {

LinkSpec parse_link(const Fields& f) {
  LinkSpec link;
  link.name = f.text("name");
  link.gbps = f.positive("gbps");
  link.efficiency = f.fraction("efficiency", 1.0);
  link.latency_us = f.positive("latency_us", 0.0, true);
  return link;
}

}  // namespace

ClusterProfile parse_cluster(const std::string& json_text, const std::string& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(ErrorCode::CorruptFile,
                fmt::format("cluster profile {}: not valid JSON ({})", source, e.what()));
  }
  const std::string where = fmt::format("cluster profile {}", source);
  const Fields f(j, where);
  ClusterProfile c;
  c.name = f.text("name");
  c.description = f.text("description", "");
  c.chip = detail::parse_chip(f.object("chip"));
  c.chips_per_node = f.count("chips_per_node");
  const Fields up = f.object("scale_up");
  c.scale_up = parse_link(up);
  const std::string topology = up.text("topology");
  if (topology == "full_mesh")
    c.scale_up_topology = Topology::FullMesh;
  else if (topology == "switch")
    c.scale_up_topology = Topology::Switch;
  else
    up.fail("topology", fmt::format("must be \"full_mesh\" or \"switch\", not \"{}\"", topology));
  c.scale_up_domain = up.count("domain", c.chips_per_node);
  if (c.scale_up_domain % c.chips_per_node != 0)
    up.fail("domain", fmt::format("({}) must be a multiple of chips_per_node ({})",
                                  c.scale_up_domain, c.chips_per_node));
  c.scale_out = parse_link(f.object("scale_out"));
  c.max_chips = f.has("max_chips") ? f.count("max_chips") : 0;
  return c;
}

ClusterProfile load_cluster(const std::string& name_or_path) {
  const bool is_path = name_or_path.find('/') != std::string::npos ||
                       (name_or_path.size() > 5 &&
                        name_or_path.compare(name_or_path.size() - 5, 5, ".json") == 0);
  if (is_path)
    return parse_cluster(detail::read_text_file(name_or_path, "cluster profile"),
                         "'" + name_or_path + "'");
  if (const auto text = detail::find_embedded("cluster", name_or_path))
    return parse_cluster(std::string(*text), "'" + name_or_path + "' (built in)");
  std::string known;
  for (const auto& n : builtin_clusters()) known += (known.empty() ? "" : ", ") + n;
  throw Error(ErrorCode::NotFound,
              fmt::format("no cluster profile '{}' (built in: {}; or a path to a .json file)",
                          name_or_path, known));
}

std::vector<std::string> builtin_clusters() { return detail::embedded_names("cluster"); }

}  // namespace porta::plan
