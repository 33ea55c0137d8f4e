// The ggml type table (names, block sizes) and the dispatch of whole rows to the per-block
// (de)quantizers.
#include <porta/ggml_quants.hpp>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include <porta/dtype.hpp>
#include <porta/error.hpp>

#include "gguf/blocks.hpp"

namespace porta::gguf {

namespace {

struct Entry {
  GgmlType type;
  TypeTraits traits;
  detail::DequantizeBlock dequantize = nullptr;
  detail::QuantizeBlock quantize = nullptr;
};

// Block sizes from ggml-common.h's block structs.
const Entry kTable[] = {
    {GgmlType::F32, {"f32", 1, 4, true}},
    {GgmlType::F16, {"f16", 1, 2, true}},
    {GgmlType::Q4_0, {"q4_0", 32, 18, true}, detail::dequantize_q4_0, detail::quantize_q4_0},
    {GgmlType::Q4_1, {"q4_1", 32, 20, true}, detail::dequantize_q4_1, detail::quantize_q4_1},
    {GgmlType::Q5_0, {"q5_0", 32, 22, true}, detail::dequantize_q5_0, detail::quantize_q5_0},
    {GgmlType::Q5_1, {"q5_1", 32, 24, true}, detail::dequantize_q5_1, detail::quantize_q5_1},
    {GgmlType::Q8_0, {"q8_0", 32, 34, true}, detail::dequantize_q8_0, detail::quantize_q8_0},
    {GgmlType::Q8_1, {"q8_1", 32, 36, false}},
    {GgmlType::Q2_K, {"q2_K", 256, 84, true}, detail::dequantize_q2_k, detail::quantize_q2_k},
    {GgmlType::Q3_K, {"q3_K", 256, 110, true}, detail::dequantize_q3_k, detail::quantize_q3_k},
    {GgmlType::Q4_K, {"q4_K", 256, 144, true}, detail::dequantize_q4_k, detail::quantize_q4_k},
    {GgmlType::Q5_K, {"q5_K", 256, 176, true}, detail::dequantize_q5_k, detail::quantize_q5_k},
    {GgmlType::Q6_K, {"q6_K", 256, 210, true}, detail::dequantize_q6_k, detail::quantize_q6_k},
    {GgmlType::Q8_K, {"q8_K", 256, 292, false}},
    {GgmlType::IQ2_XXS, {"iq2_xxs", 256, 66, false}},
    {GgmlType::IQ2_XS, {"iq2_xs", 256, 74, false}},
    {GgmlType::IQ3_XXS, {"iq3_xxs", 256, 98, false}},
    {GgmlType::IQ1_S, {"iq1_s", 256, 50, false}},
    {GgmlType::IQ4_NL,
     {"iq4_nl", 32, 18, true},
     detail::dequantize_iq4_nl,
     detail::quantize_iq4_nl},
    {GgmlType::IQ3_S, {"iq3_s", 256, 110, false}},
    {GgmlType::IQ2_S, {"iq2_s", 256, 82, false}},
    {GgmlType::IQ4_XS,
     {"iq4_xs", 256, 136, true},
     detail::dequantize_iq4_xs,
     detail::quantize_iq4_xs},
    {GgmlType::I8, {"i8", 1, 1, false}},
    {GgmlType::I16, {"i16", 1, 2, false}},
    {GgmlType::I32, {"i32", 1, 4, false}},
    {GgmlType::I64, {"i64", 1, 8, false}},
    {GgmlType::F64, {"f64", 1, 8, false}},
    {GgmlType::IQ1_M, {"iq1_m", 256, 56, false}},
    {GgmlType::BF16, {"bf16", 1, 2, true}},
    {GgmlType::TQ1_0, {"tq1_0", 256, 54, false}},
    {GgmlType::TQ2_0, {"tq2_0", 256, 66, false}},
    {GgmlType::MXFP4, {"mxfp4", 32, 17, false}},
};

const Entry* lookup(std::uint32_t id) {
  for (const auto& e : kTable)
    if (static_cast<std::uint32_t>(e.type) == id) return &e;
  return nullptr;
}

const Entry& dequantizable_entry(GgmlType type) {
  const Entry* e = lookup(static_cast<std::uint32_t>(type));
  if (e == nullptr || !e->traits.dequantizable)
    throw Error(ErrorCode::Unsupported,
                fmt::format("ggml type {} ({}) cannot be dequantized by porta",
                            e ? e->traits.name : "unknown", static_cast<std::uint32_t>(type)));
  return *e;
}

std::size_t check_blocks(GgmlType type, std::size_t elements, std::size_t bytes) {
  const TypeTraits t = traits_of(type);
  if (elements % t.block_elements != 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{} elements are not a whole number of {} blocks of {}", elements,
                            t.name, t.block_elements));
  const std::size_t blocks = elements / t.block_elements;
  if (bytes != blocks * t.block_bytes)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{} elements of {} take {} bytes, not {}", elements, t.name,
                            blocks * t.block_bytes, bytes));
  return blocks;
}

}  // namespace

