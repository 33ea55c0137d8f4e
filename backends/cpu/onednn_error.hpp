// What a oneDNN failure becomes for porta's users. Apart from the kernel helpers (cpu_util.hpp,
// which need OpenMP) so that the tests, built without it, can check the message.
#pragma once

#include <string_view>

#include <oneapi/dnnl/dnnl.hpp>

#include <porta/error.hpp>

#include "graph/graph_state.hpp"

namespace porta::detail::cpu {

// A porta::Error (ErrorCode::Backend) for a dnnl::error raised while lowering or running `n`:
// the step ("lower" or "run"), the op, the node, its operand shapes, oneDNN's message and status.
Error onednn_error(const GraphState& g, const Node& n, std::string_view step, const dnnl::error& e);

}  // namespace porta::detail::cpu
