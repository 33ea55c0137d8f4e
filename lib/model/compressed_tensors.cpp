// compressed-tensors (vLLM / llm-compressor; quant_method "compressed-tensors"): config_groups
// say which modules are quantized how (targets, weights, input_activations), `ignore` which are
// not. int-quantized / float-quantized store `weight` (int8 / e4m3) with `weight_scale`
// ([N, 1] per channel, [N, K/G] per group) and `weight_zero_point` when asymmetric;
// pack-quantized stores `weight_packed` (int32 words of 32/bits values, value i of a word in bits
// [bits·i, bits·(i+1)), as unsigned value + 2^(bits-1)), `weight_shape` and zero points packed
// the same way along N. Little-endian int4 words are byte for byte the canonical low-nibble-first
// layout, so those are views; int8 words and zero points are repacked (counted).
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "model/quant_formats.hpp"
#include "tokenizer/regex.hpp"

namespace porta::model {

namespace {

using nlohmann::json;

enum class Packing { Int, Float, Pack };

// A module name, or a "re:" pattern, which compressed-tensors matches with Python's re.match
// (anchored at the start). PCRE2 reads the Python syntax these configs use; a pattern that does
// not compile is a CorruptFile error naming the config field.
class ModulePattern {
 public:
  ModulePattern(const std::string& text, const std::string& field) : text_(text) {
    if (text.starts_with("re:"))
      regex_ = std::make_shared<const tok::Regex>(std::string_view(text).substr(3), field);
  }
  bool matches(const std::string& module) const {
    return regex_ ? regex_->matches_at_start(module) : text_ == module;
  }
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::shared_ptr<const tok::Regex> regex_;
};

struct Group {
  std::string name;
  std::vector<ModulePattern> targets;
  Packing packing = Packing::Int;
  QuantFormat format = QuantFormat::Int8;
  int bits = 8;
  bool symmetric = true;
  std::int64_t group_size = 0;  // 0: per output channel
  ActivationQuant activation = ActivationQuant::None;
  bool input_zero_point = false;
};

bool is_router(const std::string& module) {
  return module.ends_with(".gate") || module.ends_with(".shared_expert_gate");
}

class CompressedTensorsReader final : public QuantFormatReader {
 public:
  CompressedTensorsReader(const std::string& text, const std::string& source) : source_(source) {
    json q;
    try {
      q = json::parse(text);
    } catch (const json::exception& e) {
      fail("", fmt::format("is not valid JSON: {}", e.what()));
    }
    const std::string top_format = q.value("format", std::string());
    if (!q.contains("config_groups") || !q["config_groups"].is_object() || q["config_groups"].empty())
      fail("config_groups", "must be a non-empty object");
    for (const auto& [name, g] : q["config_groups"].items()) groups_.push_back(parse_group(name, g, top_format));
    if (q.contains("ignore") && !q["ignore"].is_null()) {
      if (!q["ignore"].is_array()) fail("ignore", "must be a list of module names or re: patterns");
      for (const auto& item : q["ignore"]) {
        if (!item.is_string()) fail("ignore", fmt::format("holds {}, not a string", item.dump()));
        ignore_.emplace_back(item.get<std::string>(), source_ + ": quantization_config.ignore");
      }
    }
  }

  std::string name() const override {
    std::string out = "compressed-tensors";
    for (const auto& g : groups_) out += fmt::format(" {}:{}", g.name, summary(g));
    return out;
  }

  std::optional<QuantLinear> linear(const TensorSource& src, const std::string& weight_name,
                                    const Shape& logical, const CopyReport& copied) const override {
    const std::string module = weight_name.substr(0, weight_name.size() - std::string(".weight").size());
    const Group* group = group_of(module);
    const bool stored = src.contains(module + ".weight_scale");
    if (!stored) {
      if (group && !(is_router(module) && targets_by_class(*group)))
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("{}: quantization_config.config_groups.{} targets '{}' but the "
                                "checkpoint has no '{}.weight_scale' (the weight is stored unquantized)",
                                src.where, group->name, module, module));
      return std::nullopt;
    }
    if (!group)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("{}: tensor '{}.weight_scale' exists but quantization_config does not "
                              "quantize '{}' (no config_groups target matches it, or it is in ignore)",
                              src.where, module, module));
    return load(src, module, *group, logical, copied);
  }

