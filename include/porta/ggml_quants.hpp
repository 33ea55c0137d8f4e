// ggml's tensor element types (the `type` field of a GGUF tensor) and their block layouts:
// which types porta knows the size of, which it can dequantize, and round-to-nearest quantizers.
//
// A quantized ggml row of n elements is n / block_elements(t) blocks of block_bytes(t) bytes each,
// laid out exactly as ggml's block_q4_0, block_q4_K, ... structs (little-endian f16 scales, no
// padding). dequantize() follows ggml's reference dequantizers operation for operation in f32
// (each product rounded to f32 before the next add, no fused multiply-add), so its results are
// bit-identical to the format's definition. quantize() is a plain round-to-nearest quantizer:
// enough to write valid files of every type for tests and small conversions, not llama.cpp's
// importance-weighted search (its files dequantize with lower error).
#pragma once

#include <porta/config.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

PORTA_API_BEGIN
namespace porta::gguf {

// The numbering is ggml's enum ggml_type, which GGUF files store; gaps are types ggml removed.
enum class GgmlType : std::uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
};

// The types porta dequantizes (and quantizes): the ones the GGUF issue lists.
inline constexpr GgmlType kDequantizableTypes[] = {
    GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0,
    GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q2_K, GgmlType::Q3_K,
    GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::IQ4_NL, GgmlType::IQ4_XS};

// The size facts of a type whose layout porta knows (every type above); nullopt for other ids.
struct TypeTraits {
  std::string_view name;        // ggml's spelling: "f32", "q4_0", "q4_K", "iq4_xs", ...
  std::uint32_t block_elements;  // 1 for plain types, 32 or 256 for block types
  std::uint32_t block_bytes;
  bool dequantizable;
};
std::optional<TypeTraits> type_traits(std::uint32_t type_id) noexcept;
// Throws porta::Error (Unsupported) for an id without traits.
TypeTraits traits_of(GgmlType type);
std::string_view type_name(GgmlType type) noexcept;  // "unknown" for unknown ids
// Case-insensitive ggml name ("q4_k", "Q8_0", "bf16") -> type; throws InvalidArgument listing
// the dequantizable names.
GgmlType parse_type(std::string_view name);

// Bytes of `elements` elements of `type`; elements must be a whole number of blocks
// (InvalidArgument otherwise), overflow is CorruptFile-free: the caller checks bounds first.
std::size_t row_bytes(GgmlType type, std::uint64_t elements);

// Dequantizes `out.size()` elements (a whole number of blocks) from `blocks`, which must hold
// exactly row_bytes(type, out.size()) bytes. Throws Unsupported for types not dequantizable.
void dequantize(GgmlType type, std::span<const std::byte> blocks, std::span<float> out);
// Quantizes `values` (a whole number of blocks) into `blocks` (exactly row_bytes bytes),
// rounding to nearest. Throws Unsupported for types not dequantizable.
void quantize(GgmlType type, std::span<const float> values, std::span<std::byte> blocks);

// llama.cpp's 8-bit activations (ActivationQuant::GgmlQ8, docs/gguf.md): ggml multiplies a row
// of each block type by activations rounded to its "vec_dot_type", 8-bit codes in blocks of their
// own. K-quants and IQ4_XS meet Q8_K: 256-element blocks, iscale = -127 / m where m is the
// element of largest magnitude (with its sign), q = min(127, round_half_even(iscale · x)),
// d = 1 / iscale in f32. The 32-element types meet Q8_0 (Q8_1 for Q4_1/Q5_1, the same codes):
// d = max|x| / 127, q = round_half_even(x · (127 / max|x|)), and d read back through f16, as
// llama.cpp's x86 quantizer does. An all-zero block has d = 0 and zero codes.
struct Q8Blocks {
  GgmlType type;        // Q8_0 or Q8_K
  std::uint32_t block;  // 32 or 256 elements
};
// The activation blocks `weight` meets; throws Unsupported for a type without block kernels
// (F32, F16, BF16 and the types porta cannot dequantize).
Q8Blocks q8_activation_blocks(GgmlType weight);
// k elements of x (a whole number of the blocks) into codes q[k] and scales d[k / block].
void quantize_q8_activations(Q8Blocks blocks, const float* x, std::int64_t k, std::int8_t* q,
                             float* d);
// x rounded through those codes: out[i] = d[block of i] · q[i] (out may alias x).
void round_q8_activations(Q8Blocks blocks, const float* x, std::int64_t k, float* out);

// IQ4_NL's and IQ4_XS's non-linear 4-bit code book.
inline constexpr std::int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                                 1,    13,   25,  38,  53,  69,  89,  113};

}  // namespace porta::gguf
PORTA_API_END
