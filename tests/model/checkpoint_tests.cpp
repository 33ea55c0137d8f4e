// Checkpoints on disk: the generator's exact Hugging Face layout loads (single file and sharded),
// bf16 weights are used from the mapping, FP8 dequantisation is exact on crafted blocks, and
// every kind of malformed checkpoint gives a porta::Error naming the tensor or key.
#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

#include <porta/io.hpp>

#include "model/model_test_support.hpp"

namespace porta::test::model_checkpoint_tests {
namespace {

namespace fs = std::filesystem;

std::string write_tiny(const std::string& name, const TinyModel& m, int shards = 1) {
  const std::string dir = model_tmpdir(name);
  model::write_checkpoint(dir, m.config_json, m.tensors, shards);
  return dir;
}

std::vector<std::pair<std::string, Tensor>> without(const TinyModel& m, const std::string& name) {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& e : m.tensors)
    if (e.first != name) out.push_back(e);
  return out;
}

TEST_CASE("A generated checkpoint loads from disk, single-file and sharded, with the same logits",
          "[model]") {
  const TinyModel tiny = tiny_model("deepseek_v3", 2);
  const std::string single = write_tiny("v3_single", tiny);
  const std::string sharded = write_tiny("v3_sharded", tiny, 3);
  CHECK(fs::exists(fs::path(single) / "model.safetensors"));
  CHECK(fs::exists(fs::path(sharded) / "model.safetensors.index.json"));
  CHECK(fs::exists(fs::path(sharded) / "model-00003-of-00003.safetensors"));
  // The exact Hugging Face names are in the file.
  const auto file = io::SafeTensorsFile::open((fs::path(single) / "model.safetensors").string());
  for (const char* name :
       {"model.embed_tokens.weight", "model.layers.0.self_attn.q_a_proj.weight",
        "model.layers.0.self_attn.q_a_layernorm.weight", "model.layers.0.self_attn.q_b_proj.weight",
        "model.layers.0.self_attn.kv_a_proj_with_mqa.weight",
        "model.layers.0.self_attn.kv_a_layernorm.weight",
        "model.layers.0.self_attn.kv_b_proj.weight", "model.layers.0.self_attn.o_proj.weight",
        "model.layers.0.mlp.gate_proj.weight", "model.layers.1.mlp.gate.weight",
        "model.layers.1.mlp.gate.e_score_correction_bias",
        "model.layers.1.mlp.experts.15.down_proj.weight",
        "model.layers.1.mlp.shared_experts.up_proj.weight",
        "model.layers.3.post_attention_layernorm.weight", "model.norm.weight", "lm_head.weight"})
    CHECK(file.contains(name));

  const model::Model a = model::Model::load(single);
  const model::Model b = model::Model::load(sharded);
  const model::Model c = load(tiny);
  const auto la = porta_logits(a, prompt_ids()).to_f32();
  CHECK(la == porta_logits(b, prompt_ids()).to_f32());
  CHECK(la == porta_logits(c, prompt_ids()).to_f32());
  // bf16 matrices are views of the mapping; only stacking and the MLA split copy.
  const auto& stats = a.stats();
  CHECK(stats.mapped_bytes > 0);
  CHECK(stats.dequantized_bytes == 0);
  const std::string embed = "model.embed_tokens.weight";
  CHECK(a.weight(embed).to_f32() == file.get(embed).to_f32());
  const auto given = std::find_if(tiny.tensors.begin(), tiny.tensors.end(),
                                  [&](const auto& e) { return e.first == embed; });
  CHECK(c.weight(embed).data() == given->second.data());  // shared, not copied
  CHECK(a.weight("model.layers.1.moe.experts.gate").shape() == Shape{16, 32, 64});
}

TEST_CASE("FP8 dequantisation is exact on crafted blocks, partial edge blocks included",
          "[model]") {
  // 3 x 5 weights in 2 x 2 blocks: scales [2, 3], the last block row and column are partial.
  const std::vector<float> values{1.0f,   -2.0f, 0.5f,  448.0f,  -0.015625f,
                                  3.5f,   0.0f,  -0.0f, 6.0f,    0.001953125f,
                                  -1.75f, 2.25f, 96.0f, -240.0f, 0.125f};
  std::vector<Float8E4M3> bits;
  for (float v : values) bits.push_back(Float8E4M3::from_float(v));
  const Tensor w = Tensor::from_vector<Float8E4M3>({3, 5}, bits);
  const std::vector<float> scales{0.5f, 3.0f, 1e-3f, -2.0f, 7.25f, 1.0f / 3.0f};
  const Tensor s = Tensor::from_vector<float>({2, 3}, scales);
  const Tensor f32 = model::dequantize_fp8(w, s, {2, 2}, DType::F32, "w");
  const Tensor bf16 = model::dequantize_fp8(w, s, {2, 2}, DType::BF16, "w");
  REQUIRE(f32.shape() == Shape{3, 5});
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 5; ++c) {
      const float expected = f8e4m3_bits_to_f32(bits[static_cast<std::size_t>(r * 5 + c)].bits) *
                             scales[static_cast<std::size_t>((r / 2) * 3 + c / 2)];
      CHECK(f32.at_f32(r * 5 + c) == expected);
      CHECK(bf16.at_f32(r * 5 + c) == BFloat16::from_float(expected).to_float());
    }
  // The values above are all exact in e4m3, so the products are exactly value * scale.
  CHECK(f32.at_f32(3) == 448.0f * 3.0f);
  CHECK(f32.at_f32(14) == 0.125f * (1.0f / 3.0f));

