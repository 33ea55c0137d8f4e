// Bad quantized checkpoints: wrong scale shapes, group sizes that do not divide K, int4 rows of
// odd width, unknown scheme names, descriptions and configs that disagree with the tensors. Each
// is a porta::Error naming the tensor and the field, never a crash or a wrong weight.
#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <porta/model/quant_checkpoint.hpp>

#include "core/error_check.hpp"
#include "model/model_test_support.hpp"
#include "model/quant_formats.hpp"

namespace porta::test::model_quant_bad_input_tests {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// One linear "layer.proj" [N, K] = [4, 32] encoded in `format`, as an in-memory tensor source.
struct Source {
  std::map<std::string, Tensor> tensors;
  model::TensorSource view() const {
    return {"the test's tensors", [this](const std::string& n) { return tensors.count(n) != 0; },
            [this](const std::string& n) { return tensors.at(n); }};
  }
};

Source encoded(const std::string& format, std::int64_t k = 32, std::int64_t group = 16) {
  std::vector<float> w(static_cast<std::size_t>(4 * k));
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = std::sin(0.7f * static_cast<float>(i));
  Source s;
  for (auto& [name, t] :
       model::encode_linear("layer.proj.weight", Tensor::from_vector<float>({4, k}, w),
                            model::parse_quantized_format(format, group)))
    s.tensors[name] = t;
  return s;
}

std::string ct_config(const std::string& format) {
  const auto j = json::parse(model::quantized_config_json(model::tiny_config_json("mixtral"),
                                                          model::parse_quantized_format(format, 16)));
  return j["quantization_config"].dump();
}

std::optional<model::QuantizedWeight> read_ct(const std::string& config, const Source& s,
                                              Shape logical = {4, 32}) {
  const auto reader = model::make_compressed_tensors_reader(config, "config.json");
  return reader->linear(s.view(), "layer.proj.weight", logical, [](const std::string&, std::uint64_t) {});
}

std::string write_description(const std::string& name, const json& j) {
  const auto dir = fs::path(PORTA_TEST_TMPDIR) / "model" / ("desc_" + name);
  fs::create_directories(dir);
  std::ofstream(dir / "quant_model_description.json") << j.dump();
  return (dir / "quant_model_description.json").string();
}

std::optional<model::QuantizedWeight> read_ms(const json& description, const Source& s,
                                              const std::string& name = "ms") {
  const auto reader = model::make_msmodelslim_reader(write_description(name, description));
  return reader->linear(s.view(), "layer.proj.weight", {4, 32}, [](const std::string&, std::uint64_t) {});
}

json ms_description(const std::string& type) {
  return {{"model_quant_type", type},
          {"layer.proj.weight", type},
          {"layer.proj.weight_scale", type},
          {"layer.proj.weight_offset", type}};
}

TEST_CASE("The in-memory sources read back correctly (the bad-input tests' baseline)",
          "[model][quant]") {
  const auto w4 = read_ct(ct_config("compressed-tensors-w4a16-asym"), encoded("compressed-tensors-w4a16-asym"));
  REQUIRE(w4.has_value());
  CHECK(w4->weight.scheme.format == QuantFormat::Int4);
  const auto ms = read_ms(ms_description("W8A8_DYNAMIC"), encoded("msmodelslim-w8a8-dynamic"));
  REQUIRE(ms.has_value());
  CHECK(ms->activation == ActivationQuant::DynamicInt8);
}

TEST_CASE("A scale of the wrong shape names the tensor and weight_scale", "[model][quant]") {
  Source s = encoded("compressed-tensors-w8a8");
  s.tensors["layer.proj.weight_scale"] = Tensor::zeros({4, 2}, DType::BF16);
  REQUIRE_PORTA_ERROR(read_ct(ct_config("compressed-tensors-w8a8"), s), ErrorCode::ShapeMismatch,
                      "layer.proj.weight_scale", "weight_scale", "[4, 1]");
  Source w4 = encoded("compressed-tensors-w4a16");
  w4.tensors["layer.proj.weight_scale"] = Tensor::zeros({4, 3}, DType::BF16);
  REQUIRE_PORTA_ERROR(read_ct(ct_config("compressed-tensors-w4a16"), w4), ErrorCode::ShapeMismatch,
                      "layer.proj.weight_scale", "[4, 2]");
  Source ms = encoded("msmodelslim-w8a8-dynamic");
  ms.tensors["layer.proj.weight_scale"] = Tensor::zeros({2, 2}, DType::F32);
  REQUIRE_PORTA_ERROR(read_ms(ms_description("W8A8_DYNAMIC"), ms), ErrorCode::ShapeMismatch,
                      "layer.proj.weight_scale", "one per output channel");
}

TEST_CASE("A group size that does not divide K names the tensor and group_size", "[model][quant]") {
  auto config = json::parse(ct_config("compressed-tensors-w4a16"));
  config["config_groups"]["group_0"]["weights"]["group_size"] = 12;
  REQUIRE_PORTA_ERROR(read_ct(config.dump(), encoded("compressed-tensors-w4a16")),
                      ErrorCode::ShapeMismatch, "layer.proj.weight", "group_size 12", "K = 32");
  // The writer refuses too.
  REQUIRE_PORTA_ERROR(encoded("compressed-tensors-w4a16", 32, 24), ErrorCode::InvalidArgument,
                      "layer.proj.weight", "group size 24");
}

TEST_CASE("int4 rows of odd width are refused; widths that pad their last word are repacked",
          "[model][quant]") {
  Source s = encoded("compressed-tensors-w4a16");
  s.tensors["layer.proj.weight_shape"] = Tensor::from_vector<std::int64_t>({2}, {4, 31});
  s.tensors["layer.proj.weight_scale"] = Tensor::zeros({4, 1}, DType::BF16);
  auto config = json::parse(ct_config("compressed-tensors-w4a16"));
  config["config_groups"]["group_0"]["weights"]["strategy"] = "channel";
  REQUIRE_PORTA_ERROR(read_ct(config.dump(), s, {4, 31}), ErrorCode::ShapeMismatch,
                      "layer.proj.weight_packed", "odd width K = 31");
  // K = 20: 3 words per row, the last one half padding: a repack, counted, with exact values.
  const Source padded = encoded("compressed-tensors-w4a16", 20, 10);
  config["config_groups"]["group_0"]["weights"]["strategy"] = "group";
  config["config_groups"]["group_0"]["weights"]["group_size"] = 10;
  std::uint64_t repacked = 0;
  const auto reader = model::make_compressed_tensors_reader(config.dump(), "config.json");
  const auto q = reader->linear(padded.view(), "layer.proj.weight", {4, 20},
                                [&](const std::string& why, std::uint64_t bytes) {
                                  CHECK(why.find("padded") != std::string::npos);
                                  repacked += bytes;
                                });
  REQUIRE(q.has_value());
  CHECK(repacked == 4 * 10);
  const Tensor words = padded.tensors.at("layer.proj.weight_packed");
  const auto* bytes = static_cast<const std::uint8_t*>(words.data());
  const auto* canonical = static_cast<const std::uint8_t*>(q->weight.data.data());
  for (int r = 0; r < 4; ++r)
    for (int j = 0; j < 10; ++j) REQUIRE(canonical[r * 10 + j] == bytes[r * 12 + j]);
}

TEST_CASE("Unknown scheme names are refused naming the tensor or the field", "[model][quant]") {
  auto config = json::parse(ct_config("compressed-tensors-w8a8"));
  config["config_groups"]["group_0"]["weights"]["num_bits"] = 3;
  REQUIRE_PORTA_ERROR(read_ct(config.dump(), encoded("compressed-tensors-w8a8")),
                      ErrorCode::InvalidArgument, "config_groups.group_0.weights", "num_bits 3");
  config = json::parse(ct_config("compressed-tensors-w8a8"));
  config["format"] = "marlin-24";
  REQUIRE_PORTA_ERROR(read_ct(config.dump(), encoded("compressed-tensors-w8a8")),
                      ErrorCode::InvalidArgument, "config_groups.group_0.format", "marlin-24");
  config = json::parse(ct_config("compressed-tensors-w8a8"));
  config["config_groups"]["group_0"]["weights"]["strategy"] = "block";
  REQUIRE_PORTA_ERROR(read_ct(config.dump(), encoded("compressed-tensors-w8a8")),
                      ErrorCode::InvalidArgument, "weights.strategy", "'block'");
  REQUIRE_PORTA_ERROR(read_ms(ms_description("W4A8_DYNAMIC"), encoded("msmodelslim-w8a8-dynamic"),
                              "w4a8"),
                      ErrorCode::Unsupported, "layer.proj.weight", "W4A8_DYNAMIC");
}

TEST_CASE("A description or config that disagrees with the tensors is refused", "[model][quant]") {
  // msModelSlim says FLOAT for an int8 weight, W8A8_DYNAMIC for a bf16 one, dynamic while the
  // static parameters are there, and a scale entry of another scheme than its weight.
  REQUIRE_PORTA_ERROR(read_ms(ms_description("FLOAT"), encoded("msmodelslim-w8a8-dynamic"), "f"),
                      ErrorCode::InvalidArgument, "layer.proj.weight", "FLOAT", "int8");
  Source bf16 = encoded("msmodelslim-w8a8-dynamic");
  bf16.tensors["layer.proj.weight"] = Tensor::zeros({4, 32}, DType::BF16);
  REQUIRE_PORTA_ERROR(read_ms(ms_description("W8A8_DYNAMIC"), bf16, "b"), ErrorCode::InvalidArgument,
                      "layer.proj.weight", "bf16, not int8");
  REQUIRE_PORTA_ERROR(read_ms(ms_description("W8A8_DYNAMIC"), encoded("msmodelslim-w8a8"), "s"),
                      ErrorCode::InvalidArgument, "layer.proj.input_scale", "W8A8_DYNAMIC");
  json mixed = ms_description("W8A8_DYNAMIC");
  mixed["layer.proj.weight_scale"] = "W8A16";
  REQUIRE_PORTA_ERROR(read_ms(mixed, encoded("msmodelslim-w8a8-dynamic"), "m"),
                      ErrorCode::InvalidArgument, "layer.proj.weight_scale", "W8A16");
  json absent = ms_description("W8A8_DYNAMIC");
  absent.erase("layer.proj.weight");
  REQUIRE_PORTA_ERROR(read_ms(absent, encoded("msmodelslim-w8a8-dynamic"), "a"),
                      ErrorCode::InvalidArgument, "no entry", "layer.proj.weight");
  // Static W8A8 whose quant_bias holds more than the offset correction, or whose deq_scale is
  // not input_scale · weight_scale.
  json w8a8 = ms_description("W8A8");
  Source bias = encoded("msmodelslim-w8a8");
  bias.tensors["layer.proj.quant_bias"] = Tensor::zeros({4}, DType::I32);
  REQUIRE_PORTA_ERROR(read_ms(w8a8, bias, "qb"), ErrorCode::Unsupported, "layer.proj.quant_bias",
                      "folded float bias");
  Source deq = encoded("msmodelslim-w8a8");
  deq.tensors["layer.proj.deq_scale"] = Tensor::from_vector<float>({4}, {1, 1, 1, 1});
  REQUIRE_PORTA_ERROR(read_ms(w8a8, deq, "dq"), ErrorCode::InvalidArgument, "layer.proj.deq_scale",
                      "input_scale · weight_scale");
  // compressed-tensors targets a module stored unquantized, or ignores one stored quantized.
  Source plain;
  plain.tensors["layer.proj.weight"] = Tensor::zeros({4, 32}, DType::BF16);
  REQUIRE_PORTA_ERROR(read_ct(ct_config("compressed-tensors-w8a8"), plain), ErrorCode::InvalidArgument,
                      "targets 'layer.proj'", "weight_scale");
  auto ignoring = json::parse(ct_config("compressed-tensors-w8a8"));
  ignoring["ignore"] = {"lm_head", "re:layer\\..*"};
  REQUIRE_PORTA_ERROR(read_ct(ignoring.dump(), encoded("compressed-tensors-w8a8")),
                      ErrorCode::InvalidArgument, "layer.proj.weight_scale", "ignore");
  // re: patterns are anchored at the start (Python's re.match), not searched for.
  ignoring["ignore"] = {"re:proj"};
  CHECK_NOTHROW(read_ct(ignoring.dump(), encoded("compressed-tensors-w8a8")));
  // A pattern that does not compile names the field and the pattern.
  ignoring["ignore"] = {"re:layer\\.(proj"};
  REQUIRE_PORTA_ERROR(read_ct(ignoring.dump(), encoded("compressed-tensors-w8a8")),
                      ErrorCode::CorruptFile, "quantization_config.ignore", "layer\\.(proj");
  // weight_shape that disagrees with the config's shape.
  Source shape = encoded("compressed-tensors-w4a16");
  shape.tensors["layer.proj.weight_shape"] = Tensor::from_vector<std::int64_t>({2}, {8, 32});
  REQUIRE_PORTA_ERROR(read_ct(ct_config("compressed-tensors-w4a16"), shape), ErrorCode::ShapeMismatch,
                      "layer.proj.weight_shape", "[8, 32]");
}

TEST_CASE("A quantized checkpoint on disk with a bad tensor names it", "[model][quant]") {
  const TinyModel tiny = tiny_model("deepseek_v2", 3);
  auto tensors = model::encode_checkpoint(
      tiny.tensors, model::parse_quantized_format("compressed-tensors-w8a8"));
  const std::string bad = "model.layers.1.mlp.experts.4.up_proj.weight_scale";
  for (auto& [name, t] : tensors)
    if (name == bad) t = Tensor::zeros({32, 2}, DType::BF16);
  const std::string dir = model_tmpdir("ct_bad_scale");
  model::write_checkpoint(dir,
                          model::quantized_config_json(tiny.config_json,
                                                       model::parse_quantized_format("compressed-tensors-w8a8")),
                          tensors);
  REQUIRE_PORTA_ERROR(model::Model::load(dir), ErrorCode::ShapeMismatch, bad, "weight_scale");
  // One expert quantized differently from the others cannot join the stack.
  auto mixed = model::encode_checkpoint(tiny.tensors,
                                        model::parse_quantized_format("compressed-tensors-w8a8"));
  for (auto& [name, t] : mixed)
    if (name == bad) t = t.to(DType::F32);
  const std::string dir2 = model_tmpdir("ct_mixed_scale");
  model::write_checkpoint(dir2,
                          model::quantized_config_json(tiny.config_json,
                                                       model::parse_quantized_format("compressed-tensors-w8a8")),
                          mixed);
  REQUIRE_PORTA_ERROR(model::Model::load(dir2), ErrorCode::InvalidArgument,
                      "model.layers.1.mlp.experts.4.up_proj.weight", "scheme");
}

}  // namespace
}  // namespace porta::test::model_quant_bad_input_tests
