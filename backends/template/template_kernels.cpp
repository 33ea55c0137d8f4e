#include "template_kernels.hpp"

#include <cmath>
#include <utility>

namespace porta::detail::template_backend {

namespace {

// Safe when `out` is one of the inputs: each element is read before it is written.
void add_f32(const float* a, const float* b, float* out, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) out[i] = a[i] + b[i];
}

void mul_f32(const float* a, const float* b, float* out, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) out[i] = a[i] * b[i];
}

// silu(x) = x · sigmoid(x) = x / (1 + e^-x). For very negative x, e^-x overflows to +inf and the
// quotient is -0, the correct limit, so no special case is needed.
void silu_f32(const float* a, const float* /*unused*/, float* out, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) out[i] = a[i] / (1.0f + std::exp(-a[i]));
}

// The ops this device runs natively, one entry each; supports() declines every other op, and the
// runtime places it on another backend.
constexpr std::pair<OpKind, KernelFn> kKernels[] = {
    {OpKind::Add, add_f32},
    {OpKind::Mul, mul_f32},
    {OpKind::Silu, silu_f32},
};

}  // namespace

std::optional<KernelFn> find_kernel(OpKind op) {
  for (const auto& [kind, kernel] : kKernels)
    if (kind == op) return kernel;
  return std::nullopt;
}

}  // namespace porta::detail::template_backend
