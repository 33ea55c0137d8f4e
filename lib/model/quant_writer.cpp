// The quantized formats' writers: porta's canonical QuantizedTensor (quantize(), round to
// nearest even) re-laid into each format's tensors, the inverse of the readers in
// compressed_tensors.cpp, msmodelslim.cpp and quant_formats.cpp.
#include <porta/model/quant_checkpoint.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <porta/io.hpp>
#include <porta/model/checkpoint_gen.hpp>
#include <porta/model/config.hpp>

namespace porta::model {

namespace {

using nlohmann::json;
using QFamily = QuantizedFormat::Family;

// msModelSlim static W8A8's activation parameters in the checkpoints porta writes: a fixed
// per-tensor range (the suite's activations are RMS-normalised, |x| mostly below 8) and a
// nonzero offset, so that quant_bias is exercised.
constexpr float kStaticInputScale = 0.0625f;
constexpr float kStaticInputOffset = 3.0f;

std::string module_of(const std::string& name) { return name.substr(0, name.size() - 7); }

// msModelSlim's W8A8 checkpoints of MoE models (DeepSeek-R1 on Ascend) quantize the routed
// experts' activations dynamically and the rest statically: a per-tensor scale cannot describe
// the rows an expert happens to receive.
bool is_routed_expert(const std::string& name) { return name.find(".experts.") != std::string::npos; }

bool is_packed(const QuantizedFormat& f) {
  return f.family == QFamily::CompressedTensors && f.activation == ActivationQuant::None;
}

// Little-endian int32 words of `per_word` values per word along each row of `bytes_per_row`
// canonical bytes (the canonical int4 byte order is already the word's nibble order).
Tensor words_of_rows(const std::uint8_t* bytes, std::int64_t rows, std::int64_t bytes_per_row,
                     std::int64_t words, std::uint8_t flip) {
  Tensor out = Tensor::zeros({rows, words}, DType::I32);
  auto* dst = static_cast<std::uint8_t*>(out.data());
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < bytes_per_row; ++c)
      dst[r * words * 4 + c] = bytes[r * bytes_per_row + c] ^ flip;
  return out;
}

}  // namespace

std::vector<std::string> quantized_format_names() {
  return {"compressed-tensors-w8a8",       "compressed-tensors-w8a16",
          "compressed-tensors-w4a16",      "compressed-tensors-w4a16-asym",
          "msmodelslim-w8a8",              "msmodelslim-w8a8-dynamic",
          "fp8"};
}

QuantizedFormat parse_quantized_format(std::string_view name, std::int64_t group) {
  QuantizedFormat f;
  QuantScheme& s = f.scheme;
  if (name == "compressed-tensors-w8a8") {
    s.scale_dtype = DType::BF16;
    f.activation = ActivationQuant::DynamicInt8;
  } else if (name == "compressed-tensors-w8a16") {
    s.scale_dtype = DType::BF16;
  } else if (name == "compressed-tensors-w4a16" || name == "compressed-tensors-w4a16-asym") {
    if (group < 2 || group % 2 != 0)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("int4 groups must be even and >= 2, not {}", group));
    s.format = QuantFormat::Int4;
    s.group_k = group;
    s.zero_point = name.ends_with("-asym");
    s.scale_dtype = DType::BF16;
  } else if (name == "msmodelslim-w8a8" || name == "msmodelslim-w8a8-dynamic") {
    f.family = QFamily::MsModelSlim;
    f.activation = name.ends_with("dynamic") ? ActivationQuant::DynamicInt8 : ActivationQuant::StaticInt8;
  } else if (name == "fp8") {
    f.family = QFamily::Fp8;
    s.format = QuantFormat::F8E4M3;
    s.block_n = 128;
    s.group_k = 128;
  } else {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("unknown quantized format '{}' (known: {})", name,
                            fmt::join(quantized_format_names(), ", ")));
  }
  return f;
}

// The linear layers of the supported architectures: "*_proj.weight", "*_proj_with_mqa.weight"
// and Mixtral's "*.experts.<e>.w1|w2|w3.weight".
bool is_quantized_linear(const std::string& name) {
  constexpr std::string_view suffix = ".weight";
  const std::string_view whole = name;
  if (!whole.ends_with(suffix)) return false;
  const std::string_view module = whole.substr(0, whole.size() - suffix.size());
  if (module.ends_with("_proj") || module.ends_with("_proj_with_mqa")) return true;
  // ".experts.<digits>.w[123]"
  if (module.size() < 3 || module[module.size() - 3] != '.' || module[module.size() - 2] != 'w' ||
      module.back() < '1' || module.back() > '3')
    return false;
  const std::string_view head = module.substr(0, module.size() - 3);
  const std::size_t dot = head.find_last_not_of("0123456789");
  if (dot == std::string_view::npos || dot + 1 == head.size() || head[dot] != '.') return false;
  return head.substr(0, dot).ends_with(".experts");
}

