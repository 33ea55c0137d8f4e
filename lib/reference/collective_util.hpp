// What the collective kernels share (collectives.cpp, moe_experts_ep.cpp).
#pragma once

#include <porta/comm.hpp>

#include "graph/graph_state.hpp"
#include "runtime/backend.hpp"

namespace porta::detail::reference {

// The Executable's communicator, checked to have the `ranks` ranks the node was built for.
Communicator& communicator_for(const Node& n, const ExecContext& ctx, std::int64_t ranks);

}  // namespace porta::detail::reference
