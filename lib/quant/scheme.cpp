// Quantization schemes: names, the layout they require, and the checks that reject a weight whose
// tensors disagree with its scheme (validate() and the quantized ops' shape rules share them).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <porta/error.hpp>
#include <porta/quant.hpp>

#include "quant/quant_layout.hpp"

namespace porta {

namespace {

template <class E>
E parse_named(std::string_view name, std::initializer_list<std::pair<std::string_view, E>> table,
              std::string_view what) {
  std::vector<std::string_view> known;
  for (const auto& [text, value] : table) {
    if (text == name) return value;
    known.push_back(text);
  }
  throw Error(ErrorCode::InvalidArgument, fmt::format("unknown {} '{}' (expected one of: {})", what,
                                                      name, fmt::join(known, ", ")));
}

bool is_scale_dtype(DType t) { return t == DType::F32 || t == DType::BF16 || t == DType::F16; }

}  // namespace

std::string_view to_string(QuantFormat format) noexcept {
  switch (format) {
    case QuantFormat::Int8: return "int8";
    case QuantFormat::Int4: return "int4";
    case QuantFormat::F8E4M3: return "f8_e4m3";
    case QuantFormat::GgmlBlocks: return "ggml";
  }
  return "unknown";
}

std::string_view to_string(ActivationQuant mode) noexcept {
  switch (mode) {
    case ActivationQuant::None: return "none";
    case ActivationQuant::DynamicInt8: return "dynamic_int8";
    case ActivationQuant::StaticInt8: return "static_int8";
    case ActivationQuant::GgmlQ8: return "ggml_q8";
  }
  return "unknown";
}

QuantFormat parse_quant_format(std::string_view name) {
  return parse_named<QuantFormat>(
      name,
      {{"int8", QuantFormat::Int8}, {"int4", QuantFormat::Int4}, {"f8_e4m3", QuantFormat::F8E4M3}},
      "quantization format");
}

ActivationQuant parse_activation_quant(std::string_view name) {
  return parse_named<ActivationQuant>(name,
                                      {{"none", ActivationQuant::None},
                                       {"dynamic_int8", ActivationQuant::DynamicInt8},
                                       {"static_int8", ActivationQuant::StaticInt8},
                                       {"ggml_q8", ActivationQuant::GgmlQ8}},
                                      "activation quantization");
}

QuantScheme ggml_scheme(gguf::GgmlType type) {
  const auto traits = gguf::type_traits(static_cast<std::uint32_t>(type));
  if (!traits || !traits->dequantizable || traits->block_elements <= 1)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("ggml type {} is not a block type porta computes on (q8_0, q4_0, "
                            "q4_1, q5_0, q5_1, q2_K .. q6_K, iq4_nl, iq4_xs)",
                            gguf::type_name(type)));
  QuantScheme s;
  s.format = QuantFormat::GgmlBlocks;
  s.ggml_type = type;
  s.group_k = traits->block_elements;
  s.scale_dtype = DType::F16;
  return s;
}

std::string describe(const QuantScheme& s) {
  if (s.format == QuantFormat::GgmlBlocks)
    return fmt::format("ggml {} blocks (f16 scales inside)", gguf::type_name(s.ggml_type));
  std::string grouping;
  if (s.block_n > 1)
    grouping = s.group_k == 0 ? fmt::format("block {}xK", s.block_n)
                              : fmt::format("block {}x{}", s.block_n, s.group_k);
  else
    grouping = s.group_k == 0 ? "per-channel" : fmt::format("g{}", s.group_k);
  return fmt::format("{} {}{} ({} scales)", to_string(s.format), grouping,
                     s.format == QuantFormat::F8E4M3 ? "" : (s.zero_point ? " asym" : " sym"),
                     dtype_name(s.scale_dtype));
}

DType quant_data_dtype(QuantFormat format) noexcept {
  return format == QuantFormat::F8E4M3 ? DType::F8E4M3 : DType::I8;
}

