#include "onednn_error.hpp"

#include <fmt/format.h>

namespace porta::detail::cpu {

Error onednn_error(const GraphState& g, const Node& n, std::string_view step,
                   const dnnl::error& e) {
  return Error(ErrorCode::Backend,
               fmt::format("cpu backend: oneDNN could not {} {}: {} (dnnl_status_t {})", step,
                           describe_node(g, n), e.what(), static_cast<int>(e.status)));
}

}  // namespace porta::detail::cpu
