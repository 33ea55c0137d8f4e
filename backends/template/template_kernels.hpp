// The template device's "kernels": f32 elementwise loops over device memory. On a real device
// these would be binaries (PTX, SPIR-V, an NPU tile program) built or looked up at compile time;
// here a function pointer chosen once per node plays that part.
#pragma once

#include <cstddef>
#include <optional>

#include <porta/ops.hpp>

namespace porta::detail::template_backend {

// One signature for every kernel: `b` is null for unary ops. `count` elements of f32.
using KernelFn = void (*)(const float* a, const float* b, float* out, std::size_t count);

// The kernel for `op`, or nothing when the device has none. Must agree with supports().
std::optional<KernelFn> find_kernel(OpKind op);

}  // namespace porta::detail::template_backend
