// deepseek2's kv_b in a GGUF kept in its blocks: the split attn_k_b / attn_v_b of current
// llama.cpp files become the absorbed attention's two per-head products as they are, and an
// attn_kv_b keeps its value half packed (its key half is multiplied by columns, so it is
// dequantized to be transposed). Logits equal the file dequantized at load within the block
// kernels' rounding, on the reference and the cpu backend, prompt and decode.
#include <catch2/catch.hpp>

#include <algorithm>

#include <fmt/format.h>

#include <porta/gguf.hpp>
#include <porta/model/gguf.hpp>

#include "gguf/gguf_model_support.hpp"
#include "gguf/gguf_test_support.hpp"
#include "model/model_test_support.hpp"

namespace gguf_mla_packed_tests {

using namespace porta;
using gguf::GgmlType;
using gguf::GgufFile;

namespace {

// The tiny DeepSeek-V2-Lite-style model with MLA widths that hold whole 32-element blocks
// (kv_lora_rank 64, nope and v 32), so that kv_b and its split halves quantize.
test::TinyModel mla_model(std::uint64_t seed) {
  return test::reshaped_tiny_model(
      "deepseek_v2", {{"kv_lora_rank", 64}, {"qk_nope_head_dim", 32}, {"v_head_dim", 32}}, seed);
}

using test::relative_max_diff;

std::vector<std::int32_t> greedy(const model::Model& m, const std::string& backend) {
  model::Session session(m, {.backend = backend, .capacity = 32});
  const std::vector<std::int32_t> prompt{3, 17, 5, 99, 42};
  return model::generate(session, prompt, {.max_new_tokens = 8}).tokens;
}

std::string layer_name(std::int64_t l, const char* rest) {
  return fmt::format("model.layers.{}.self_attn.{}", l, rest);
}

}  // namespace

TEST_CASE("a GGUF's MLA kv_b stays in its blocks: split halves as stored, attn_kv_b's value half",
          "[gguf][packed][mla]") {
  const test::TinyModel m = mla_model(21);
  const auto& c = m.config;
  const auto heads = c.num_heads, r = c.kv_lora_rank, nope = c.qk_nope_head_dim, vd = c.v_head_dim;
  for (const bool split : {true, false})
    for (const GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_0}) {
      DYNAMIC_SECTION((split ? "attn_k_b + attn_v_b " : "attn_kv_b ") << gguf::type_name(type)) {
        const std::string path = gguf::test::gguf_tmp(
            fmt::format("mla_{}_{}.gguf", split ? "split" : "kv_b", gguf::type_name(type)));
        model::write_gguf_model(path, c, m.tensors, {.matrix_type = type, .split_kv_b = split});
        const GgufFile file = GgufFile::open(path);

        // What the import hands the loader: views of the file's blocks, under the halves' names
        // for a split file (kv_b_proj itself is not made).
        const model::GgufTensors t = model::gguf_hf_tensors(file, c, DType::F32, true);
        for (std::int64_t l = 0; l < c.num_layers; ++l) {
          INFO("layer " << l);
          const std::string kv_b = layer_name(l, "kv_b_proj.weight");
          CHECK(t.tensors.count(kv_b) == 0);
          CHECK(t.blocks.count(kv_b) == (split ? 0u : 1u));
          if (!split) continue;
          const std::string halves[] = {layer_name(l, "k_b_proj.weight"),
                                        layer_name(l, "v_b_proj.weight")};
          const Shape shapes[] = {{heads, r, nope}, {heads, vd, r}};
          for (int i = 0; i < 2; ++i) {
            REQUIRE(t.blocks.count(halves[i]) == 1);
            const QuantizedTensor& q = t.blocks.at(halves[i]);
            CHECK(q.shape == shapes[i]);
            CHECK(q.scheme.ggml_type == type);
            const auto bytes = file.data(t.block_sources.at(halves[i]));
            CHECK(q.data.data() == bytes.data());  // the file's own bytes, no copy
            CHECK(q.data.nbytes() == bytes.size());
            CHECK(t.made.count(halves[i]) == 0);
          }
        }

        model::GgufLoadReport report;
        const model::Model packed = model::load_gguf(
            path, {.dequantize_to = DType::F32, .activations = ActivationQuant::None}, &report);
        for (std::int64_t l = 0; l < c.num_layers; ++l) {
          INFO("layer " << l);
          const auto* values = packed.quantized_weight(layer_name(l, "kv_b_proj.v_absorb"));
          REQUIRE(values != nullptr);
          CHECK(values->weight.shape == Shape{heads, vd, r});
          CHECK(values->weight.scheme.ggml_type == type);
          const auto* keys = packed.quantized_weight(layer_name(l, "kv_b_proj.k_absorb"));
          CHECK((keys != nullptr) == split);
        }
        if (split) {
          CHECK(packed.stats().copies.empty());
          CHECK(packed.stats().dequantized_bytes == 0);
        } else {
          CHECK_THAT(report.summary,
                     Catch::Contains("attn_kv_b") && Catch::Contains("key halves dequantized"));
          CHECK(packed.stats().copies.count(
                    "MLA kv_b_proj's value half, packed rows regathered per head") == 1);
          CHECK(packed.stats().dequantized_bytes ==
                static_cast<std::uint64_t>(c.num_layers * heads * nope * r) * sizeof(float));
        }

        // The same numbers as every weight dequantized at load, prompt and decode.
        const model::Model exact =
            model::load_gguf(path, {.dequantize_to = DType::F32, .keep_blocks = false});
        REQUIRE(exact.quantized_weight_names().empty());
        const auto prompt = test::prompt_ids();
        for (const std::string backend : {"reference", "cpu"}) {
          INFO(backend);
          const auto got = test::porta_logits(packed, prompt, backend).to_f32();
          const auto want = test::porta_logits(exact, prompt, backend).to_f32();
          REQUIRE(got.size() == want.size());
          CHECK(relative_max_diff(got, want) < 1e-5);
          CHECK(greedy(packed, backend) == greedy(exact, "reference"));
        }
        // llama.cpp's 8-bit activations run through the halves too: cpu near the reference.
        const model::Model q8 = model::load_gguf(path, {.dequantize_to = DType::F32});
        const auto cpu = test::porta_logits(q8, prompt, "cpu").to_f32();
        const auto ref = test::porta_logits(q8, prompt, "reference").to_f32();
        CHECK(relative_max_diff(cpu, ref) < 0.1);
        CHECK(relative_max_diff(cpu, test::porta_logits(exact, prompt, "cpu").to_f32()) < 0.5);
        // --dequantize takes the halves (split or not) into f32 like every other matrix.
        const model::Model dequantized =
            model::load_gguf(path, {.load = {.dequantize = true}, .dequantize_to = DType::F32});
        CHECK(dequantized.quantized_weight_names().empty());
        CHECK(relative_max_diff(test::porta_logits(dequantized, prompt, "cpu").to_f32(),
                                test::porta_logits(exact, prompt, "cpu").to_f32()) < 1e-6);
      }
    }
}

