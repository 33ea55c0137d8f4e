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

enum class BinaryOp { Add, Sub, Mul, Div };

float apply_float(BinaryOp op, float a, float b) {
  switch (op) {
    case BinaryOp::Add: return a + b;
    case BinaryOp::Sub: return a - b;
    case BinaryOp::Mul: return a * b;
    case BinaryOp::Div: return a / b;
  }
  throw Error(ErrorCode::Internal, "unknown binary op");
}

// Integer math is exact in int64; the unsigned detour makes i64 overflow wrap (as NumPy and
// PyTorch do) instead of being undefined. Storing into a narrower output saturates.
// Integer division is refused before this is reached (the shape rule allows floats only).
std::int64_t apply_integer(BinaryOp op, std::int64_t a, std::int64_t b) {
  const auto ua = static_cast<std::uint64_t>(a);
  const auto ub = static_cast<std::uint64_t>(b);
  switch (op) {
    case BinaryOp::Add: return static_cast<std::int64_t>(ua + ub);
    case BinaryOp::Sub: return static_cast<std::int64_t>(ua - ub);
    case BinaryOp::Mul: return static_cast<std::int64_t>(ua * ub);
    case BinaryOp::Div: break;
  }
  throw Error(ErrorCode::Internal, "integer division reached the reference kernel");
}

float gelu(float x, GeluApproximation approximation) {
  if (approximation == GeluApproximation::Tanh) {
    const float k = static_cast<float>(std::sqrt(2.0 / std::numbers::pi));
    return 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x)));
  }
  return 0.5f * x * (1.0f + std::erf(x * static_cast<float>(1.0 / std::numbers::sqrt2)));
}

void run_binary(BinaryOp op, const Node& n, const ExecContext& ctx) {
  const TensorRef& a = ctx.input(n, 0);
  const TensorRef& b = ctx.input(n, 1);
  const TensorRef& out = ctx.output(n, 0);
  const auto count = static_cast<std::size_t>(out.shape().numel());
  BroadcastWalker walk(out.shape(), {a.shape(), b.shape()});

  if (is_integer(a.dtype()) && is_integer(b.dtype())) {
    if (op == BinaryOp::Div)
      throw Error(ErrorCode::DTypeMismatch,
                  fmt::format("{}: div is defined for floating-point inputs only, got {} and {}",
                              node_label(n), dtype_name(a.dtype()), dtype_name(b.dtype())));
    const auto av = load_i64(a);
    const auto bv = load_i64(b);
    std::vector<std::int64_t> result(count);
    for (std::size_t i = 0; i < count; ++i, walk.next())
      result[i] = apply_integer(op, av[static_cast<std::size_t>(walk.index(0))],
                                bv[static_cast<std::size_t>(walk.index(1))]);
    store_i64(out, result);
    return;
  }

  const F32Input av(a);
  const F32Input bv(b);
  std::vector<float> result(count);
  for (std::size_t i = 0; i < count; ++i, walk.next())
    result[i] = apply_float(op, av[static_cast<std::size_t>(walk.index(0))],
                            bv[static_cast<std::size_t>(walk.index(1))]);
  store_f32(out, result);
}

void run_unary(float (*f)(float), const Node& n, const ExecContext& ctx) {
  const F32Input x(ctx.input(n, 0));
  std::vector<float> result(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) result[i] = f(x[i]);
  store_f32(ctx.output(n, 0), result);
}

}  // namespace

void run_add(const GraphState&, const Node& n, const ExecContext& ctx) {
  run_binary(BinaryOp::Add, n, ctx);
}
void run_sub(const GraphState&, const Node& n, const ExecContext& ctx) {
  run_binary(BinaryOp::Sub, n, ctx);
}
void run_mul(const GraphState&, const Node& n, const ExecContext& ctx) {
  run_binary(BinaryOp::Mul, n, ctx);
}
void run_div(const GraphState&, const Node& n, const ExecContext& ctx) {
  run_binary(BinaryOp::Div, n, ctx);
}

// ---- the attribute-free unary ops (PORTA_UNARY_OP_LIST) ----------------------------------------

float unary_sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
float unary_silu(float x) { return x * unary_sigmoid(x); }
float unary_exp(float x) { return std::exp(x); }
// NaN stays NaN (a comparison with NaN is false); -0 stays -0, as in PyTorch.
float unary_relu(float x) { return x < 0.0f ? 0.0f : x; }

#define PORTA_REFERENCE_UNARY_KERNEL(X, kind, name, summary)                  \
  void run_##name(const GraphState&, const Node& n, const ExecContext& ctx) { \
    run_unary(unary_##name, n, ctx);                                          \
  }
PORTA_UNARY_OP_LIST(unused, PORTA_REFERENCE_UNARY_KERNEL)
#undef PORTA_REFERENCE_UNARY_KERNEL

void run_gelu(const GraphState&, const Node& n, const ExecContext& ctx) {
  const auto approximation = std::get<GeluAttrs>(n.attrs).approximation;
  const F32Input x(ctx.input(n, 0));
  std::vector<float> result(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) result[i] = gelu(x[i], approximation);
  store_f32(ctx.output(n, 0), result);
}

void run_swiglu(const GraphState&, const Node& n, const ExecContext& ctx) {
  const F32Input gate(ctx.input(n, 0));
  const F32Input up(ctx.input(n, 1));
  if (gate.size() != up.size())
    throw Error(ErrorCode::ShapeMismatch, fmt::format("{}: gate has {} elements but up has {}",
                                                      node_label(n), gate.size(), up.size()));
  std::vector<float> result(gate.size());
  for (std::size_t i = 0; i < gate.size(); ++i) result[i] = unary_silu(gate[i]) * up[i];
  store_f32(ctx.output(n, 0), result);
}

}  // namespace porta::detail::reference