  // A wrong scale shape, a NaN weight and a non-finite scale name the tensor.
  CHECK_THROWS_WITH(
      model::dequantize_fp8(w, Tensor::zeros({1, 3}, DType::F32), {2, 2}, DType::F32, "layer.q"),
      Catch::Contains("layer.q_scale_inv") && Catch::Contains("[2, 3]"));
  std::vector<Float8E4M3> with_nan = bits;
  with_nan[7].bits = 0x7f;
  CHECK_THROWS_WITH(model::dequantize_fp8(Tensor::from_vector<Float8E4M3>({3, 5}, with_nan), s,
                                          {2, 2}, DType::F32, "layer.k"),
                    Catch::Contains("layer.k") && Catch::Contains("NaN at [1, 2]"));
  std::vector<float> bad_scales = scales;
  bad_scales[4] = INFINITY;
  CHECK_THROWS_WITH(model::dequantize_fp8(w, Tensor::from_vector<float>({2, 3}, bad_scales), {2, 2},
                                          DType::F32, "layer.v"),
                    Catch::Contains("layer.v_scale_inv"));

  // quantize -> dequantize keeps every value within e4m3's relative precision of its block.
  std::vector<float> big(200 * 300);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = std::sin(0.37f * static_cast<float>(i));
  const Tensor original = Tensor::from_vector<float>({200, 300}, big);
  const auto [q, qs] = model::quantize_fp8(original, {128, 128});
  CHECK(qs.shape() == Shape{2, 3});
  const auto back = model::dequantize_fp8(q, qs, {128, 128}, DType::F32).to_f32();
  for (std::size_t i = 0; i < big.size(); ++i) REQUIRE(std::fabs(back[i] - big[i]) <= 0.0625f);
}

TEST_CASE("An FP8 checkpoint on disk loads with its scales, dequantised at load on request",
          "[model]") {
  const TinyModel tiny = tiny_model("deepseek_v3", 2, DType::BF16, true);
  const std::string dir = write_tiny("v3_fp8", tiny);
  const model::Model m = model::Model::load(dir, {.dequantize = true, .fp8_dtype = DType::F32});
  CHECK(m.stats().dequantized_bytes > 0);
  CHECK(m.weight("model.layers.0.self_attn.o_proj.weight").dtype() == DType::F32);
  const auto logits = porta_logits(m, prompt_ids()).to_f32();
  const HfReference ref(tiny.config_json, tiny.tensors);
  CHECK(max_abs_diff(logits, ref.forward(prompt_ids())) < 1e-3);
  // Without its scale the weight cannot be used.
  const std::string missing = "model.layers.2.mlp.experts.3.up_proj.weight_scale_inv";
  const std::string broken = model_tmpdir("v3_fp8_no_scale");
  model::write_checkpoint(broken, tiny.config_json, without(tiny, missing));
  CHECK_THROWS_WITH(model::Model::load(broken), Catch::Contains(missing));
}

