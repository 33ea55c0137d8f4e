// Real-shape presets and the streaming checkpoint writer: each preset's config is the published
// model (its parameter count matches the published one), --layers/--vocab cut it, and the
// streamed checkpoint (here of a tiny config, several shards) loads and runs, reproducibly.
#include <cmath>
#include <filesystem>

#include <catch2/catch.hpp>

#include <porta/io.hpp>

#include "model/model_test_support.hpp"

namespace porta::test::model_preset_tests {
namespace {

double parameters(const model::ModelConfig& c) {
  double total = 0;
  for (const auto& [name, shape] : model::expected_tensors(c))
    total += static_cast<double>(shape.numel());
  return total;
}

}  // namespace

TEST_CASE("The real presets have the published models' shapes and parameter counts",
          "[model][presets]") {
  // Published totals: DeepSeek-V2-Lite 15.7 B, DeepSeek-V3 671 B (main model, without the 14 B
  // of the multi-token-prediction module), Mixtral-8x7B 46.7 B, Qwen3-30B-A3B 30.5 B.
  const std::map<std::string, double> published{{"deepseek-v2-lite", 15.7e9},
                                                {"deepseek-v3", 671e9},
                                                {"mixtral-8x7b", 46.7e9},
                                                {"qwen3-30b-a3b", 30.5e9}};
  REQUIRE(model::real_presets().size() == published.size());
  for (const auto& preset : model::real_presets()) {
    INFO(preset);
    const auto c = model::parse_config(model::real_config_json(preset), preset);
    const double count = parameters(c);
    CHECK(std::fabs(count / published.at(preset) - 1) < 0.01);
    const auto cut = model::parse_config(model::real_config_json(preset, 2, 64), preset);
    CHECK(cut.num_layers == 2);
    CHECK(cut.vocab_size == 64);
    CHECK(cut.hidden_size == c.hidden_size);
    CHECK(cut.num_experts == c.num_experts);
  }
  const auto lite = model::parse_config(model::real_config_json("deepseek-v2-lite", 8), "lite");
  CHECK(lite.hidden_size == 2048);
  CHECK(lite.num_experts == 64);
  CHECK(lite.moe_intermediate_size == 1408);
  CHECK(lite.top_k == 6);
  CHECK(lite.kv_lora_rank == 512);
  CHECK(lite.q_lora_rank == 0);
  CHECK_THROWS_WITH(model::real_config_json("llama-70b"),
                    Catch::Contains("unknown preset 'llama-70b'") &&
                        Catch::Contains("deepseek-v2-lite"));
  CHECK_THROWS_WITH(model::real_config_json("mixtral-8x7b", 33),
                    Catch::Contains("32 layers") && Catch::Contains("--layers 33"));
}

TEST_CASE("A streamed random checkpoint loads, runs and is the same for the same seed",
          "[model][presets]") {
  namespace fs = std::filesystem;
  const std::string config_json = model::tiny_config_json("deepseek_v2");
  const std::string dir = model_tmpdir("streamed");
  const std::uint64_t bytes =
      model::write_random_checkpoint(dir, config_json, {.seed = 5, .dtype = DType::BF16}, 64 << 10);
  CHECK(fs::exists(fs::path(dir) / "model.safetensors.index.json"));
  const model::Model m = model::Model::load(dir);
  CHECK(m.stats().mapped_bytes == bytes);
  const auto& c = m.config();
  // Values follow their laws: norms in [0.9, 1.1], matrices within sqrt(3 / fan_in).
  const auto norm = m.weight("model.layers.1.input_layernorm.weight").to_f32();
  for (float v : norm) REQUIRE((v >= 0.89f && v <= 1.11f));
  const Tensor& down = m.weight("model.layers.1.moe.experts.down");
  const float bound = std::sqrt(3.0f / static_cast<float>(c.moe_intermediate_size)) * 1.01f;
  double sum_sq = 0;
  const auto values = down.to_f32();
  for (float v : values) {
    REQUIRE(std::fabs(v) <= bound);
    sum_sq += static_cast<double>(v) * v;
  }
  // Uniform on [-b, b] has variance b^2 / 3 = 1 / fan_in.
  CHECK(std::fabs(sum_sq / static_cast<double>(values.size()) * c.moe_intermediate_size - 1) <
        0.1);
  model::Session session(m, {.capacity = 8});
  const std::vector<std::int32_t> ids{1, 2, 3};
  for (float v : session.forward(ids).to_f32()) REQUIRE(std::isfinite(v));
  // The same seed writes the same bytes; another seed others.
  const std::string again = model_tmpdir("streamed_again");
  model::write_random_checkpoint(again, config_json, {.seed = 5, .dtype = DType::BF16}, 64 << 10);
  const std::string other = model_tmpdir("streamed_other");
  model::write_random_checkpoint(other, config_json, {.seed = 6, .dtype = DType::BF16});
  const auto a = io::Checkpoint::open(dir).get("model.layers.0.mlp.up_proj.weight").to_f32();
  CHECK(a == io::Checkpoint::open(again).get("model.layers.0.mlp.up_proj.weight").to_f32());
  CHECK(a != io::Checkpoint::open(other).get("model.layers.0.mlp.up_proj.weight").to_f32());
  CHECK_THROWS_WITH(
      model::write_random_checkpoint(other, config_json, {.seed = 1, .dtype = DType::I32}),
      Catch::Contains("f32, bf16 or f16"));
}

}  // namespace porta::test::model_preset_tests
