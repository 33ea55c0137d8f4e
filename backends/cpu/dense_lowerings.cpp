// The cpu backend's dense ops. Each op family's kernels live in a file of their own; this table
// lists them. The unary activations are listed once, in eltwise.cpp's algorithm table.
#include <array>

#include "cpu_kernel.hpp"
#include "dense_ops.hpp"
#include "matmul.hpp"

namespace porta::detail::cpu {

namespace {

const std::array kDense{
    OpLowering{OpKind::Matmul, supports_matmul, lower_matmul},
    OpLowering{OpKind::Add, supports_binary, lower_binary},
    OpLowering{OpKind::Sub, supports_binary, lower_binary},
    OpLowering{OpKind::Mul, supports_binary, lower_binary},
    OpLowering{OpKind::Div, supports_binary, lower_binary},
    OpLowering{OpKind::Softmax, supports_softmax, lower_softmax},
    OpLowering{OpKind::RmsNorm, supports_rms_norm, lower_rms_norm},
    OpLowering{OpKind::LayerNorm, supports_layer_norm, lower_layer_norm},
    OpLowering{OpKind::Rope, supports_rope, lower_rope},
    OpLowering{OpKind::Embedding, supports_embedding, lower_embedding},
    OpLowering{OpKind::QuantEmbedding, supports_quant_embedding, lower_quant_embedding},
    OpLowering{OpKind::Reshape, supports_reshape, lower_reshape},
    OpLowering{OpKind::Permute, supports_permute, lower_permute},
    OpLowering{OpKind::Slice, supports_slice, lower_slice},
    OpLowering{OpKind::Concat, supports_concat, lower_concat},
    OpLowering{OpKind::Cast, supports_cast, lower_cast},
    OpLowering{OpKind::TopK, supports_top_k, lower_top_k},
    OpLowering{OpKind::Swiglu, supports_swiglu, lower_swiglu},
    OpLowering{OpKind::Attention, supports_attention, lower_attention},
};

}  // namespace

std::span<const OpLowering> dense_lowerings() { return kDense; }

}  // namespace porta::detail::cpu
