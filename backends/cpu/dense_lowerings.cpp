// The cpu backend's dense ops. Each op family's kernels live in a file of their own; this table
// lists them.
#include "cpu_kernel.hpp"

namespace porta::detail::cpu {

std::span<const OpLowering> dense_lowerings() { return {}; }

}  // namespace porta::detail::cpu
