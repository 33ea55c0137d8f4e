// A oneDNN primitive from one value to another of the same shape (eltwise, softmax): created for
// the value's dtype where oneDNN has a kernel for it, else for f32 over widened copies.
#pragma once

#include <functional>
#include <memory>

#include "cpu_kernel.hpp"

namespace porta::detail::cpu {

// Makes the primitive descriptor for a plain description of the input (and the output).
using UnaryPrimitiveFactory =
    std::function<dnnl::primitive_desc(const dnnl::memory::desc& md, const dnnl::engine& engine)>;

std::unique_ptr<CpuKernel> lower_unary_primitive(CpuEnv& env, const GraphState& g, const Node& n,
                                                 const UnaryPrimitiveFactory& factory);

}  // namespace porta::detail::cpu
