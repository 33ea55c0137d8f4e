// Expert placements: validation, the contiguous default, the imbalance measure, and the JSON
// files `porta eplb` writes and `porta run --placement` reads.
#include <porta/error.hpp>
#include <porta/expert_parallel.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace porta::ep {

namespace {

using nlohmann::json;

json read_json(const std::string& path, const char* what) {
  std::ifstream in(path);
  if (!in) throw Error(ErrorCode::NotFound, fmt::format("cannot open {} file '{}'", what, path));
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw Error(ErrorCode::CorruptFile,
                fmt::format("{} file '{}' is not valid JSON: {}", what, path, e.what()));
  }
}

void write_json(const std::string& path, const json& j, const char* what) {
  std::ofstream out(path);
  out << j.dump(1) << '\n';
  if (!out) throw Error(ErrorCode::Io, fmt::format("cannot write {} file '{}'", what, path));
}

std::int64_t layer_key(const std::string& key, const std::string& path) {
  std::size_t used = 0;
  std::int64_t layer = -1;
  try {
    layer = std::stoll(key, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != key.size() || layer < 0)
    throw Error(ErrorCode::CorruptFile,
                fmt::format("'{}': layer key '{}' is not a layer index", path, key));
  return layer;
}

template <class F>
auto json_field(const std::string& path, const std::string& where, F&& get) {
  try {
    return get();
  } catch (const json::exception& e) {
    throw Error(ErrorCode::CorruptFile, fmt::format("'{}': {}: {}", path, where, e.what()));
  }
}

}  // namespace

std::vector<std::pair<std::int64_t, std::int64_t>> ExpertPlacement::replicas(
    std::int64_t expert) const {
  std::vector<std::pair<std::int64_t, std::int64_t>> out;
  for (std::size_t r = 0; r < rank_experts.size(); ++r)
    for (std::size_t s = 0; s < rank_experts[r].size(); ++s)
      if (rank_experts[r][s] == expert)
        out.emplace_back(static_cast<std::int64_t>(r), static_cast<std::int64_t>(s));
  return out;
}

void validate(const ExpertPlacement& p) {
  if (p.rank_experts.empty())
    throw Error(ErrorCode::InvalidArgument, "expert placement: no ranks");
  if (p.num_experts < 1)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("expert placement: {} experts", p.num_experts));
  std::vector<int> held(static_cast<std::size_t>(p.num_experts), 0);
  for (std::size_t r = 0; r < p.rank_experts.size(); ++r) {
    for (auto e : p.rank_experts[r]) {
      if (e < 0 || e >= p.num_experts)
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("expert placement: rank {} holds expert {}, outside [0, {})", r, e,
                                p.num_experts));
      ++held[static_cast<std::size_t>(e)];
    }
  }
  for (std::size_t e = 0; e < held.size(); ++e)
    if (held[e] == 0)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("expert placement: no rank holds expert {}", e));
}

ExpertPlacement contiguous_placement(std::int64_t num_experts, std::int64_t ranks) {
  if (ranks < 1 || num_experts < ranks)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("cannot place {} experts on {} ranks (every rank needs one)",
                            num_experts, ranks));
  ExpertPlacement p;
  p.num_experts = num_experts;
  p.rank_experts.resize(static_cast<std::size_t>(ranks));
  for (std::int64_t r = 0; r < ranks; ++r)
    for (std::int64_t e = r * num_experts / ranks; e < (r + 1) * num_experts / ranks; ++e)
      p.rank_experts[static_cast<std::size_t>(r)].push_back(e);
  return p;
}

double imbalance(const ExpertPlacement& p, const std::vector<double>& load) {
  validate(p);
  if (static_cast<std::int64_t>(load.size()) != p.num_experts)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("imbalance: {} loads for {} experts", load.size(), p.num_experts));
  std::vector<double> copies(load.size(), 0);
  for (const auto& slots : p.rank_experts)
    for (auto e : slots) copies[static_cast<std::size_t>(e)] += 1;
  double max = 0, sum = 0;
  for (const auto& slots : p.rank_experts) {
    double rank_load = 0;
    for (auto e : slots)
      rank_load += load[static_cast<std::size_t>(e)] / copies[static_cast<std::size_t>(e)];
    max = std::max(max, rank_load);
    sum += rank_load;
  }
  const double mean = sum / static_cast<double>(p.rank_experts.size());
  return mean > 0 ? max / mean : 1.0;
}

void write_placement(const std::string& path, const ModelPlacement& placement) {
  json j;
  json layers = json::object();
  for (const auto& [layer, p] : placement.layers) {
    validate(p);
    j["ranks"] = p.ranks();
    j["num_experts"] = p.num_experts;
    layers[std::to_string(layer)] = p.rank_experts;
  }
  j["layers"] = layers;
  write_json(path, j, "placement");
}

ModelPlacement read_placement(const std::string& path) {
  const json j = read_json(path, "placement");
  ModelPlacement out;
  const auto ranks = json_field(path, "ranks", [&] { return j.at("ranks").get<std::int64_t>(); });
  const auto experts =
      json_field(path, "num_experts", [&] { return j.at("num_experts").get<std::int64_t>(); });
  const json& layers = json_field(path, "layers", [&]() -> const json& { return j.at("layers"); });
  if (!layers.is_object())
    throw Error(ErrorCode::CorruptFile, fmt::format("'{}': layers is not an object", path));
  for (const auto& [key, value] : layers.items()) {
    ExpertPlacement p;
    p.num_experts = experts;
    p.rank_experts = json_field(path, "layer " + key, [&] {
      return value.get<std::vector<std::vector<std::int64_t>>>();
    });
    if (p.ranks() != ranks)
      throw Error(ErrorCode::CorruptFile,
                  fmt::format("'{}': layer {} places experts on {} ranks, the file says {}", path,
                              key, p.ranks(), ranks));
    try {
      validate(p);
    } catch (const Error& e) {
      throw Error(ErrorCode::CorruptFile, fmt::format("'{}': layer {}: {}", path, key, e.what()));
    }
    out.layers[layer_key(key, path)] = std::move(p);
  }
  return out;
}

void write_expert_load(const std::string& path, const ExpertLoad& load) {
  json j;
  j["num_experts"] = load.num_experts;
  json layers = json::object();
  for (const auto& [layer, counts] : load.layers) layers[std::to_string(layer)] = counts;
  j["layers"] = layers;
  write_json(path, j, "expert load");
}

ExpertLoad read_expert_load(const std::string& path) {
  const json j = read_json(path, "expert load");
  ExpertLoad out;
  out.num_experts =
      json_field(path, "num_experts", [&] { return j.at("num_experts").get<std::int64_t>(); });
  const json& layers = json_field(path, "layers", [&]() -> const json& { return j.at("layers"); });
  if (!layers.is_object())
    throw Error(ErrorCode::CorruptFile, fmt::format("'{}': layers is not an object", path));
  for (const auto& [key, value] : layers.items()) {
    auto counts =
        json_field(path, "layer " + key, [&] { return value.get<std::vector<std::int64_t>>(); });
    if (static_cast<std::int64_t>(counts.size()) != out.num_experts)
      throw Error(ErrorCode::CorruptFile,
                  fmt::format("'{}': layer {} has {} counts for {} experts", path, key,
                              counts.size(), out.num_experts));
    for (auto c : counts)
      if (c < 0)
        throw Error(ErrorCode::CorruptFile,
                    fmt::format("'{}': layer {} has a negative count {}", path, key, c));
    out.layers[layer_key(key, path)] = std::move(counts);
  }
  return out;
}

}  // namespace porta::ep