TEST_CASE("Malformed checkpoints give errors naming the tensor or key", "[model]") {
  const TinyModel tiny = tiny_model("deepseek_v2", 2);

  SECTION("missing tensor") {
    const std::string name = "model.layers.1.mlp.experts.5.gate_proj.weight";
    const std::string dir = model_tmpdir("missing");
    model::write_checkpoint(dir, tiny.config_json, without(tiny, name));
    try {
      model::Model::load(dir);
      FAIL("loaded a checkpoint without " << name);
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::NotFound);
      CHECK_THAT(e.what(), Catch::Contains(name) && Catch::Contains("missing"));
    }
  }
  SECTION("wrong shape") {
    auto tensors = tiny.tensors;
    for (auto& [name, t] : tensors)
      if (name == "model.layers.0.self_attn.kv_b_proj.weight")
        t = Tensor::zeros({96, 16}, DType::BF16);
    const std::string dir = model_tmpdir("wrong_shape");
    model::write_checkpoint(dir, tiny.config_json, tensors);
    try {
      model::Model::load(dir);
      FAIL("loaded a checkpoint with a wrong shape");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::ShapeMismatch);
      CHECK_THAT(e.what(), Catch::Contains("model.layers.0.self_attn.kv_b_proj.weight") &&
                               Catch::Contains("[96, 16]") && Catch::Contains("[128, 16]"));
    }
  }
  SECTION("bad config values") {
    const auto bad = [&](const std::string& from, const std::string& to) {
      std::string text = tiny.config_json;
      const auto at = text.find(from);
      REQUIRE(at != std::string::npos);
      text.replace(at, from.size(), to);
      return text;
    };
    CHECK_THROWS_WITH(model::parse_config(bad("\"n_group\": 4", "\"n_group\": 3")),
                      Catch::Contains("'n_group'"));
    CHECK_THROWS_WITH(model::parse_config(bad("\"topk_method\": \"group_limited_greedy\"",
                                              "\"topk_method\": \"random\"")),
                      Catch::Contains("'topk_method'") && Catch::Contains("random"));
    CHECK_THROWS_WITH(model::parse_config(bad("\"hidden_size\": 64", "\"hidden_size\": \"64\"")),
                      Catch::Contains("'hidden_size'") && Catch::Contains("integer"));
    CHECK_THROWS_WITH(model::parse_config(bad("\"kv_lora_rank\": 16,", "")),
                      Catch::Contains("'kv_lora_rank'") && Catch::Contains("missing"));
    CHECK_THROWS_WITH(
        model::parse_config(bad("\"num_hidden_layers\": 3", "\"num_hidden_layers\": -3")),
        Catch::Contains("'num_hidden_layers'"));
    CHECK_THROWS_WITH(
        model::parse_config(bad("\"model_type\": \"deepseek_v2\"", "\"model_type\": \"llama\"")),
        Catch::Contains("'model_type'") && Catch::Contains("llama"));
    CHECK_THROWS_WITH(model::parse_config(bad("\"factor\": 8.0", "\"factor\": -1")),
                      Catch::Contains("'factor'"));
    CHECK_THROWS_WITH(
        model::parse_config(bad("\"num_experts_per_tok\": 3", "\"num_experts_per_tok\": 7")),
        Catch::Contains("'num_experts_per_tok'"));
    CHECK_THROWS_WITH(model::parse_config("{not json"), Catch::Contains("not valid JSON"));
    // A bad value in a config.json on disk names the file too.
    const std::string dir = model_tmpdir("bad_config");
    model::write_checkpoint(dir, bad("\"scoring_func\": \"softmax\"", "\"scoring_func\": \"relu\""),
                            tiny.tensors);
    CHECK_THROWS_WITH(model::Model::load(dir),
                      Catch::Contains("config.json") && Catch::Contains("'scoring_func'"));
  }
  SECTION("truncated shard") {
    const std::string dir = write_tiny("truncated", tiny, 2);
    const auto shard = fs::path(dir) / "model-00002-of-00002.safetensors";
    fs::resize_file(shard, fs::file_size(shard) - 100);
    try {
      model::Model::load(dir);
      FAIL("loaded a truncated shard");
    } catch (const Error& e) {
      CHECK_THAT(e.what(), Catch::Contains("model-00002-of-00002.safetensors"));
    }
  }
  SECTION("index naming a missing file") {
    const std::string dir = write_tiny("missing_shard", tiny, 2);
    fs::remove(fs::path(dir) / "model-00001-of-00002.safetensors");
    try {
      model::Model::load(dir);
      FAIL("loaded a checkpoint whose index names a missing shard");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::NotFound);
      CHECK_THAT(e.what(), Catch::Contains("model-00001-of-00002.safetensors"));
    }
  }
  SECTION("no config.json") {
    const std::string dir = write_tiny("no_config", tiny);
    fs::remove(fs::path(dir) / "config.json");
    CHECK_THROWS_WITH(model::Model::load(dir), Catch::Contains("config.json"));
  }
  SECTION("integer weights") {
    auto tensors = tiny.tensors;
    for (auto& [name, t] : tensors)
      if (name == "model.norm.weight") t = Tensor::zeros({64}, DType::I32);
    const std::string dir = model_tmpdir("int_weight");
    model::write_checkpoint(dir, tiny.config_json, tensors);
    CHECK_THROWS_WITH(model::Model::load(dir), Catch::Contains("model.norm.weight"));
  }
}

}  // namespace
}  // namespace porta::test::model_checkpoint_tests