std::vector<std::pair<std::string, Tensor>> encode_linear(const std::string& name, const Tensor& w,
                                                          const QuantizedFormat& f) {
  if (w.shape().rank() != 2 || !name.ends_with(".weight"))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("encode_linear: '{}' must be a 2-D '.weight', not {}", name,
                            w.description()));
  const std::string m = module_of(name);
  const auto n = w.shape()[0];
  const auto k = w.shape()[1];
  if (f.family == QFamily::Fp8) {
    auto [q, s] = quantize_fp8(w, {f.scheme.block_n, f.scheme.group_k});
    return {{name, q}, {name + "_scale_inv", s}};
  }
  if (f.scheme.group_k > 0 && k % f.scheme.group_k != 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("'{}' has K = {}, which the group size {} does not divide", name, k,
                            f.scheme.group_k));
  const QuantizedTensor q = quantize(w, f.scheme);
  std::vector<std::pair<std::string, Tensor>> out;
  if (f.family == QFamily::MsModelSlim) {
    out.emplace_back(name, q.data);
    out.emplace_back(m + ".weight_scale", q.scale);
    out.emplace_back(m + ".weight_offset", Tensor::zeros({n, 1}, q.scale.dtype()));
    if (f.activation != ActivationQuant::StaticInt8 || is_routed_expert(name)) return out;
    const std::vector<float> s_w = q.scale.to_f32();
    std::vector<float> deq(static_cast<std::size_t>(n));
    std::vector<std::int32_t> bias(static_cast<std::size_t>(n));
    const auto* codes = static_cast<const std::int8_t*>(q.data.data());
    for (std::int64_t r = 0; r < n; ++r) {
      std::int64_t sum = 0;
      for (std::int64_t c = 0; c < k; ++c) sum += codes[r * k + c];
      deq[static_cast<std::size_t>(r)] = kStaticInputScale * s_w[static_cast<std::size_t>(r)];
      bias[static_cast<std::size_t>(r)] =
          static_cast<std::int32_t>(-static_cast<std::int64_t>(kStaticInputOffset) * sum);
    }
    const float scale[] = {kStaticInputScale}, offset[] = {kStaticInputOffset};
    out.emplace_back(m + ".input_scale", Tensor::from_f32({1}, DType::BF16, scale));
    out.emplace_back(m + ".input_offset", Tensor::from_f32({1}, DType::BF16, offset));
    out.emplace_back(m + ".deq_scale", Tensor::from_vector<float>({n}, deq));
    out.emplace_back(m + ".quant_bias", Tensor::from_vector<std::int32_t>({n}, bias));
    return out;
  }
  if (!is_packed(f)) {  // int-quantized: the canonical int8 bytes as they are
    out.emplace_back(name, q.data);
    out.emplace_back(m + ".weight_scale", q.scale);
    if (q.scheme.zero_point) out.emplace_back(m + ".weight_zero_point", q.zero);
    return out;
  }
  // pack-quantized: 32 / bits values per little-endian int32 word, stored unsigned.
  const bool int4 = f.scheme.format == QuantFormat::Int4;
  const std::int64_t per_word = int4 ? 8 : 4;
  const auto* codes = static_cast<const std::uint8_t*>(q.data.data());
  out.emplace_back(m + ".weight_packed",
                   words_of_rows(codes, n, int4 ? k / 2 : k, (k + per_word - 1) / per_word,
                                 int4 ? 0 : 0x80));
  out.emplace_back(m + ".weight_scale", q.scale);
  out.emplace_back(m + ".weight_shape", Tensor::from_vector<std::int64_t>({2}, {n, k}));
  if (q.scheme.zero_point) {
    // Packed along N: row r's zero in word r / per_word, bits [bits · (r % per_word), ...).
    const auto groups = q.zero.shape()[1];
    const auto* z = static_cast<const std::int8_t*>(q.zero.data());
    std::vector<std::int32_t> words(static_cast<std::size_t>(((n + per_word - 1) / per_word) * groups));
    const int bits = int4 ? 4 : 8;
    for (std::int64_t r = 0; r < n; ++r)
      for (std::int64_t c = 0; c < groups; ++c) {
        const std::uint32_t u =
            int4 ? static_cast<std::uint32_t>(z[r * groups + c]) & 0xFu
                 : (static_cast<std::uint32_t>(static_cast<std::uint8_t>(z[r * groups + c])) ^ 0x80u);
        auto& word = words[static_cast<std::size_t>((r / per_word) * groups + c)];
        word = static_cast<std::int32_t>(static_cast<std::uint32_t>(word) |
                                         (u << (bits * (r % per_word))));
      }
    out.emplace_back(m + ".weight_zero_point",
                     Tensor::from_vector<std::int32_t>({(n + per_word - 1) / per_word, groups}, words));
  }
  return out;
}

