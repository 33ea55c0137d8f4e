// msModelSlim (Huawei's Ascend quantizer): quant_model_description.json names each tensor's
// scheme ("W8A8", "W8A8_DYNAMIC", "W8A16", "FLOAT"); a quantized linear stores `weight` (int8
// [N, K]), `weight_scale` and `weight_offset` ([N, 1] or [N]; deq = (weight - offset) · scale),
// and static W8A8 adds `input_scale`, `input_offset` (one value each: x_q = round(x / s + o)),
// `deq_scale` ([N]: input_scale · weight_scale, int64 holding f32 bits for fp16 models) and
// `quant_bias` ([N] int32: -o · Σ_k weight, plus any folded float bias). porta's static W8A8
// computes (Σ (x_q - o) · w) · s_x · s_w, so quant_bias and deq_scale are checked against those.
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "model/quant_formats.hpp"

namespace porta::model {

namespace {

using nlohmann::json;

class MsModelSlimReader final : public QuantFormatReader {
 public:
  explicit MsModelSlimReader(const std::string& path) : path_(path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(ErrorCode::NotFound, fmt::format("cannot open '{}'", path));
    std::stringstream text;
    text << in.rdbuf();
    json j;
    try {
      j = json::parse(text.str());
    } catch (const json::exception& e) {
      throw Error(ErrorCode::CorruptFile, fmt::format("'{}' is not valid JSON: {}", path, e.what()));
    }
    if (!j.is_object())
      throw Error(ErrorCode::CorruptFile, fmt::format("'{}' must hold a JSON object", path));
    for (const auto& [key, value] : j.items()) {
      if (!value.is_string())
        throw Error(ErrorCode::CorruptFile,
                    fmt::format("'{}': entry '{}' must be a scheme name string, not {}", path, key,
                                value.dump()));
      entries_[key] = value.get<std::string>();
    }
    model_type_ = entries_.count("model_quant_type") ? entries_["model_quant_type"] : "";
  }

  std::string name() const override {
    return model_type_.empty() ? "msModelSlim" : "msModelSlim " + model_type_;
  }

  std::optional<QuantLinear> linear(const TensorSource& src, const std::string& weight_name,
                                    const Shape& logical, const CopyReport& copied) const override {
    const auto it = entries_.find(weight_name);
    if (it == entries_.end())
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("'{}' has no entry for tensor '{}'", path_, weight_name));
    const std::string& scheme = it->second;
    const std::string m = weight_name.substr(0, weight_name.size() - std::string(".weight").size());
    const bool is_int8 = src.contains(weight_name) && src.get(weight_name).dtype() == DType::I8;
    if (scheme == "FLOAT") {
      if (is_int8) disagree(weight_name, scheme, "the tensor is int8");
      return std::nullopt;
    }
    if (scheme != "W8A8" && scheme != "W8A8_DYNAMIC" && scheme != "W8A16")
      throw Error(ErrorCode::Unsupported,
                  fmt::format("'{}': tensor '{}' has scheme '{}', which porta does not read "
                              "(W8A8, W8A8_DYNAMIC, W8A16, FLOAT)",
                              path_, weight_name, scheme));
    if (!is_int8 && src.contains(weight_name))
      disagree(weight_name, scheme,
               fmt::format("the tensor is {}, not int8", dtype_name(src.get(weight_name).dtype())));
    for (const char* part : {"weight_scale", "weight_offset", "input_scale", "input_offset",
                             "deq_scale", "quant_bias"}) {
      const auto entry = entries_.find(m + "." + part);
      if (entry != entries_.end() && entry->second != scheme)
        disagree(m + "." + part, entry->second, fmt::format("its weight '{}' is {}", weight_name, scheme));
    }
    const bool is_static = scheme == "W8A8";
    if (!is_static && src.contains(m + ".input_scale"))
      disagree(weight_name, scheme,
               fmt::format("'{}.input_scale' exists, which only static W8A8 has", m));

    QuantLinear out;
    QuantizedTensor& w = out.weight;
    w.shape = logical;
    w.scheme.format = QuantFormat::Int8;
    w.data = fetch_exact(src, weight_name, {DType::I8}, logical, "weight");
    const auto n = logical[0];
    if (is_static)
      load_static(src, m, n, copied, out);
    else
      load_channel_scales(src, m, n, w);
    if (scheme == "W8A8_DYNAMIC") out.activation = ActivationQuant::DynamicInt8;
    validate(w, weight_name);
    return out;
  }

 private:
  [[noreturn]] void disagree(const std::string& tensor, const std::string& scheme,
                             const std::string& why) const {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("'{}' says tensor '{}' is {} but {}", path_, tensor, scheme, why));
  }

