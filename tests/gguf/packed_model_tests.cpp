// GGUF models with their matrices kept packed: q8_0 and q4_K weights are views of the file's
// mapping (no copy) computed on in place by the quantized ops, and the logits equal those of the
// same file dequantized at load within the block kernels' rounding.
#include <catch2/catch.hpp>

#include <cmath>
#include <set>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include <porta/gguf.hpp>
#include <porta/model/gguf.hpp>

#include "gguf/gguf_model_support.hpp"
#include "gguf/gguf_test_support.hpp"
#include "model/model_test_support.hpp"

namespace gguf_packed_model_tests {

using namespace porta;
using gguf::GgmlType;
using gguf::GgufFile;

namespace {

// The tiny DeepSeek-V2-Lite-style model with a hidden width of 256, so that most projections
// hold whole K-quant super-blocks; rows that do not (o_proj's 64, the experts' down 288, as
// V2-Lite's 1408) fall back as llama.cpp's quantizer does (q4_K to q5_0, q3_K to iq4_nl) and
// kv_b's 16-wide ones to f16: the routed experts mix q4_K gate and up with a q5_0 down.
test::TinyModel wide_v2(std::uint64_t seed) {
  return test::reshaped_tiny_model(
      "deepseek_v2",
      {{"hidden_size", 256}, {"intermediate_size", 256}, {"moe_intermediate_size", 288}}, seed);
}

std::string write(const test::TinyModel& m, const std::string& name, GgmlType type) {
  const auto path = gguf::test::gguf_tmp(name);
  model::write_gguf_model(path, m.config, m.tensors, {.matrix_type = type});
  return path;
}

using test::relative_max_diff;

// The packed model's logits on reference and cpu against those of the file dequantized to f32:
// each product is within 1e-6 of its magnitude (the kernels' bound), and a few layers of norms
// and softmaxes carry that to the logits at about the same size.
void check_same_logits(const model::Model& packed, const model::Model& exact) {
  const auto prompt = test::prompt_ids();
  for (const std::string backend : {"reference", "cpu"}) {
    INFO(backend);
    const auto got = test::porta_logits(packed, prompt, backend).to_f32();
    const auto want = test::porta_logits(exact, prompt, backend).to_f32();
    REQUIRE(got.size() == want.size());
    CHECK(relative_max_diff(got, want) < 1e-5);
  }
}

}  // namespace

TEST_CASE("GGUF q8_0 and q4_K matrices are views of the mapping, not copies", "[gguf][packed]") {
  struct Case {
    const char* label;
    test::TinyModel m;
    GgmlType type;
  };
  const Case cases[] = {{"q8_0", test::tiny_model("deepseek_v2", 3, DType::F32), GgmlType::Q8_0},
                        {"q4_K", wide_v2(4), GgmlType::Q4_K}};
  for (const Case& c : cases) {
    DYNAMIC_SECTION(c.label) {
      const std::string path = write(c.m, std::string("packed_") + c.label + ".gguf", c.type);
      const GgufFile file = GgufFile::open(path);
      const model::GgufTensors t =
          model::gguf_hf_tensors(file, c.m.config, DType::F32, /*keep_blocks=*/true);
      int of_type = 0, experts = 0;
      for (const auto& [hf, q] : t.blocks) {
        INFO(hf);
        const std::string& source = t.block_sources.at(hf);
        const auto bytes = file.data(source);
        const auto* at = static_cast<const std::byte*>(q.data.data());
        // Inside the GGUF tensor's own bytes in the mapping, whole rows at a row boundary.
        CHECK(at >= bytes.data());
        CHECK(at + q.data.nbytes() <= bytes.data() + bytes.size());
        CHECK((at - bytes.data()) % static_cast<std::ptrdiff_t>(q.data.nbytes()) == 0);
        CHECK(t.made.count(hf) == 0);
        CHECK(q.scheme.ggml_type == file.tensor(source).type);
        of_type += q.scheme.ggml_type == c.type;
        experts += hf.find(".experts.") != std::string::npos;
        CHECK(t.tensors.count(hf) == 0);
      }
      CHECK(of_type > 0);
      CHECK(experts == 3 * 8 * 2);  // gate, up and down of 8 experts in 2 MoE layers
      // The embedding table stays packed too (quant_embedding gathers and dequantizes its rows).
      CHECK(t.blocks.count("model.embed_tokens.weight") == 1);
      CHECK(t.tensors.count("model.embed_tokens.weight") == 0);

      model::GgufLoadReport report;
      const model::Model packed = model::load_gguf(path, {}, &report);
      CHECK(report.packed_tensors == t.packed.size());
      CHECK_THAT(report.summary, Catch::Contains("kept") && Catch::Contains("packed"));
      const model::LoadStats& s = packed.stats();
      std::uint64_t packed_bytes = 0;
      for (const auto& [name, type] : t.packed) packed_bytes += file.tensor(name).nbytes;
      CHECK(s.quantized_bytes == packed_bytes);
      // The only copy is MLA's kv_b split, which every checkpoint makes.
      for (const auto& [why, n] : s.copies) CHECK_THAT(why, Catch::Contains("kv_b_proj"));
      CHECK(s.dequantized_bytes == 0);  // the embedding table too is kept in its blocks
      CHECK_THAT(packed.quant_format(), Catch::Contains(std::string(gguf::type_name(c.type))));
      REQUIRE(packed.quantized_weight("model.layers.1.moe.experts.up") != nullptr);
      CHECK(packed.quantized_weight("model.layers.1.moe.experts.up")->weight.data.shape()[0] == 8);
      CHECK(packed.quantized_weight("model.layers.1.moe.experts.up")->weight.scheme.ggml_type ==
            c.type);
      // q4_K's down projection (288 wide) is q5_0, llama.cpp's fallback.
      CHECK(packed.quantized_weight("model.layers.1.moe.experts.down")->weight.scheme.ggml_type ==
            (c.type == GgmlType::Q4_K ? GgmlType::Q5_0 : GgmlType::Q8_0));
    }
  }
}

TEST_CASE("GGUF logits from packed blocks equal the dequantized file's within the kernels' rounding",
          "[gguf][packed]") {
  struct Case {
    const char* label;
    test::TinyModel m;
    GgmlType type;
  };
  const Case cases[] = {{"deepseek_v2 q8_0", test::tiny_model("deepseek_v2", 5, DType::F32),
                         GgmlType::Q8_0},
                        {"mixtral q8_0", test::tiny_model("mixtral", 5, DType::F32), GgmlType::Q8_0},
                        {"deepseek_v2 q4_K (q5_0 expert down)", wide_v2(6), GgmlType::Q4_K},
                        {"deepseek_v2 q5_0", test::tiny_model("deepseek_v2", 7, DType::F32),
                         GgmlType::Q5_0},
                        {"deepseek_v2 q3_K (iq4_nl expert down)", wide_v2(8), GgmlType::Q3_K}};
  for (const Case& c : cases) {
    DYNAMIC_SECTION(c.label) {
      const std::string path = write(c.m, std::string("logits_") + c.label + ".gguf", c.type);
      model::GgufLoadReport report;
      const model::Model packed = model::load_gguf(
          path, {.dequantize_to = DType::F32, .activations = ActivationQuant::None}, &report);
      REQUIRE(report.packed_tensors > 0);
      CHECK_THAT(report.summary, Catch::Contains(std::string(gguf::type_name(c.type)) + ": "));
      // Dequantized to f32, the weights are exactly the blocks' values.
      const model::Model exact =
          model::load_gguf(path, {.dequantize_to = DType::F32, .keep_blocks = false});
      REQUIRE(exact.quantized_weight_names().empty());
      check_same_logits(packed, exact);
      if (std::string(c.label).starts_with("mixtral"))
        CHECK(packed.stats().copies.count("llama q/k rows reordered (packed blocks)") == 1);
      // --dequantize still dequantizes them.
      model::GgufLoadReport dq;
      const model::Model dequantized = model::load_gguf(
          path, {.load = {.dequantize = true}, .dequantize_to = DType::F32}, &dq);
      CHECK(dequantized.quantized_weight_names().empty());
      CHECK(dq.packed_tensors == 0);
      CHECK_THAT(dq.summary, Catch::Contains("(--dequantize)"));
    }
  }
}

TEST_CASE("a GGUF model keeps its embedding table in its blocks, with the exact table's logits",
          "[gguf][packed][embedding]") {
  for (const bool tied : {false, true}) {
    DYNAMIC_SECTION((tied ? "tied to the lm_head (no output.weight)" : "own lm_head")) {
      test::TinyModel m = test::tiny_model("mixtral", 11, DType::F32);
      if (tied)
        std::erase_if(m.tensors, [](const auto& t) { return t.first == "lm_head.weight"; });
      const std::string path =
          write(m, tied ? "embedding_tied_q8_0.gguf" : "embedding_q8_0.gguf", GgmlType::Q8_0);
      // bf16 for what it dequantizes (the default), with nothing to dequantize here; exact
      // products, to compare with the dequantized table within the kernels' rounding.
      model::GgufLoadReport report;
      const model::Model packed =
          model::load_gguf(path, {.activations = ActivationQuant::None}, &report);
      const model::QuantizedWeight* table = packed.quantized_weight("model.embed_tokens.weight");
      REQUIRE(table != nullptr);
      CHECK(table->weight.scheme.ggml_type == GgmlType::Q8_0);
      CHECK(packed.config().tie_word_embeddings == tied);
      CHECK((packed.quantized_weight("lm_head.weight") == nullptr) == tied);
      CHECK_THAT(report.summary, Catch::Contains("q8_0: token_embd.weight"));
      CHECK_THAT(report.summary, !Catch::Contains("at load"));
      const model::Model exact =
          model::load_gguf(path, {.dequantize_to = DType::F32, .keep_blocks = false});
      // (A table rounded to bf16, as loading did before, moves each element by up to 2^-9.)
      check_same_logits(packed, exact);
    }
  }
}

TEST_CASE("GGUF models with llama.cpp's 8-bit activations: cpu near the reference, both near the "
          "exact products",
          "[gguf][packed][q8]") {
  struct Case {
    const char* label;
    test::TinyModel m;
    GgmlType type;
  };
  const Case cases[] = {{"mixtral q8_0", test::tiny_model("mixtral", 5, DType::F32), GgmlType::Q8_0},
                        {"deepseek_v2 q4_K (q5_0 expert down)", wide_v2(6), GgmlType::Q4_K},
                        {"deepseek_v2 q3_K (iq4_nl expert down)", wide_v2(8), GgmlType::Q3_K}};
  // 24 tokens: the dense projections take the integer kernels (10 rows and more), the experts'
  // blocks mostly the rounded f32 path.
  std::vector<int> prompt;
  for (int i = 0; i < 24; ++i) prompt.push_back((i * 37 + 3) % 200);
  for (const Case& c : cases) {
    DYNAMIC_SECTION(c.label) {
      const std::string path = write(c.m, std::string("q8_") + c.label + ".gguf", c.type);
      // llama.cpp's numerics are a GGUF's default.
      model::GgufLoadReport report;
      const model::Model q8 = model::load_gguf(path, {.dequantize_to = DType::F32}, &report);
      CHECK_THAT(report.summary, Catch::Contains("activations rounded to llama.cpp's 8-bit blocks"));
      const model::Model exact = model::load_gguf(
          path, {.dequantize_to = DType::F32, .activations = ActivationQuant::None});
      const auto cpu = test::porta_logits(q8, prompt, "cpu").to_f32();
      const auto ref = test::porta_logits(q8, prompt, "reference").to_f32();
      const auto unrounded = test::porta_logits(exact, prompt, "cpu").to_f32();
      // Rounding to 8 bits is discontinuous: where the backends' norms differ by an ulp, a code
      // can land on the other side of a rounding boundary and move its product by one step of
      // the block (docs/gguf.md). Each op agrees within 1e-6 on the same input (the conformance
      // cases); whole models agree as far as those flips allow, on these random tiny models a
      // few percent of the largest logit.
      CHECK(relative_max_diff(cpu, ref) < 0.1);
      // The rounding of the activations visible against the exact products, at 8-bit size.
      const double rounding = relative_max_diff(cpu, unrounded);
      CHECK(rounding > 1e-5);
      CHECK(rounding < 0.5);
    }
  }
  const std::string path = write(test::tiny_model("mixtral", 5, DType::F32), "q8_bad.gguf",
                                 GgmlType::Q8_0);
  CHECK_THROWS_WITH(model::load_gguf(path, {.activations = ActivationQuant::DynamicInt8}),
                    Catch::Contains("GGUF activations: dynamic_int8 (none or ggml_q8 only"));
}

// A tiny model whose matrices hold whole K-quant super-blocks, of `layers` layers and
// `experts` experts.
test::TinyModel wide_model(const std::string& kind, int layers, int experts, std::uint64_t seed) {
  nlohmann::json changes = {
      {"hidden_size", 256}, {"intermediate_size", 256}, {"num_hidden_layers", layers}};
  if (kind == "mixtral") {
    changes["num_local_experts"] = experts;
  } else {
    changes["moe_intermediate_size"] = 256;
    changes["num_experts"] = experts;
  }
  return test::reshaped_tiny_model(kind, changes, seed);
}

TEST_CASE("GGUF recipes give each tensor the type llama-quantize gives it", "[gguf][packed]") {
  CHECK(model::parse_gguf_mix("q4_K_M") == model::GgufMix::Q4_K_M);
  CHECK(model::parse_gguf_mix("Q5_K_M") == model::GgufMix::Q5_K_M);
  CHECK_THROWS_WITH(model::parse_gguf_mix("q4_K_L"),
                    Catch::Contains("unknown GGUF recipe 'q4_K_L'"));

  // 8 layers: llama-quantize's use_more_bits picks 0 and 7 (the outer eighths) and 3 and 6
  // (every third between).
  const std::set<int> more_bits = {0, 3, 6, 7};
  const test::TinyModel qwen = wide_model("qwen3_moe", 8, 4, 21);
  for (const auto mix : {model::GgufMix::Q4_K_M, model::GgufMix::Q5_K_M}) {
    DYNAMIC_SECTION("qwen3_moe " << model::gguf_mix_name(mix)) {
      const GgmlType base = mix == model::GgufMix::Q4_K_M ? GgmlType::Q4_K : GgmlType::Q5_K;
      const std::string path = gguf::test::gguf_tmp("mix_" + model::gguf_mix_name(mix) + ".gguf");
      model::write_gguf_model(path, qwen.config, qwen.tensors, {.mix = mix});
      const GgufFile file = GgufFile::open(path);
      CHECK(file.get_int("general.file_type") == (mix == model::GgufMix::Q4_K_M ? 15 : 17));
      CHECK(file.tensor("output.weight").type == GgmlType::Q6_K);
      CHECK(file.tensor("token_embd.weight").type == base);
      for (int l = 0; l < 8; ++l) {
        INFO("layer " << l);
        const std::string blk = fmt::format("blk.{}.", l);
        const GgmlType more = more_bits.count(l) ? GgmlType::Q6_K : base;
        // Layer 1 is dense (the tiny config's mlp_only_layers): its ffn_down follows the same
        // rule as the experts'.
        const std::string ffn = l == 1 ? "" : "_exps";
        CHECK(file.tensor(blk + "attn_v.weight").type == more);
        CHECK(file.tensor(blk + "ffn_down" + ffn + ".weight").type == more);
        CHECK(file.tensor(blk + "attn_k.weight").type == base);
        CHECK(file.tensor(blk + "attn_q.weight").type == base);
        CHECK(file.tensor(blk + "ffn_gate" + ffn + ".weight").type == base);
        CHECK(file.tensor(blk + "ffn_up" + ffn + ".weight").type == base);
        // 4 heads of 32: rows of 128 take the fallback.
        CHECK(file.tensor(blk + "attn_output.weight").type ==
              (base == GgmlType::Q4_K ? GgmlType::Q5_0 : GgmlType::Q5_1));
        if (l != 1) CHECK(file.tensor(blk + "ffn_gate_inp.weight").type == GgmlType::F32);
      }
      if (mix == model::GgufMix::Q4_K_M) {
        // The q4_K/q6_K mix computes as the file dequantized does.
        const model::Model packed = model::load_gguf(
            path, {.dequantize_to = DType::F32, .activations = ActivationQuant::None});
        const model::Model exact =
            model::load_gguf(path, {.dequantize_to = DType::F32, .keep_blocks = false});
        check_same_logits(packed, exact);
      }
    }
  }
  SECTION("8 experts (Mixtral): q8_0 keys and values, Q4_K_M's attention output q5_K") {
    const test::TinyModel mixtral = wide_model("mixtral", 2, 8, 22);
    for (const auto mix : {model::GgufMix::Q4_K_M, model::GgufMix::Q5_K_M}) {
      const std::string path =
          gguf::test::gguf_tmp("mix_mixtral_" + model::gguf_mix_name(mix) + ".gguf");
      model::write_gguf_model(path, mixtral.config, mixtral.tensors, {.mix = mix});
      const GgufFile file = GgufFile::open(path);
      for (int l = 0; l < 2; ++l) {
        const std::string blk = fmt::format("blk.{}.", l);
        CHECK(file.tensor(blk + "attn_k.weight").type == GgmlType::Q8_0);
        CHECK(file.tensor(blk + "attn_v.weight").type == GgmlType::Q8_0);
        CHECK(file.tensor(blk + "attn_output.weight").type == GgmlType::Q5_K);
        CHECK(file.tensor(blk + "attn_q.weight").type ==
              (mix == model::GgufMix::Q4_K_M ? GgmlType::Q4_K : GgmlType::Q5_K));
      }
    }
  }
}

}  // namespace gguf_packed_model_tests
