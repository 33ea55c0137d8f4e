#include "runtime/placement.hpp"

#include <fmt/format.h>

namespace porta::detail {

namespace {

// The backend a node is meant for: its graph pin, else the longest matching option pin, else the
// compile options' backend.
std::string wanted_backend(const Node& n, const CompileOptions& options) {
  if (!n.backend_pin.empty()) return n.backend_pin;
  std::string best;
  std::size_t best_length = 0;
  for (const auto& [pattern, backend] : options.pins) {
    const bool prefix = !pattern.empty() && pattern.back() == '*';
    const std::string stem = prefix ? pattern.substr(0, pattern.size() - 1) : pattern;
    const bool match = prefix ? n.name.starts_with(stem) : n.name == pattern;
    if (match && (best.empty() || stem.size() + (prefix ? 0 : 1) > best_length)) {
      best = backend;
      best_length = stem.size() + (prefix ? 0 : 1);
    }
  }
  return best.empty() ? options.backend : best;
}

}  // namespace

std::vector<PlacedNode> place_nodes(const GraphState& g, const std::vector<bool>& live,
                                    const CompileOptions& options) {
  std::vector<PlacedNode> placed(g.nodes.size());
  std::shared_ptr<Backend> fallback;
  for (const auto& n : g.nodes) {
    if (!live[n.id]) continue;
    const std::string wanted = wanted_backend(n, options);
    auto backend = get_backend(wanted);
    const auto verdict = backend->supports(g, n);
    if (verdict.supported) {
      placed[n.id] = {backend, {}};
      continue;
    }
    const std::string why = verdict.reason.empty() ? "not supported" : verdict.reason;
    if (options.fallback.empty() || options.fallback == wanted)
      throw Error(
          ErrorCode::Unsupported,
          fmt::format("{} cannot run on '{}': {}{}", describe_node(g, n), backend->name(), why,
                      options.fallback.empty() ? " (and no fallback backend is set)" : ""));
    if (!fallback) fallback = get_backend(options.fallback);
    const auto fallback_verdict = fallback->supports(g, n);
    if (!fallback_verdict.supported)
      throw Error(ErrorCode::Unsupported,
                  fmt::format("{} cannot run on '{}' ({}) nor on the fallback '{}' ({})",
                              describe_node(g, n), backend->name(), why, fallback->name(),
                              fallback_verdict.reason));
    placed[n.id] = {fallback, fmt::format("{} does not support it: {}", backend->name(), why)};
  }
  return placed;
}

}  // namespace porta::detail