Shape quant_data_shape(const Shape& logical, const QuantScheme& scheme) {
  Shape s = logical;
  if (scheme.format == QuantFormat::Int4 && s.rank() >= 1) s[-1] = (s[-1] + 1) / 2;
  if (scheme.format == QuantFormat::GgmlBlocks && s.rank() >= 1) {
    const auto t = gguf::type_traits(static_cast<std::uint32_t>(scheme.ggml_type));
    if (t && t->block_elements > 0)
      s[-1] = s[-1] / t->block_elements * static_cast<std::int64_t>(t->block_bytes);
  }
  return s;
}

Shape quant_scale_shape(const Shape& logical, const QuantScheme& scheme) {
  Shape s = logical;
  if (s.rank() < 2) return s;
  if (scheme.format == QuantFormat::GgmlBlocks) {  // the scales live inside the blocks
    s[-1] = 0;
    return s;
  }
  const std::int64_t bn = scheme.block_n < 1 ? 1 : scheme.block_n;
  s[-2] = (s[-2] + bn - 1) / bn;
  s[-1] = detail::quant_groups(scheme, s[-1]);
  return s;
}

std::size_t QuantizedTensor::nbytes() const {
  return data.nbytes() + scale.nbytes() + (zero.defined() ? zero.nbytes() : 0);
}

void validate(const QuantizedTensor& w, std::string_view name) {
  auto fail = [&](const std::string& why) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("quantized weight '{}' ({}): {}", name, describe(w.scheme), why));
  };
  if (!w.data.defined()) fail("data: the tensor is undefined");
  if (!w.scale.defined()) fail("scale: the tensor is undefined");
  if (w.scheme.zero_point && !w.zero.defined())
    fail("zero: the scheme is asymmetric but there is no zero-point tensor");
  if (!w.scheme.zero_point && w.zero.defined())
    fail("zero: the scheme is symmetric but a zero-point tensor was given");
  detail::QuantLayout layout{w.data.shape(),      w.data.dtype(), w.scale.shape(), w.scale.dtype(),
                             w.scheme.zero_point, w.zero.shape(), w.zero.dtype()};
  if (auto problem = detail::quant_layout_problem(layout, w.shape, w.scheme)) fail(*problem);
}