TEST_CASE("a split kv_b with a half missing or misshapen is an error naming the GGUF tensor",
          "[gguf][packed][mla]") {
  const test::TinyModel m = mla_model(22);
  const auto metadata = model::gguf_metadata(m.config, {.split_kv_b = true});
  const auto tensors =
      model::gguf_from_hf(m.config, m.tensors, {.matrix_type = GgmlType::Q8_0, .split_kv_b = true});
  const auto path = gguf::test::gguf_tmp("mla_bad.gguf");
  SECTION("a half missing") {
    auto ts = tensors;
    ts.erase(std::find_if(ts.begin(), ts.end(),
                          [](const auto& t) { return t.name == "blk.1.attn_v_b.weight"; }));
    gguf::write_gguf(path, metadata, ts);
    REQUIRE_PORTA_ERROR(model::load_gguf(path), ErrorCode::NotFound,
                        "'blk.1.attn_kv_b.weight' (Hugging Face "
                        "'model.layers.1.self_attn.kv_b_proj.weight') is missing, and so is its "
                        "split form 'blk.1.attn_k_b.weight' + 'blk.1.attn_v_b.weight'");
  }
  SECTION("a half of another shape") {
    auto ts = tensors;
    for (auto& t : ts)
      if (t.name == "blk.0.attn_k_b.weight")
        t = gguf::make_tensor(t.name, {32, 64, 2}, GgmlType::F32, std::vector<float>(4096, 0.5f));
    gguf::write_gguf(path, metadata, ts);
    REQUIRE_PORTA_ERROR(model::load_gguf(path), ErrorCode::ShapeMismatch,
                        "tensor 'blk.0.attn_k_b.weight' (Hugging Face "
                        "'model.layers.0.self_attn.k_b_proj.weight') has shape [32, 64, 2] "
                        "(GGUF dims reversed) but the config implies [4, 64, 32]");
  }
}

}  // namespace gguf_mla_packed_tests
