// Placement: which backend runs each node. Pins in the graph win, then pins in the compile
// options, then the requested backend; a node the chosen backend does not support goes to the
// fallback backend with the reason recorded, and only when no backend can run it is it an error.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <porta/executable.hpp>

#include "runtime/backend.hpp"

namespace porta::detail {

struct PlacedNode {
  std::shared_ptr<Backend> backend;
  std::string reason;  // non-empty when the node is not on the backend it was meant for
};

// One entry per node (dead nodes get a null backend).
std::vector<PlacedNode> place_nodes(const GraphState& g, const std::vector<bool>& live,
                                    const CompileOptions& options);

}  // namespace porta::detail
