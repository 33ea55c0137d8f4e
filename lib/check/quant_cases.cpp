// The conformance cases of the quantized ops: every weight scheme of docs/quantization.md (int8
// per channel and g32, symmetric and asymmetric; int4 g32/g64/g128 symmetric and asymmetric; FP8
// 128×128 blocks and per channel) with each activation mode it admits, and ggml's block types
// (GGUF weights computed in place; weight-only). Weights are quantized from the case's seed by
// porta::quantize, so both builds of a case hold the same codes and scales.
#include <fmt/format.h>

#include "check/cases.hpp"

namespace porta::check::detail {

namespace {

using Outs = std::vector<Value>;

struct SchemeCase {
  const char* label;
  QuantScheme scheme;
};

QuantScheme scheme(QuantFormat f, std::int64_t group, bool asym, DType scale = DType::F32,
                   std::int64_t block_n = 1) {
  QuantScheme s;
  s.format = f;
  s.group_k = group;
  s.block_n = block_n;
  s.zero_point = asym;
  s.scale_dtype = scale;
  return s;
}

// Every weight-only scheme (K must be a multiple of 128 for g128; FP8 blocks take any K).
const std::vector<SchemeCase>& weight_schemes() {
  static const std::vector<SchemeCase> all{
      {"int8 per-channel sym", scheme(QuantFormat::Int8, 0, false)},
      {"int8 per-channel asym", scheme(QuantFormat::Int8, 0, true)},
      {"int8 g32 sym bf16 scales", scheme(QuantFormat::Int8, 32, false, DType::BF16)},
      {"int4 g32 sym", scheme(QuantFormat::Int4, 32, false)},
      {"int4 g32 asym", scheme(QuantFormat::Int4, 32, true)},
      {"int4 g64 sym f16 scales", scheme(QuantFormat::Int4, 64, false, DType::F16)},
      {"int4 g64 asym", scheme(QuantFormat::Int4, 64, true)},
      {"int4 g128 sym bf16 scales", scheme(QuantFormat::Int4, 128, false, DType::BF16)},
      {"int4 g128 asym", scheme(QuantFormat::Int4, 128, true)},
      {"f8_e4m3 per-channel", scheme(QuantFormat::F8E4M3, 0, false)},
      {"f8_e4m3 block 128x128", scheme(QuantFormat::F8E4M3, 128, false, DType::F32, 128)},
  };
  return all;
}

// The W8A8 schemes: int8 weights with int8 activations.
const std::vector<SchemeCase>& int8_schemes() {
  static const std::vector<SchemeCase> all{
      {"int8 per-channel sym", scheme(QuantFormat::Int8, 0, false)},
      {"int8 per-channel asym", scheme(QuantFormat::Int8, 0, true)},
      {"int8 g32 sym bf16 scales", scheme(QuantFormat::Int8, 32, false, DType::BF16)},
  };
  return all;
}

// The ggml block types, each with cpu kernels (K = 256 in every case: whole super-blocks).
std::vector<gguf::GgmlType> ggml_types() {
  std::vector<gguf::GgmlType> out;
  for (const auto t : gguf::kDequantizableTypes)
    if (gguf::traits_of(t).block_elements > 1) out.push_back(t);
  return out;
}

std::string ggml_label(const char* shapes, gguf::GgmlType t, ActivationQuant act) {
  return fmt::format("{}, ggml {}, activations {}", shapes, gguf::type_name(t), to_string(act));
}

// Each ggml case with the exact products and with llama.cpp's 8-bit activation blocks.
constexpr ActivationQuant kGgmlModes[] = {ActivationQuant::None, ActivationQuant::GgmlQ8};

QuantizedValue quant_weight(CaseBuilder& b, const std::string& name, Shape shape,
                            const QuantScheme& s) {
  return b.graph.weight(name,
                        quantize(b.random_tensor(std::move(shape), -1.0f, 1.0f, DType::F32), s));
}

std::string label(const char* shapes, const SchemeCase& s, ActivationQuant act) {
  return fmt::format("{}, {}, activations {}", shapes, s.label, to_string(act));
}

template <class F>
void for_each_mode(F&& f, bool with_static) {
  for (const auto& s : weight_schemes()) f(s, ActivationQuant::None);
  for (const auto& s : int8_schemes()) {
    f(s, ActivationQuant::DynamicInt8);
    if (with_static) f(s, ActivationQuant::StaticInt8);
  }
}

}  // namespace

void cases_quant_matmul(std::vector<CaseDef>& c) {
  for_each_mode(
      [&](const SchemeCase& s, ActivationQuant act) {
        const bool block = s.scheme.block_n > 1;
        // FP8 blocks: N and K not multiples of 128, so edge blocks are partial.
        const std::int64_t n = block ? 136 : 48, k = block ? 200 : 256;
        add_case(c, OpKind::QuantMatmul,
                 label(block ? "[2, 3, 200]·[136, 200]ᵀ" : "[2, 3, 256]·[48, 256]ᵀ", s, act),
                 [s, act, n, k](CaseBuilder& b) -> Outs {
                   auto x = b.input("x", {2, 3, k});
                   auto w = quant_weight(b, "w", {n, k}, s.scheme);
                   return {b.graph.matmul(x, w, act, {1.0f / 127.0f, 3.0f})};
                 });
      },
      true);
  for (const auto act : kGgmlModes)
    for (const auto t : ggml_types())
      for (const std::int64_t rows : {1, 6})
        add_case(c, OpKind::QuantMatmul,
                 ggml_label(rows == 1 ? "[1, 256]·[40, 256]ᵀ (decode)" : "[2, 3, 256]·[40, 256]ᵀ",
                            t, act),
                 [t, rows, act](CaseBuilder& b) -> Outs {
                   auto w = quant_weight(b, "w", {40, 256}, ggml_scheme(t));
                   auto x = rows == 1 ? b.input("x", {1, 256}) : b.input("x", {2, 3, 256});
                   return {b.graph.matmul(x, w, act)};
                 });
  // A prompt's dense layer (cpu: x packed once in chunks of 64 rows, 150 = 64 + 64 + 22, and
  // 100 weight rows = a tile group of 96 and a partial one of 4).
  for (const auto act : kGgmlModes)
    for (const auto t : ggml_types())
      add_case(c, OpKind::QuantMatmul, ggml_label("[150, 256]·[100, 256]ᵀ (prefill)", t, act),
               [t, act](CaseBuilder& b) -> Outs {
                 auto w = quant_weight(b, "w", {100, 256}, ggml_scheme(t));
                 return {b.graph.matmul(b.input("x", {150, 256}), w, act)};
               });
  add_case(c, OpKind::QuantMatmul, "[1, 256]·[64, 256]ᵀ (decode), int4 g32 sym",
           [](CaseBuilder& b) -> Outs {
             auto w = quant_weight(b, "w", {64, 256}, scheme(QuantFormat::Int4, 32, false));
             return {b.graph.matmul(b.input("x", {1, 256}), w)};
           });
}

void cases_quant_grouped_matmul(std::vector<CaseDef>& c) {
  for_each_mode(
      [&](const SchemeCase& s, ActivationQuant act) {
        const bool block = s.scheme.block_n > 1;
        const std::int64_t n = block ? 136 : 16, k = block ? 160 : 128;
        add_case(c, OpKind::QuantGroupedMatmul,
                 label(block ? "P=24 K=160 N=136 E=6" : "P=24 K=128 N=16 E=6", s, act),
                 [s, act, n, k](CaseBuilder& b) -> Outs {
                   auto offsets = Tensor::from_vector<std::int32_t>({7}, {0, 5, 5, 12, 20, 20, 24});
                   auto w = quant_weight(b, "w", {6, n, k}, s.scheme);
                   return {b.graph.grouped_matmul(b.input("rows", {24, k}), w,
                                                  b.exact_input("offsets", offsets), act)};
                 });
      },
      false);
  for (const auto act : kGgmlModes)
    for (const auto t : ggml_types())
      add_case(c, OpKind::QuantGroupedMatmul, ggml_label("P=24 K=256 N=16 E=6", t, act),
               [t, act](CaseBuilder& b) -> Outs {
                 auto offsets = Tensor::from_vector<std::int32_t>({7}, {0, 5, 5, 12, 20, 20, 24});
                 auto w = quant_weight(b, "w", {6, 16, 256}, ggml_scheme(t));
                 return {b.graph.grouped_matmul(b.input("rows", {24, 256}), w,
                                                b.exact_input("offsets", offsets), act)};
               });
  // Prefill-sized blocks (cpu: dequantized panels through the register-tiled GEMM, from 12
  // rows, the last block in three packed chunks), N = 56 ending in a partial tile group.
  for (const auto act : kGgmlModes)
    for (const auto t : ggml_types())
      add_case(c, OpKind::QuantGroupedMatmul,
               ggml_label("P=210 K=256 N=56 E=3 (prefill blocks)", t, act),
               [t, act](CaseBuilder& b) -> Outs {
                 auto offsets = Tensor::from_vector<std::int32_t>({4}, {0, 12, 40, 210});
                 auto w = quant_weight(b, "w", {3, 56, 256}, ggml_scheme(t));
                 return {b.graph.grouped_matmul(b.input("rows", {210, 256}), w,
                                                b.exact_input("offsets", offsets), act)};
               });
}

void cases_quant_moe_experts(std::vector<CaseDef>& c) {
  for (const auto act : kGgmlModes)
    for (const auto t : ggml_types())
      add_case(c, OpKind::QuantMoeExperts, ggml_label("T=6 H=256 I=256 E=2 K=2", t, act),
               [t, act](CaseBuilder& b) -> Outs {
                 auto routing = random_routing(b.rng, 6, 2, 2);
                 MoeRoute route;
                 route.weights = b.exact_input("weights", routing.weights);
                 route.offsets = b.exact_input("offsets", routing.offsets);
                 route.perm = b.exact_input("perm", routing.perm);
                 route.inv = b.exact_input("inv", routing.inv);
                 const QuantScheme s = ggml_scheme(t);
                 QuantMoeExpertWeights w{quant_weight(b, "gate", {2, 256, 256}, s),
                                         quant_weight(b, "up", {2, 256, 256}, s),
                                         quant_weight(b, "down", {2, 256, 256}, s)};
                 return {b.graph.moe_experts(b.input("x", {6, 256}), route, w, act)};
               });
  for_each_mode(
      [&](const SchemeCase& s, ActivationQuant act) {
        const bool block = s.scheme.block_n > 1;
        const std::int64_t h = block ? 160 : 128, inter = block ? 136 : 128;
        add_case(c, OpKind::QuantMoeExperts,
                 label(block ? "T=6 H=160 I=136 E=2 K=2" : "T=6 H=128 I=128 E=4 K=2", s, act),
                 [s, act, h, inter, block](CaseBuilder& b) -> Outs {
                   const std::int64_t experts = block ? 2 : 4;
                   auto routing = random_routing(b.rng, 6, experts, 2);
                   MoeRoute route;
                   route.weights = b.exact_input("weights", routing.weights);
                   route.offsets = b.exact_input("offsets", routing.offsets);
                   route.perm = b.exact_input("perm", routing.perm);
                   route.inv = b.exact_input("inv", routing.inv);
                   auto x = b.input("x", {6, h});
                   QuantMoeExpertWeights w{quant_weight(b, "gate", {experts, inter, h}, s.scheme),
                                           quant_weight(b, "up", {experts, inter, h}, s.scheme),
                                           quant_weight(b, "down", {experts, h, inter}, s.scheme)};
                   return {b.graph.moe_experts(x, route, w, act)};
                 });
      },
      false);
}

void cases_quant_embedding(std::vector<CaseDef>& c) {
  // Repeated and edge ids, in i32 and in a 2-D i64 tensor, over every weight-only scheme and
  // every ggml block type (a GGUF's token_embd). The reference dequantizes each row exactly.
  const std::vector<std::int32_t> ids{0, 39, 3, 3, 17, 25, 1};
  for (const auto& s : weight_schemes())
    add_case(c, OpKind::QuantEmbedding, fmt::format("[40, 256] by [7] ids, {}", s.label),
             [s, ids](CaseBuilder& b) -> Outs {
               const std::int64_t k = s.scheme.block_n > 1 ? 200 : 256;
               auto table = quant_weight(b, "table", {40, k}, s.scheme);
               return {b.graph.embedding(
                   table, b.exact_input("ids", Tensor::from_vector<std::int32_t>({7}, ids)))};
             });
  for (const auto t : ggml_types())
    add_case(c, OpKind::QuantEmbedding,
             fmt::format("[40, 512] by [2, 3] i64 ids, ggml {}", gguf::type_name(t)),
             [t](CaseBuilder& b) -> Outs {
               auto table = quant_weight(b, "table", {40, 512}, ggml_scheme(t));
               const std::vector<std::int64_t> rows{39, 0, 4, 4, 2, 7};
               return {b.graph.embedding(
                   table, b.exact_input("ids", Tensor::from_vector<std::int64_t>({2, 3}, rows)))};
             });
}

}  // namespace porta::check::detail
