// The dense op families of the cpu backend: each file's supports()/lower() pair, gathered into
// the table in dense_lowerings.cpp. matmul's pair lives in matmul.hpp (the fusion pass uses it).
#pragma once

#include "cpu_kernel.hpp"

namespace porta::detail::cpu {

#define PORTA_CPU_OP_FAMILY(name)                                    \
  SupportResult supports_##name(const GraphState& g, const Node& n); \
  std::unique_ptr<CpuKernel> lower_##name(CpuEnv& env, const GraphState& g, const Node& n);

PORTA_CPU_OP_FAMILY(binary)           // binary.cpp: add sub mul div
PORTA_CPU_OP_FAMILY(eltwise)          // eltwise.cpp: silu gelu sigmoid exp
PORTA_CPU_OP_FAMILY(swiglu)           // eltwise.cpp
PORTA_CPU_OP_FAMILY(softmax)          // normalization.cpp
PORTA_CPU_OP_FAMILY(layer_norm)       // normalization.cpp
PORTA_CPU_OP_FAMILY(rms_norm)         // normalization.cpp
PORTA_CPU_OP_FAMILY(rope)             // rope.cpp
PORTA_CPU_OP_FAMILY(embedding)        // embedding.cpp
PORTA_CPU_OP_FAMILY(quant_embedding)  // embedding.cpp
PORTA_CPU_OP_FAMILY(top_k)            // top_k.cpp
PORTA_CPU_OP_FAMILY(attention)        // attention.cpp
PORTA_CPU_OP_FAMILY(reshape)          // layout.cpp
PORTA_CPU_OP_FAMILY(permute)          // layout.cpp
PORTA_CPU_OP_FAMILY(slice)            // layout.cpp
PORTA_CPU_OP_FAMILY(concat)           // layout.cpp
PORTA_CPU_OP_FAMILY(cast)             // cast.cpp

#undef PORTA_CPU_OP_FAMILY

}  // namespace porta::detail::cpu