  // weight_scale [N, 1] or [N] (a view either way) and weight_offset of the same shape; nonzero
  // offsets become the canonical zero points (z = offset, as deq = (w - offset) · scale).
  void load_channel_scales(const TensorSource& src, const std::string& m, std::int64_t n,
                           QuantizedTensor& w) const {
    const Tensor scale = channel_vector(src, m + ".weight_scale", n, "weight_scale");
    w.scale = scale;
    w.scheme.scale_dtype = scale.dtype();
    if (!src.contains(m + ".weight_offset")) return;
    const Tensor offset = channel_vector(src, m + ".weight_offset", n, "weight_offset");
    const std::vector<float> values = offset.to_f32();
    bool any = false;
    for (float v : values) any = any || v != 0.0f;
    if (!any) return;
    std::vector<std::int8_t> z(values.size());
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (values[i] != std::nearbyint(values[i]) || values[i] < -128 || values[i] > 127)
        throw Error(ErrorCode::CorruptFile,
                    fmt::format("tensor '{}.weight_offset' holds {} at row {}, not an int8 offset",
                                m, values[i], i));
      z[i] = static_cast<std::int8_t>(values[i]);
    }
    w.zero = Tensor::from_vector<std::int8_t>({n, 1}, z);
    w.scheme.zero_point = true;
  }

  static Tensor channel_vector(const TensorSource& src, const std::string& name, std::int64_t n,
                               const std::string& field) {
    Tensor t = fetch_exact(src, name, {DType::F32, DType::BF16, DType::F16}, std::nullopt, field);
    if (t.shape() != Shape{n, 1} && t.shape() != Shape{n})
      throw Error(ErrorCode::ShapeMismatch,
                  fmt::format("{}: tensor '{}' ({}) must be [{}, 1] or [{}]: one per output channel",
                              src.where, name, t.description(), n, n));
    return t.reshape({n, 1});
  }

  void load_static(const TensorSource& src, const std::string& m, std::int64_t n,
                   const CopyReport& copied, QuantLinear& out) const {
    QuantizedTensor& w = out.weight;
    const Tensor in_scale = fetch_exact(src, m + ".input_scale", {DType::F32, DType::BF16, DType::F16},
                                        std::nullopt, "input_scale");
    const Tensor in_offset = fetch_exact(src, m + ".input_offset",
                                         {DType::F32, DType::BF16, DType::F16, DType::I8},
                                         std::nullopt, "input_offset");
    for (const Tensor* t : {&in_scale, &in_offset})
      if (t->numel() != 1)
        throw Error(ErrorCode::ShapeMismatch,
                    fmt::format("{}: tensor '{}.{}' must hold one value (per-tensor activations), "
                                "not {}",
                                src.where, m, t == &in_scale ? "input_scale" : "input_offset",
                                t->description()));
    const float s_x = in_scale.at_f32(0);
    const float o_x = in_offset.at_f32(0);
    if (!(s_x > 0) || !std::isfinite(s_x))
      throw Error(ErrorCode::CorruptFile,
                  fmt::format("tensor '{}.input_scale' is {}, not a positive scale", m, s_x));
    if (o_x != std::nearbyint(o_x) || o_x < -128 || o_x > 127)
      throw Error(ErrorCode::CorruptFile,
                  fmt::format("tensor '{}.input_offset' is {}, not an int8 offset", m, o_x));
    out.activation = ActivationQuant::StaticInt8;
    out.input = {s_x, o_x};

    const Tensor deq_t = fetch_exact(src, m + ".deq_scale", {DType::F32, DType::I64}, Shape{n},
                                     "deq_scale");
    std::vector<float> deq(static_cast<std::size_t>(n));
    if (deq_t.dtype() == DType::I64) {
      // fp16 models store each f32 deq_scale in the low 32 bits of an int64 (Ascend's operator).
      const auto* words = static_cast<const std::uint64_t*>(deq_t.data());
      for (std::int64_t i = 0; i < n; ++i) {
        const auto bits = static_cast<std::uint32_t>(words[i] & 0xFFFFFFFFu);
        std::memcpy(&deq[static_cast<std::size_t>(i)], &bits, 4);
      }
    } else {
      deq = deq_t.to_f32();
    }
    if (src.contains(m + ".weight_scale")) {
      load_channel_scales(src, m, n, w);
      if (w.scheme.zero_point)
        throw Error(ErrorCode::Unsupported,
                    fmt::format("tensor '{}.weight_offset' is nonzero: static W8A8 with asymmetric "
                                "weights is not supported",
                                m));
      const std::vector<float> s_w = w.scale.to_f32();
      for (std::int64_t i = 0; i < n; ++i) {
        const float expect = s_x * s_w[static_cast<std::size_t>(i)];
        if (!(std::fabs(deq[static_cast<std::size_t>(i)] - expect) <= 1e-2f * std::fabs(expect)))
          throw Error(ErrorCode::InvalidArgument,
                      fmt::format("tensor '{}.deq_scale' holds {} at row {} but input_scale · "
                                  "weight_scale is {}",
                                  m, deq[static_cast<std::size_t>(i)], i, expect));
      }
    } else {
      std::vector<float> s_w(deq.size());
      for (std::size_t i = 0; i < deq.size(); ++i) s_w[i] = deq[i] / s_x;
      w.scale = Tensor::from_vector<float>({n, 1}, s_w);
      w.scheme.scale_dtype = DType::F32;
      copied("msModelSlim static W8A8 without weight_scale: deq_scale / input_scale", w.scale.nbytes());
    }
    // quant_bias must be the activation offset's correction, -o · Σ_k w[n, k]: porta applies that
    // correction itself (a folded float bias would be lost, so it is refused).
    const Tensor bias = fetch_exact(src, m + ".quant_bias", {DType::I32}, Shape{n}, "quant_bias");
    const auto* qb = static_cast<const std::int32_t*>(bias.data());
    const auto k = w.shape[1];
    const auto* q = static_cast<const std::int8_t*>(w.data.data());
    const auto offset = static_cast<std::int64_t>(o_x);
    for (std::int64_t r = 0; r < n; ++r) {
      std::int64_t sum = 0;
      for (std::int64_t c = 0; c < k; ++c) sum += q[r * k + c];
      if (qb[r] != -offset * sum)
        throw Error(ErrorCode::Unsupported,
                    fmt::format("tensor '{}.quant_bias' holds {} at row {} but -input_offset · "
                                "Σ weight is {}: a folded float bias is not supported",
                                m, qb[r], r, -offset * sum));
    }
  }

  std::string path_;
  std::map<std::string, std::string> entries_;
  std::string model_type_;
};

}  // namespace

std::unique_ptr<QuantFormatReader> make_msmodelslim_reader(const std::string& description_path) {
  return std::make_unique<MsModelSlimReader>(description_path);
}

}  // namespace porta::model
