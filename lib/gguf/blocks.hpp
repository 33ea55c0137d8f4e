// One function per block type and direction: dequantize one block into block_elements floats,
// or quantize that many floats into one block. types.cpp dispatches on the ggml type.
#pragma once

#include <cstddef>

namespace porta::gguf::detail {

using DequantizeBlock = void (*)(const std::byte* block, float* out);
using QuantizeBlock = void (*)(const float* in, std::byte* block);

// 32-element types (dequantize_legacy.cpp, quantize_legacy.cpp).
void dequantize_q4_0(const std::byte* block, float* out);
void dequantize_q4_1(const std::byte* block, float* out);
void dequantize_q5_0(const std::byte* block, float* out);
void dequantize_q5_1(const std::byte* block, float* out);
void dequantize_q8_0(const std::byte* block, float* out);
void dequantize_iq4_nl(const std::byte* block, float* out);
void quantize_q4_0(const float* in, std::byte* block);
void quantize_q4_1(const float* in, std::byte* block);
void quantize_q5_0(const float* in, std::byte* block);
void quantize_q5_1(const float* in, std::byte* block);
void quantize_q8_0(const float* in, std::byte* block);
void quantize_iq4_nl(const float* in, std::byte* block);
// The IQ4 code-book index whose value times d is nearest to x.
int iq4_nearest_code(float x, float d);

// 256-element super-blocks (dequantize_k.cpp, quantize_k.cpp).
void dequantize_q2_k(const std::byte* block, float* out);
void dequantize_q3_k(const std::byte* block, float* out);
void dequantize_q4_k(const std::byte* block, float* out);
void dequantize_q5_k(const std::byte* block, float* out);
void dequantize_q6_k(const std::byte* block, float* out);
void dequantize_iq4_xs(const std::byte* block, float* out);
void quantize_q2_k(const float* in, std::byte* block);
void quantize_q3_k(const float* in, std::byte* block);
void quantize_q4_k(const float* in, std::byte* block);
void quantize_q5_k(const float* in, std::byte* block);
void quantize_q6_k(const float* in, std::byte* block);
void quantize_iq4_xs(const float* in, std::byte* block);

}  // namespace porta::gguf::detail