std::optional<TypeTraits> type_traits(std::uint32_t type_id) noexcept {
  const Entry* e = lookup(type_id);
  if (e == nullptr) return std::nullopt;
  return e->traits;
}

TypeTraits traits_of(GgmlType type) {
  const Entry* e = lookup(static_cast<std::uint32_t>(type));
  if (e == nullptr)
    throw Error(ErrorCode::Unsupported,
                fmt::format("unknown ggml type id {}", static_cast<std::uint32_t>(type)));
  return e->traits;
}

std::string_view type_name(GgmlType type) noexcept {
  const Entry* e = lookup(static_cast<std::uint32_t>(type));
  return e ? e->traits.name : std::string_view("unknown");
}

GgmlType parse_type(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::string known;
  for (GgmlType t : kDequantizableTypes) {
    std::string n(type_name(t));
    std::transform(n.begin(), n.end(), n.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (n == lower) return t;
    known += (known.empty() ? "" : ", ") + std::string(type_name(t));
  }
  throw Error(ErrorCode::InvalidArgument,
              fmt::format("'{}' is not a ggml type porta can write (known: {})", name, known));
}

std::size_t row_bytes(GgmlType type, std::uint64_t elements) {
  const TypeTraits t = traits_of(type);
  if (elements % t.block_elements != 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{} elements are not a whole number of {} blocks of {}", elements,
                            t.name, t.block_elements));
  return static_cast<std::size_t>(elements / t.block_elements * t.block_bytes);
}

void dequantize(GgmlType type, std::span<const std::byte> blocks, std::span<float> out) {
  const Entry& e = dequantizable_entry(type);
  const std::size_t n = check_blocks(type, out.size(), blocks.size());
  if (n == 0) return;
  switch (type) {
    case GgmlType::F32: std::memcpy(out.data(), blocks.data(), blocks.size()); return;
    case GgmlType::F16: convert(blocks.data(), DType::F16, out.data(), DType::F32, n); return;
    case GgmlType::BF16: convert(blocks.data(), DType::BF16, out.data(), DType::F32, n); return;
    default: break;
  }
  for (std::size_t b = 0; b < n; ++b)
    e.dequantize(blocks.data() + b * e.traits.block_bytes, out.data() + b * e.traits.block_elements);
}

void quantize(GgmlType type, std::span<const float> values, std::span<std::byte> blocks) {
  const Entry& e = dequantizable_entry(type);
  const std::size_t n = check_blocks(type, values.size(), blocks.size());
  if (n == 0) return;
  switch (type) {
    case GgmlType::F32: std::memcpy(blocks.data(), values.data(), blocks.size()); return;
    case GgmlType::F16: convert(values.data(), DType::F32, blocks.data(), DType::F16, n); return;
    case GgmlType::BF16: convert(values.data(), DType::F32, blocks.data(), DType::BF16, n); return;
    default: break;
  }
  for (std::size_t b = 0; b < n; ++b)
    e.quantize(values.data() + b * e.traits.block_elements, blocks.data() + b * e.traits.block_bytes);
}

}  // namespace porta::gguf