std::string quantized_config_json(const std::string& config_json, const QuantizedFormat& f) {
  json j = json::parse(config_json);
  if (f.family == QFamily::Fp8) {
    j["quantization_config"] = {{"quant_method", "fp8"},
                                {"fmt", "e4m3"},
                                {"activation_scheme", "dynamic"},
                                {"weight_block_size", {f.scheme.block_n, f.scheme.group_k}}};
  } else if (f.family == QFamily::MsModelSlim) {
    j["quantize"] = f.activation == ActivationQuant::StaticInt8 ? "w8a8" : "w8a8_dynamic";
  } else {
    const bool int4 = f.scheme.format == QuantFormat::Int4;
    json weights = {{"num_bits", int4 ? 4 : 8},
                    {"type", "int"},
                    {"symmetric", !f.scheme.zero_point},
                    {"strategy", f.scheme.group_k > 0 ? "group" : "channel"},
                    {"group_size", f.scheme.group_k > 0 ? json(f.scheme.group_k) : json(nullptr)},
                    {"dynamic", false},
                    {"observer", "minmax"}};
    json input = nullptr;
    if (f.activation == ActivationQuant::DynamicInt8)
      input = {{"num_bits", 8}, {"type", "int"}, {"symmetric", true}, {"strategy", "token"},
               {"dynamic", true}};
    j["quantization_config"] = {
        {"quant_method", "compressed-tensors"},
        {"format", is_packed(f) ? "pack-quantized" : "int-quantized"},
        {"quantization_status", "compressed"},
        {"config_groups",
         {{"group_0",
           {{"targets", {"Linear"}}, {"weights", weights}, {"input_activations", input},
            {"output_activations", nullptr}}}}},
        {"ignore", {"lm_head"}},
        {"kv_cache_scheme", nullptr}};
  }
  return j.dump(2) + "\n";
}

std::string msmodelslim_description(const std::vector<std::string>& tensor_names,
                                    const QuantizedFormat& f) {
  const std::string type = f.activation == ActivationQuant::StaticInt8 ? "W8A8" : "W8A8_DYNAMIC";
  json j = {{"model_quant_type", type}};
  std::set<std::string> quantized_modules;
  for (const auto& name : tensor_names)
    if (is_quantized_linear(name)) quantized_modules.insert(module_of(name));
  for (const auto& name : tensor_names) {
    const auto dot = name.rfind('.');
    const bool quantized =
        dot != std::string::npos && quantized_modules.count(name.substr(0, dot)) != 0;
    j[name] = !quantized ? "FLOAT" : is_routed_expert(name) ? "W8A8_DYNAMIC" : type;
  }
  return j.dump(2) + "\n";
}

std::vector<std::pair<std::string, Tensor>> encode_checkpoint(
    const std::vector<std::pair<std::string, Tensor>>& tensors, const QuantizedFormat& format) {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& [name, t] : tensors) {
    if (!is_quantized_linear(name)) {
      out.emplace_back(name, t);
      continue;
    }
    for (auto& entry : encode_linear(name, t, format)) out.push_back(std::move(entry));
  }
  return out;
}

void write_quantized_checkpoint(const std::string& dir, const std::string& config_json,
                                const std::vector<std::pair<std::string, Tensor>>& float_tensors,
                                const QuantizedFormat& format) {
  namespace fs = std::filesystem;
  const auto tensors = encode_checkpoint(float_tensors, format);
  const std::string config = quantized_config_json(config_json, format);
  if (format.family != QFamily::MsModelSlim) {
    write_checkpoint(dir, config, tensors);
    return;
  }
  // msModelSlim's own file names (quant_model_weight_<type>.safetensors + the description).
  fs::create_directories(dir);
  {
    std::ofstream out(fs::path(dir) / "config.json", std::ios::binary | std::ios::trunc);
    out << config;
    if (!out) throw Error(ErrorCode::Io, fmt::format("cannot write '{}/config.json'", dir));
  }
  const bool dynamic = format.activation == ActivationQuant::DynamicInt8;
  io::write_safetensors(
      (fs::path(dir) / (dynamic ? "quant_model_weight_w8a8_dynamic.safetensors"
                                : "quant_model_weight_w8a8.safetensors"))
          .string(),
      tensors, {{"format", "pt"}});
  std::vector<std::string> names;
  for (const auto& [name, t] : tensors) names.push_back(name);
  std::ofstream out(fs::path(dir) / "quant_model_description.json", std::ios::binary | std::ios::trunc);
  out << msmodelslim_description(names, format);
  if (!out)
    throw Error(ErrorCode::Io, fmt::format("cannot write '{}/quant_model_description.json'", dir));
}

}  // namespace porta::model
