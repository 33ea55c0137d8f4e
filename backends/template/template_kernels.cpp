#include "template_kernels.hpp"

#include <cmath>

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

}  // namespace

std::optional<KernelFn> find_kernel(OpKind op) {
  switch (op) {
    case OpKind::Add: return add_f32;
    case OpKind::Mul: return mul_f32;
    case OpKind::Silu: return silu_f32;
    default: return std::nullopt;
  }
}

}  // namespace porta::detail::template_backend