 private:
  [[noreturn]] void fail(const std::string& field, const std::string& why) const {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{}: quantization_config{}{} {}", source_, field.empty() ? "" : ".",
                            field, why));
  }

  static bool targets_by_class(const Group& g) {
    return std::any_of(g.targets.begin(), g.targets.end(),
                       [](const ModulePattern& t) { return t.text() == "Linear"; });
  }

  static std::string summary(const Group& g) {
    const char* acts[] = {"", " + dynamic int8 activations", " + static int8 activations"};
    return fmt::format("{}{} {}{}{}", g.format == QuantFormat::F8E4M3 ? "fp8" : "int",
                       g.format == QuantFormat::F8E4M3 ? "" : std::to_string(g.bits),
                       g.group_size ? fmt::format("g{}", g.group_size) : "per-channel",
                       g.symmetric ? "" : " asym", acts[static_cast<int>(g.activation)]);
  }

  Group parse_group(const std::string& name, const json& g, const std::string& top_format) const {
    const std::string at = "config_groups." + name;
    if (!g.is_object()) fail(at, "must be an object");
    Group out;
    out.name = name;
    if (!g.contains("targets") || !g["targets"].is_array() || g["targets"].empty())
      fail(at + ".targets", "must be a non-empty list");
    for (const auto& t : g["targets"]) {
      if (!t.is_string()) fail(at + ".targets", fmt::format("holds {}, not a string", t.dump()));
      const std::string target = t.get<std::string>();
      // Module classes other than Linear cannot be matched against tensor names.
      if (!target.starts_with("re:") && target != "Linear" && target.find('.') == std::string::npos)
        fail(at + ".targets", fmt::format("'{}' is neither Linear, a module name nor a re: pattern",
                                          target));
      out.targets.emplace_back(target, source_ + ": quantization_config." + at + ".targets");
    }
    const std::string format = g.value("format", top_format);
    if (format == "int-quantized")
      out.packing = Packing::Int;
    else if (format == "float-quantized")
      out.packing = Packing::Float;
    else if (format == "pack-quantized")
      out.packing = Packing::Pack;
    else
      fail(at + ".format", fmt::format("'{}' is not supported (int-quantized, float-quantized, "
                                       "pack-quantized)",
                                       format));
    if (!g.contains("weights") || !g["weights"].is_object()) fail(at + ".weights", "must be an object");
    const json& w = g["weights"];
    const std::string type = w.value("type", std::string("int"));
    out.bits = w.value("num_bits", 8);
    out.symmetric = w.value("symmetric", true);
    if (type == "int" && (out.bits == 8 || out.bits == 4)) {
      out.format = out.bits == 8 ? QuantFormat::Int8 : QuantFormat::Int4;
    } else if (type == "float" && out.bits == 8) {
      out.format = QuantFormat::F8E4M3;
      if (!out.symmetric) fail(at + ".weights.symmetric", "must be true for float weights");
    } else {
      fail(at + ".weights", fmt::format("type '{}' with num_bits {} is not supported (int 8, int 4, "
                                        "float 8)",
                                        type, out.bits));
    }
    if ((out.packing == Packing::Float) != (out.format == QuantFormat::F8E4M3))
      fail(at + ".format", fmt::format("'{}' does not hold {} weights", format, type));
    if (out.packing == Packing::Int && out.format == QuantFormat::Int4)
      fail(at + ".format", "int-quantized holds 8-bit weights; 4-bit ones are pack-quantized");
    const std::string strategy = w.value("strategy", std::string("channel"));
    if (strategy == "group") {
      if (!w.contains("group_size") || !w["group_size"].is_number_integer() ||
          w["group_size"].get<std::int64_t>() < 1)
        fail(at + ".weights.group_size", "must be a positive integer for strategy group");
      out.group_size = w["group_size"].get<std::int64_t>();
    } else if (strategy != "channel") {
      fail(at + ".weights.strategy", fmt::format("'{}' is not supported (channel, group)", strategy));
    }
    if (g.contains("input_activations") && !g["input_activations"].is_null()) {
      const json& a = g["input_activations"];
      const std::string a_at = at + ".input_activations";
      if (!a.is_object()) fail(a_at, "must be an object or null");
      if (a.value("type", std::string("int")) != "int" || a.value("num_bits", 8) != 8)
        fail(a_at, "must be 8-bit int (W8A8)");
      if (out.format != QuantFormat::Int8) fail(a_at, "int8 activations need int8 weights");
      const bool dynamic = a.value("dynamic", false);
      const std::string a_strategy = a.value("strategy", std::string("tensor"));
      if (dynamic && a_strategy == "token") {
        if (!a.value("symmetric", true)) fail(a_at + ".symmetric", "must be true for dynamic tokens");
        out.activation = ActivationQuant::DynamicInt8;
      } else if (!dynamic && a_strategy == "tensor") {
        out.activation = ActivationQuant::StaticInt8;
        out.input_zero_point = !a.value("symmetric", true);
      } else {
        fail(a_at, fmt::format("dynamic {} with strategy '{}' is not supported (dynamic token or "
                               "static tensor)",
                               dynamic, a_strategy));
      }
    }
    return out;
  }

  const Group* group_of(const std::string& module) const {
    for (const auto& pattern : ignore_)
      if (pattern.matches(module)) return nullptr;
    for (const auto& g : groups_)
      for (const auto& t : g.targets)
        if (t.text() == "Linear" || t.matches(module)) return &g;
    return nullptr;
  }

  QuantLinear load(const TensorSource& src, const std::string& m, const Group& g,
                   const Shape& logical, const CopyReport& copied) const {
    const auto n = logical[0];
    const auto k = logical[1];
    QuantLinear out;
    out.activation = g.activation;
    QuantScheme& s = out.weight.scheme;
    s.format = g.format;
    s.zero_point = !g.symmetric;
    s.group_k = g.group_size;
    out.weight.shape = logical;
    if (g.group_size && k % g.group_size != 0)
      throw Error(ErrorCode::ShapeMismatch,
                  fmt::format("{}: '{}.weight' has K = {} which group_size {} "
                              "(config_groups.{}.weights.group_size) does not divide",
                              src.where, m, k, g.group_size, g.name));
    const Shape scale_shape{n, g.group_size ? k / g.group_size : 1};
    out.weight.scale = fetch_exact(src, m + ".weight_scale", {DType::F32, DType::BF16, DType::F16},
                                   scale_shape, "weight_scale");
    s.scale_dtype = out.weight.scale.dtype();

    if (g.packing == Packing::Pack) {
      load_packed(src, m, g, logical, copied, out.weight);
    } else {
      out.weight.data = fetch_exact(src, m + ".weight",
                                    {g.format == QuantFormat::F8E4M3 ? DType::F8E4M3 : DType::I8},
                                    logical, "weight");
      if (s.zero_point)
        out.weight.zero = fetch_exact(src, m + ".weight_zero_point", {DType::I8}, scale_shape,
                                      "weight_zero_point");
    }
    if (g.activation == ActivationQuant::StaticInt8) {
      const Tensor scale = fetch_exact(src, m + ".input_scale", {DType::F32, DType::BF16, DType::F16},
                                       std::nullopt, "input_scale");
      if (scale.numel() != 1)
        throw Error(ErrorCode::ShapeMismatch,
                    fmt::format("{}: '{}.input_scale' must hold one value (static per-tensor "
                                "activations), not {}",
                                src.where, m, scale.description()));
      out.input.scale = scale.at_f32(0);
      if (g.input_zero_point) {
        const Tensor zp =
            fetch_exact(src, m + ".input_zero_point", {DType::I8}, std::nullopt, "input_zero_point");
        if (zp.numel() != 1)
          throw Error(ErrorCode::ShapeMismatch,
                      fmt::format("{}: '{}.input_zero_point' must hold one value, not {}", src.where,
                                  m, zp.description()));
        out.input.offset = zp.at_f32(0);
      }
      if (!(out.input.scale > 0))
        throw Error(ErrorCode::CorruptFile,
                    fmt::format("{}: '{}.input_scale' is {}, not a positive scale", src.where, m,
                                out.input.scale));
    }
    validate(out.weight, m + ".weight");
    return out;
  }

  void load_packed(const TensorSource& src, const std::string& m, const Group& g,
                   const Shape& logical, const CopyReport& copied, QuantizedTensor& w) const {
    const auto n = logical[0];
    const auto k = logical[1];
    const std::int64_t per_word = 32 / g.bits;
    const Tensor shape = fetch_exact(src, m + ".weight_shape", {DType::I32, DType::I64}, Shape{2},
                                     "weight_shape");
    if (static_cast<std::int64_t>(shape.at_f32(0)) != n || static_cast<std::int64_t>(shape.at_f32(1)) != k)
      throw Error(ErrorCode::ShapeMismatch,
                  fmt::format("{}: '{}.weight_shape' says [{}, {}] but config.json implies {}",
                              src.where, m, shape.at_f32(0), shape.at_f32(1), logical.to_string()));
    if (g.format == QuantFormat::Int4 && k % 2 != 0)
      throw Error(ErrorCode::ShapeMismatch,
                  fmt::format("{}: '{}.weight_packed' holds int4 rows of odd width K = {}; the "
                              "canonical layout packs two per byte",
                              src.where, m, k));
    const std::int64_t words = (k + per_word - 1) / per_word;
    const Tensor packed =
        fetch_exact(src, m + ".weight_packed", {DType::I32}, Shape{n, words}, "weight_packed");
    const auto* bytes = static_cast<const std::uint8_t*>(packed.contiguous().data());
    if (g.format == QuantFormat::Int4 && k % per_word == 0) {
      // Bits [4i, 4i + 4) of a little-endian word are the low/high nibble of its byte i / 2:
      // element k sits in byte k / 2, low nibble first, as the canonical layout wants.
      auto owner = std::make_shared<Tensor>(packed);
      w.data = Tensor::view(packed.data(), {n, k / 2}, DType::I8, owner);
    } else if (g.format == QuantFormat::Int4) {
      w.data = Tensor::zeros({n, k / 2}, DType::I8);
      for (std::int64_t r = 0; r < n; ++r)
        std::memcpy(static_cast<std::uint8_t*>(w.data.data()) + r * (k / 2), bytes + r * words * 4,
                    static_cast<std::size_t>(k / 2));
      copied("compressed-tensors int4 rows padded to whole int32 words (K % 8 != 0) repacked",
             w.data.nbytes());
    } else {
      // 8-bit values are stored unsigned (q + 128): the canonical signed byte is u ^ 0x80.
      w.data = Tensor::zeros({n, k}, DType::I8);
      auto* out = static_cast<std::uint8_t*>(w.data.data());
      for (std::int64_t r = 0; r < n; ++r)
        for (std::int64_t c = 0; c < k; ++c) out[r * k + c] = bytes[r * words * 4 + c] ^ 0x80u;
      copied("compressed-tensors pack-quantized int8 (stored q + 128) converted to signed bytes",
             w.data.nbytes());
    }
    if (!w.scheme.zero_point) return;
    const auto groups = w.scale.shape()[1];
    const Tensor zp = fetch_exact(src, m + ".weight_zero_point", {DType::I32},
                                  Shape{(n + per_word - 1) / per_word, groups}, "weight_zero_point");
    const std::vector<std::uint32_t> zwords = [&] {
      std::vector<std::uint32_t> v(static_cast<std::size_t>(zp.numel()));
      std::memcpy(v.data(), zp.contiguous().data(), zp.nbytes());
      return v;
    }();
    // Zero points are packed along N (row r in word r / per_word), stored as zp + 2^(bits-1):
    // the unsigned value is the canonical zero of the unsigned int4 domain; int8 returns to signed.
    w.zero = Tensor::zeros({n, groups}, DType::I8);
    auto* z = static_cast<std::int8_t*>(w.zero.data());
    const std::uint32_t mask = (1u << g.bits) - 1;
    for (std::int64_t r = 0; r < n; ++r)
      for (std::int64_t c = 0; c < groups; ++c) {
        const std::uint32_t u = (zwords[static_cast<std::size_t>((r / per_word) * groups + c)] >>
                                 (g.bits * (r % per_word))) & mask;
        z[r * groups + c] = static_cast<std::int8_t>(g.bits == 4 ? u : u ^ 0x80u);
      }
    copied("compressed-tensors zero points packed along N unpacked to one per byte", w.zero.nbytes());
  }

  std::string source_;
  std::vector<Group> groups_;
  std::vector<ModulePattern> ignore_;
};

}  // namespace

std::unique_ptr<QuantFormatReader> make_compressed_tensors_reader(const std::string& config_json,
                                                                  const std::string& source) {
  return std::make_unique<CompressedTensorsReader>(config_json, source);
}

}  // namespace porta::model