namespace detail {

namespace {

std::optional<std::string> ggml_scheme_problem(const QuantScheme& s, std::int64_t k) {
  const auto t = gguf::type_traits(static_cast<std::uint32_t>(s.ggml_type));
  if (!t || !t->dequantizable || t->block_elements <= 1)
    return fmt::format("data: ggml type {} is not a block type porta computes on",
                       gguf::type_name(s.ggml_type));
  const auto block = static_cast<std::int64_t>(t->block_elements);
  if (s.group_k != block)
    return fmt::format("group: group_k = {} should be {}'s block size {}", s.group_k, t->name,
                       block);
  if (s.block_n != 1) return fmt::format("block: block_n = {} should be 1 for ggml blocks", s.block_n);
  if (s.zero_point)
    return std::string("zero: ggml blocks carry their own offsets; there is no zero-point tensor");
  if (!is_scale_dtype(s.scale_dtype))
    return fmt::format("scale: scale dtype {} is not f32, bf16 or f16", dtype_name(s.scale_dtype));
  if (k % block != 0)
    return fmt::format("group: K = {} is not a whole number of {} blocks ({} elements)", k, t->name,
                       block);
  return std::nullopt;
}

std::string data_shape_note(const QuantScheme& s) {
  if (s.format == QuantFormat::Int4) return " (two int4 values per byte)";
  if (s.format != QuantFormat::GgmlBlocks) return "";
  const auto t = gguf::traits_of(s.ggml_type);
  return fmt::format(" ({} bytes per {}-element {} block)", t.block_bytes, t.block_elements, t.name);
}

}  // namespace

std::int64_t quant_group(const QuantScheme& scheme, std::int64_t k) {
  return scheme.group_k <= 0 ? k : scheme.group_k;
}

std::int64_t quant_groups(const QuantScheme& scheme, std::int64_t k) {
  const std::int64_t g = quant_group(scheme, k);
  return g <= 0 ? 1 : (k + g - 1) / g;
}

std::optional<std::string> quant_scheme_problem(const QuantScheme& s, std::int64_t k) {
  if (s.format == QuantFormat::GgmlBlocks) return ggml_scheme_problem(s, k);
  if (s.group_k < 0) return fmt::format("group: group_k = {} is negative", s.group_k);
  if (s.block_n < 1) return fmt::format("block: block_n = {} must be at least 1", s.block_n);
  if (!is_scale_dtype(s.scale_dtype))
    return fmt::format("scale: scale dtype {} is not f32, bf16 or f16", dtype_name(s.scale_dtype));
  if (s.format == QuantFormat::F8E4M3 && s.zero_point)
    return std::string("zero: f8_e4m3 weights are symmetric; zero points are for int8 and int4");
  if (s.format == QuantFormat::Int4 && k % 2 != 0)
    return fmt::format("data: int4 packs two values per byte, so K must be even, not {}", k);
  if (s.format != QuantFormat::F8E4M3 && s.group_k > 0 && k % s.group_k != 0)
    return fmt::format("group: group_k = {} does not divide K = {}", s.group_k, k);
  if (s.format == QuantFormat::Int4 && s.group_k % 2 != 0)
    return fmt::format("group: int4 groups must be even (a byte never straddles two), not {}",
                       s.group_k);
  return std::nullopt;
}

std::optional<std::string> quant_layout_problem(const QuantLayout& l, const Shape& logical,
                                                const QuantScheme& s) {
  if (logical.rank() < 2)
    return fmt::format("shape: the logical shape {} needs rank >= 2 ([..., N, K])",
                       logical.to_string());
  for (auto d : logical.dims())
    if (d < 0) return fmt::format("shape: the logical shape {} is negative", logical.to_string());
  if (auto problem = quant_scheme_problem(s, logical[-1])) return problem;
  const DType want_data = quant_data_dtype(s.format);
  if (l.data_dtype != want_data)
    return fmt::format("data: dtype {} should be {} for {}", dtype_name(l.data_dtype),
                       dtype_name(want_data), to_string(s.format));
  const Shape want_data_shape = quant_data_shape(logical, s);
  if (l.data_shape != want_data_shape)
    return fmt::format("data: shape {} should be {} for the logical shape {}{}",
                       l.data_shape.to_string(), want_data_shape.to_string(), logical.to_string(),
                       data_shape_note(s));
  if (l.scale_dtype != s.scale_dtype)
    return fmt::format("scale: dtype {} differs from the scheme's scale dtype {}",
                       dtype_name(l.scale_dtype), dtype_name(s.scale_dtype));
  const Shape want_scale = quant_scale_shape(logical, s);
  if (l.scale_shape != want_scale)
    return fmt::format(
        "scale: shape {} should be {} ([..., ceil(N / block_n), ceil(K / group_k)] with N = {}, "
        "K = {}, block_n = {}, group_k = {})",
        l.scale_shape.to_string(), want_scale.to_string(), logical[-2], logical[-1], s.block_n,
        quant_group(s, logical[-1]));
  if (l.has_zero != s.zero_point)
    return s.zero_point ? std::string("zero: the scheme is asymmetric but no zero points are given")
                        : std::string("zero: the scheme is symmetric but zero points are given");
  if (l.has_zero) {
    if (l.zero_dtype != DType::I8)
      return fmt::format("zero: dtype {} should be i8", dtype_name(l.zero_dtype));
    if (l.zero_shape != want_scale)
      return fmt::format("zero: shape {} should be the scale's shape {}", l.zero_shape.to_string(),
                         want_scale.to_string());
  }
  return std::nullopt;
}

}  // namespace detail
}  // namespace porta
