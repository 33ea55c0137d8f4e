// The cpu backend's MoE ops. Until the fast MoE kernels land this table is empty, so the cpu
// backend declines the MoE ops and the runtime places them on the reference backend, visibly in
// the placement report.
#include "cpu_kernel.hpp"

namespace porta::detail::cpu {

std::span<const OpLowering> moe_lowerings() { return {}; }

}  // namespace porta::detail::cpu
