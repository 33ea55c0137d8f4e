// Quantized checkpoints in each real format, written by the suite itself, load into the canonical
// QuantizedTensor with the exact values the format's own specification gives (decoded here by a
// scalar re-implementation of each spec, straight from the safetensors bytes), as views of the
// mapping wherever the format's bytes already are the canonical ones.
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>

#include <catch2/catch.hpp>

#include <porta/io.hpp>
#include <porta/model/quant_checkpoint.hpp>

#include "model/model_test_support.hpp"

namespace porta::test::model_quant_checkpoint_tests {
namespace {

namespace fs = std::filesystem;

std::string write_format(const std::string& format, const TinyModel& tiny, std::int64_t group = 16) {
  const std::string dir = model_tmpdir("quant_" + format);
  model::write_quantized_checkpoint(dir, tiny.config_json, tiny.tensors,
                                    model::parse_quantized_format(format, group));
  return dir;
}

float f32_of(const Tensor& t, std::int64_t i) { return t.at_f32(i); }

std::uint32_t word(const Tensor& t, std::int64_t i) {
  std::uint32_t w;
  std::memcpy(&w, static_cast<const std::uint8_t*>(t.data()) + 4 * i, 4);
  return w;
}

// The value of element (r, c) of module `m`'s weight [N, K] as each format's documentation says.
float ct_int_value(const io::Checkpoint& ck, const std::string& m, std::int64_t r, std::int64_t c,
                   std::int64_t k, std::int64_t group) {
  const Tensor w = ck.get(m + ".weight"), s = ck.get(m + ".weight_scale");
  const auto groups = s.shape()[1];
  const auto q = static_cast<const std::int8_t*>(w.data())[r * k + c];
  const float zp = ck.contains(m + ".weight_zero_point")
                       ? ck.get(m + ".weight_zero_point").at_f32(r * groups + c / group)
                       : 0.0f;
  return (static_cast<float>(q) - zp) * f32_of(s, r * groups + c / group);
}

// pack-quantized: value i of word j holds element 8j + i (int4) or 4j + i (int8) in bits
// [bits·i, bits·(i+1)), stored unsigned as q + 2^(bits-1); zero points likewise along N.
float ct_packed_value(const io::Checkpoint& ck, const std::string& m, std::int64_t r,
                      std::int64_t c, std::int64_t k, std::int64_t group, int bits) {
  const Tensor p = ck.get(m + ".weight_packed"), s = ck.get(m + ".weight_scale");
  const std::int64_t per = 32 / bits, words = (k + per - 1) / per;
  const std::uint32_t mask = (1u << bits) - 1, offset = 1u << (bits - 1);
  const auto u = (word(p, r * words + c / per) >> (bits * (c % per))) & mask;
  const auto groups = s.shape()[1];
  float zp = 0;
  if (ck.contains(m + ".weight_zero_point")) {
    const Tensor z = ck.get(m + ".weight_zero_point");
    const auto zu = (word(z, (r / per) * groups + c / group) >> (bits * (r % per))) & mask;
    zp = static_cast<float>(static_cast<std::int32_t>(zu) - static_cast<std::int32_t>(offset));
  }
  const float q = static_cast<float>(static_cast<std::int32_t>(u) - static_cast<std::int32_t>(offset));
  return (q - zp) * f32_of(s, r * groups + c / group);
}

// msModelSlim: deq = (weight - weight_offset) · weight_scale, one per output channel.
float msmodelslim_value(const io::Checkpoint& ck, const std::string& m, std::int64_t r,
                        std::int64_t c, std::int64_t k) {
  const auto q = static_cast<const std::int8_t*>(ck.get(m + ".weight").data())[r * k + c];
  return (static_cast<float>(q) - ck.get(m + ".weight_offset").at_f32(r)) *
         ck.get(m + ".weight_scale").at_f32(r);
}

// DeepSeek-V3: f8(weight) · weight_scale_inv[r / 128, c / 128].
float fp8_value(const io::Checkpoint& ck, const std::string& m, std::int64_t r, std::int64_t c,
                std::int64_t k) {
  const auto bits = static_cast<const std::uint8_t*>(ck.get(m + ".weight").data())[r * k + c];
  const Tensor s = ck.get(m + ".weight_scale_inv");
  return f8e4m3_bits_to_f32(bits) * s.at_f32((r / 128) * s.shape()[1] + c / 128);
}

struct Probe {
  std::string prepared;  // the model's weight name
  std::string module;    // the checkpoint's module (expert 3 for stacks)
  std::int64_t expert = -1;
};

const std::vector<Probe> kProbes = {
    {"model.layers.1.self_attn.q_b_proj.weight", "model.layers.1.self_attn.q_b_proj"},
    {"model.layers.2.self_attn.kv_a_proj_with_mqa.weight",
     "model.layers.2.self_attn.kv_a_proj_with_mqa"},
    {"model.layers.0.mlp.down_proj.weight", "model.layers.0.mlp.down_proj"},
    {"model.layers.1.moe.experts.down", "model.layers.1.mlp.experts.3.down_proj", 3},
    {"model.layers.3.moe.shared.up", "model.layers.3.mlp.shared_experts.up_proj"},
};

// Loads `format` from disk and checks every probe against the spec decoder, element by element,
// and against the float weight it was quantized from (within half a quantization step).
void check_format(const std::string& format, ActivationQuant activation, bool zero_copy_data) {
  const TinyModel tiny = tiny_model("deepseek_v3", 5);
  const std::string dir = write_format(format, tiny);
  const model::Model m = model::Model::load(dir);
  const io::Checkpoint ck = io::Checkpoint::open(dir);
  INFO(format << ": " << m.quant_format());
  CHECK_FALSE(m.quant_format().empty());
  const std::map<std::string, Tensor> floats(tiny.tensors.begin(), tiny.tensors.end());
  std::optional<std::intptr_t> view_delta;
  for (const auto& probe : kProbes) {
    INFO(probe.prepared);
    const model::QuantizedWeight* qw = m.quantized_weight(probe.prepared);
    REQUIRE(qw != nullptr);
    // msModelSlim's static W8A8 keeps the routed experts dynamic, as its MoE checkpoints do.
    CHECK(qw->activation == (probe.expert >= 0 && activation == ActivationQuant::StaticInt8
                                 ? ActivationQuant::DynamicInt8
                                 : activation));
    const Tensor all = dequantize(qw->weight);
    const auto n = qw->weight.shape[-2], k = qw->weight.shape[-1];
    const std::int64_t base = probe.expert >= 0 ? probe.expert * n * k : 0;
    const auto original = floats.at(probe.module + ".weight").to_f32();
    const auto& s = qw->weight.scheme;
    for (std::int64_t r = 0; r < n; ++r)
      for (std::int64_t c = 0; c < k; ++c) {
        float expected = 0;
        if (format.starts_with("compressed-tensors-w8a8"))
          expected = ct_int_value(ck, probe.module, r, c, k, k);
        else if (format == "compressed-tensors-w8a16")
          expected = ct_packed_value(ck, probe.module, r, c, k, k, 8);
        else if (format.starts_with("compressed-tensors-w4a16"))
          expected = ct_packed_value(ck, probe.module, r, c, k, s.group_k, 4);
        else if (format.starts_with("msmodelslim"))
          expected = msmodelslim_value(ck, probe.module, r, c, k);
        else
          expected = fp8_value(ck, probe.module, r, c, k);
        const float got = all.at_f32(base + r * k + c);
        if (got != expected) FAIL_CHECK("(" << r << ", " << c << "): " << got << " != " << expected);
        // Round to nearest: within half a step of the float weight (asymmetric: the rounded
        // zero point adds up to half a step more); FP8: within e4m3's 2^-4 relative spacing.
        const float x = original[static_cast<std::size_t>(r * k + c)];
        const auto sg = qw->weight.scale.shape()[-1], sn = qw->weight.scale.shape()[-2];
        const float step = qw->weight.scale.at_f32((probe.expert >= 0 ? probe.expert * sn * sg : 0) +
                                                   (r / s.block_n) * sg + c / (s.group_k ? s.group_k : k));
        const float bound = s.format == QuantFormat::F8E4M3 ? std::fabs(x) / 16 + step / 512
                            : s.zero_point              ? 1.0001f * step
                                                        : 0.5001f * step;
        if (!(std::fabs(got - x) <= bound))
          FAIL_CHECK("(" << r << ", " << c << "): " << got << " is not within " << bound << " of " << x);
      }
    if (zero_copy_data) {
      const std::string data_name =
          probe.module + (format.starts_with("compressed-tensors-w4a16") ? ".weight_packed" : ".weight");
      const void* mapped = ck.get(data_name).data();
      const void* used = probe.expert >= 0 ? qw->weight.data.part(probe.expert) : qw->weight.data.data();
      // The model maps the file itself: a view sits at the same distance from this test's
      // mapping of the same file for every probe, a copy would not.
      const auto delta = reinterpret_cast<std::intptr_t>(used) - reinterpret_cast<std::intptr_t>(mapped);
      if (!view_delta) view_delta = delta;
      CHECK(delta == *view_delta);
    }
  }
  // Norms, embeddings and the router stay float; lm_head is in compressed-tensors' ignore list.
  CHECK(m.quantized_weight("model.embed_tokens.weight") == nullptr);
  CHECK(m.quantized_weight("model.layers.1.moe.gate") == nullptr);
  CHECK(m.stats().quantized_tensors > 0);
  CHECK(m.stats().quantized_bytes < m.weight_bytes());
}

TEST_CASE("compressed-tensors int-quantized W8A8 loads as views with dynamic int8 activations",
          "[model][quant]") {
  check_format("compressed-tensors-w8a8", ActivationQuant::DynamicInt8, true);
}

TEST_CASE("compressed-tensors pack-quantized W8A16 loads (int8 words repacked to signed bytes)",
          "[model][quant]") {
  check_format("compressed-tensors-w8a16", ActivationQuant::None, false);
}

TEST_CASE("compressed-tensors pack-quantized W4A16: int32 words are the canonical nibbles",
          "[model][quant]") {
  check_format("compressed-tensors-w4a16", ActivationQuant::None, true);
}

TEST_CASE("compressed-tensors pack-quantized W4A16 with zero points packed along N",
          "[model][quant]") {
  check_format("compressed-tensors-w4a16-asym", ActivationQuant::None, true);
  const TinyModel tiny = tiny_model("deepseek_v3", 5);
  const model::Model m = model::Model::load(write_format("compressed-tensors-w4a16-asym", tiny));
  bool zero_copy_reported = false;
  for (const auto& [why, bytes] : m.stats().copies)
    zero_copy_reported = zero_copy_reported || why.find("zero points") != std::string::npos;
  CHECK(zero_copy_reported);
  const auto* q = m.quantized_weight("model.layers.0.mlp.gate_proj.weight");
  REQUIRE(q != nullptr);
  CHECK(q->weight.scheme.zero_point);
  CHECK(q->weight.scheme.group_k == 16);
  CHECK(describe(q->weight.scheme).find("asym") != std::string::npos);
}

TEST_CASE("msModelSlim W8A8_DYNAMIC loads from quant_model_description.json", "[model][quant]") {
  check_format("msmodelslim-w8a8-dynamic", ActivationQuant::DynamicInt8, true);
}

TEST_CASE("msModelSlim static W8A8 carries its activation scale and offset", "[model][quant]") {
  check_format("msmodelslim-w8a8", ActivationQuant::StaticInt8, true);
  const TinyModel tiny = tiny_model("deepseek_v3", 5);
  const std::string dir = write_format("msmodelslim-w8a8", tiny);
  const model::Model m = model::Model::load(dir);
  const auto* q = m.quantized_weight("model.layers.1.self_attn.o_proj.weight");
  REQUIRE(q != nullptr);
  const io::Checkpoint ck = io::Checkpoint::open(dir);
  CHECK(q->input.scale == ck.get("model.layers.1.self_attn.o_proj.input_scale").at_f32(0));
  CHECK(q->input.offset == ck.get("model.layers.1.self_attn.o_proj.input_offset").at_f32(0));
  CHECK(q->input.offset != 0.0f);
}

TEST_CASE("DeepSeek FP8 stays f8_e4m3 in memory with its 128x128 block scales", "[model][quant]") {
  check_format("fp8", ActivationQuant::None, true);
  const TinyModel tiny = tiny_model("deepseek_v3", 5);
  const model::Model m = model::Model::load(write_format("fp8", tiny));
  const auto* q = m.quantized_weight("model.layers.1.self_attn.q_b_proj.weight");
  REQUIRE(q != nullptr);
  CHECK(q->weight.data.dtype() == DType::F8E4M3);
  CHECK(q->weight.scheme.block_n == 128);
  CHECK(q->weight.scheme.group_k == 128);
  CHECK(m.stats().dequantized_bytes < 64 * 1024);  // kv_b_proj's halves only
}

TEST_CASE("Quantized checkpoints dequantise at load on request into the float weights",
          "[model][quant]") {
  const TinyModel tiny = tiny_model("deepseek_v3", 5);
  const std::string dir = write_format("compressed-tensors-w4a16", tiny);
  const model::Model kept = model::Model::load(dir);
  const model::Model floats = model::Model::load(dir, {.dequantize = true, .fp8_dtype = DType::F32});
  const std::string name = "model.layers.2.self_attn.o_proj.weight";
  CHECK(floats.quantized_weight(name) == nullptr);
  CHECK(floats.quantized_weight_names().empty());
  const auto a = floats.weight(name).to_f32();
  const auto b = dequantize(kept.quantized_weight(name)->weight).to_f32();
  CHECK(a == b);
  CHECK(kept.weight_bytes() < floats.weight_bytes() / 3);
}

TEST_CASE("gen-checkpoint's quantized configs name their format", "[model][quant]") {
  const auto json = model::quantized_config_json(model::tiny_config_json("mixtral"),
                                                 model::parse_quantized_format("compressed-tensors-w8a8"));
  const model::ModelConfig c = model::parse_config(json);
  CHECK(c.quant_method == "compressed-tensors");
  CHECK(c.quantization_config.find("int-quantized") != std::string::npos);
  CHECK(model::is_quantized_linear("model.layers.0.block_sparse_moe.experts.7.w2.weight"));
  CHECK(model::is_quantized_linear("model.layers.0.self_attn.kv_a_proj_with_mqa.weight"));
  CHECK_FALSE(model::is_quantized_linear("model.layers.0.block_sparse_moe.gate.weight"));
  CHECK_FALSE(model::is_quantized_linear("lm_head.weight"));
  CHECK(model::is_quantized_linear("model.layers.3.mlp.experts.12.gate_proj.weight"));
  CHECK(model::is_quantized_linear("model.layers.0.block_sparse_moe.experts.0.w1.weight"));
  CHECK_FALSE(model::is_quantized_linear("model.layers.0.block_sparse_moe.experts.7.w4.weight"));
  CHECK_FALSE(model::is_quantized_linear("model.layers.0.block_sparse_moe.experts.w2.weight"));
  CHECK_FALSE(model::is_quantized_linear("model.layers.0.block_sparse_moe.experts7.w2.weight"));
  CHECK_FALSE(model::is_quantized_linear("model.layers.0.self_attn.q_proj.bias"));
  CHECK_THROWS_WITH(model::parse_quantized_format("w3a16"), Catch::Contains("compressed-tensors-w8a8"));
}

}  // namespace
}  // namespace porta::test::model_quant_checkpoint_tests
