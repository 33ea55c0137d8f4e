// Which oneDNN algorithm computes which porta op: the cpu backend's one table of it, read by the
// lowerings (eltwise.cpp, binary.cpp) and by matmul post-op fusion (fusion.cpp). An op absent
// here is not an eltwise or binary op to oneDNN; supports() then says no and the runtime places
// the op elsewhere.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <optional>
#include <span>

#include "cpu_kernel.hpp"

namespace porta::detail::cpu {

struct EltwiseAlgorithm {
  dnnl::algorithm algorithm;
  float alpha = 0.0f;
};

// The eltwise algorithm for a unary node (gelu's depends on its approximation), or nullopt.
std::optional<EltwiseAlgorithm> eltwise_algorithm(const Node& n);

// The lowering entries of every op in the eltwise table (supports_eltwise, lower_eltwise).
std::span<const OpLowering> eltwise_lowerings();

struct BinaryAlgorithm {
  dnnl::algorithm algorithm;
  bool commutative;
};

// add, sub, mul, div: the binary algorithm, or nullopt for any other op.
std::optional<BinaryAlgorithm> binary_algorithm(OpKind op);

}  // namespace porta::detail::cpu
