// Elementwise kernels: add/sub/mul/div with NumPy broadcasting, the activations, swiglu.

#include <cmath>
#include <numbers>
#include <vector>

#include <fmt/format.h>

#include <porta/error.hpp>

#include "reference/kernel_util.hpp"
#include "reference/kernels.hpp"

namespace porta::detail::reference {

namespace {

float apply_float(OpKind op, float a, float b) {
  switch (op) {
    case OpKind::Add: return a + b;
    case OpKind::Sub: return a - b;
    case OpKind::Mul: return a * b;
    case OpKind::Div: return a / b;
    default: break;
  }
  return 0.0f;
}

// Integer math is exact in int64; the unsigned detour makes i64 overflow wrap (as NumPy and
// PyTorch do) instead of being undefined. Storing into a narrower output saturates.
std::int64_t apply_integer(OpKind op, std::int64_t a, std::int64_t b) {
  const auto ua = static_cast<std::uint64_t>(a);
  const auto ub = static_cast<std::uint64_t>(b);
  switch (op) {
    case OpKind::Add: return static_cast<std::int64_t>(ua + ub);
    case OpKind::Sub: return static_cast<std::int64_t>(ua - ub);
    case OpKind::Mul: return static_cast<std::int64_t>(ua * ub);
    default: break;
  }
  return 0;
}

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
float silu(float x) { return x * sigmoid(x); }

float gelu(float x, GeluApproximation approximation) {
  if (approximation == GeluApproximation::Tanh) {
    const float k = static_cast<float>(std::sqrt(2.0 / std::numbers::pi));
    return 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x)));
  }
  return 0.5f * x * (1.0f + std::erf(x * static_cast<float>(1.0 / std::numbers::sqrt2)));
}

}  // namespace

void run_binary(const GraphState&, const Node& n, const ExecContext& ctx) {
  const TensorRef& a = ctx.input(n, 0);
  const TensorRef& b = ctx.input(n, 1);
  const TensorRef& out = ctx.output(n, 0);
  const auto count = static_cast<std::size_t>(out.shape().numel());
  BroadcastWalker walk(out.shape(), {a.shape(), b.shape()});

  if (is_integer(a.dtype()) && is_integer(b.dtype())) {
    if (n.op == OpKind::Div)
      throw Error(ErrorCode::DTypeMismatch,
                  fmt::format("{}: div is defined for floating-point inputs only, got {} and {}",
                              node_label(n), dtype_name(a.dtype()), dtype_name(b.dtype())));
    const auto av = load_i64(a);
    const auto bv = load_i64(b);
    std::vector<std::int64_t> result(count);
    for (std::size_t i = 0; i < count; ++i, walk.next())
      result[i] = apply_integer(n.op, av[static_cast<std::size_t>(walk.index(0))],
                                bv[static_cast<std::size_t>(walk.index(1))]);
    store_i64(out, result);
    return;
  }

  const F32Input av(a);
  const F32Input bv(b);
  std::vector<float> result(count);
  for (std::size_t i = 0; i < count; ++i, walk.next())
    result[i] = apply_float(n.op, av[static_cast<std::size_t>(walk.index(0))],
                            bv[static_cast<std::size_t>(walk.index(1))]);
  store_f32(out, result);
}

void run_unary(const GraphState&, const Node& n, const ExecContext& ctx) {
  const F32Input x(ctx.input(n, 0));
  std::vector<float> result(x.size());
  const auto approximation =
      n.op == OpKind::Gelu ? std::get<GeluAttrs>(n.attrs).approximation : GeluApproximation::None;
  for (std::size_t i = 0; i < x.size(); ++i) {
    switch (n.op) {
      case OpKind::Silu: result[i] = silu(x[i]); break;
      case OpKind::Gelu: result[i] = gelu(x[i], approximation); break;
      case OpKind::Sigmoid: result[i] = sigmoid(x[i]); break;
      case OpKind::Exp: result[i] = std::exp(x[i]); break;
      default:
        throw Error(ErrorCode::Internal,
                    fmt::format("{}: not an elementwise unary op", node_label(n)));
    }
  }
  store_f32(ctx.output(n, 0), result);
}

void run_swiglu(const GraphState&, const Node& n, const ExecContext& ctx) {
  const F32Input gate(ctx.input(n, 0));
  const F32Input up(ctx.input(n, 1));
  if (gate.size() != up.size())
    throw Error(ErrorCode::ShapeMismatch, fmt::format("{}: gate has {} elements but up has {}",
                                                      node_label(n), gate.size(), up.size()));
  std::vector<float> result(gate.size());
  for (std::size_t i = 0; i < gate.size(); ++i) result[i] = silu(gate[i]) * up[i];
  store_f32(ctx.output(n, 0), result);
}

}  // namespace porta::detail::reference
