// GGUF models: the tiny checkpoints of every family written as GGUF (with porta's writer, laid
// out as llama.cpp's converter does) give the same config, the same logits and the same greedy
// tokens as their safetensors copies; the layout transforms match the converter's formulas; bad
// files are errors naming the GGUF key or tensor.
#include <cmath>
#include <fstream>
#include <iterator>

#include <catch2/catch.hpp>

#include <porta/gguf.hpp>
#include <porta/model/gguf.hpp>

#include "gguf/gguf_test_support.hpp"
#include "model/model_test_support.hpp"

namespace gguf_model_tests {

using namespace porta;
using gguf::GgmlType;
using gguf::GgufFile;
using gguf::make_tensor;
using gguf::TensorInfo;
using gguf::TensorToWrite;

namespace {

struct Variant {
  std::string kind;
  bool split_kv_b = false;
};

std::string write_model(const test::TinyModel& m, const std::string& name,
                        const model::GgufExportOptions& options) {
  const auto path = gguf::test::gguf_tmp(name);
  model::write_gguf_model(path, m.config, m.tensors, options);
  return path;
}

GgmlType ggml_of(DType t) {
  return t == DType::F32 ? GgmlType::F32 : t == DType::F16 ? GgmlType::F16 : GgmlType::BF16;
}

std::vector<std::int32_t> greedy(const model::Model& m, const std::vector<int>& prompt) {
  model::Session session(m, {.backend = "reference", .capacity = 32});
  const std::vector<std::int32_t> ids(prompt.begin(), prompt.end());
  return model::generate(session, ids, {.max_new_tokens = 6}).tokens;
}

const Tensor& hf_tensor(const test::TinyModel& m, const std::string& name) {
  for (const auto& [n, t] : m.tensors)
    if (n == name) return t;
  FAIL("no tensor " << name);
  throw;
}

}  // namespace

TEST_CASE("GGUF copies of every tiny model give the safetensors model's config, logits and tokens",
          "[gguf][model]") {
  const Variant variants[] = {{"deepseek_v3"}, {"deepseek_v2"}, {"deepseek_v2", true},
                              {"mixtral"},     {"qwen2_moe"},   {"qwen3_moe"}};
  for (const Variant& v : variants)
    for (DType dtype : {DType::BF16, DType::F32, DType::F16}) {
      DYNAMIC_SECTION(v.kind << (v.split_kv_b ? " split kv_b " : " ") << dtype_name(dtype)) {
        const test::TinyModel m = test::tiny_model(v.kind, 11, dtype);
        const std::string path =
            write_model(m, v.kind + "_" + std::string(dtype_name(dtype)) + ".gguf",
                        {.matrix_type = ggml_of(dtype), .split_kv_b = v.split_kv_b});
        const GgufFile file = GgufFile::open(path);
        CHECK(file.contains("blk.0.attn_k_b.weight") == v.split_kv_b);

        const model::ModelConfig c = model::gguf_config(file);
        const model::ModelConfig& e = m.config;
        CHECK(c.family == e.family);
        CHECK(c.vocab_size == e.vocab_size);
        CHECK(c.hidden_size == e.hidden_size);
        CHECK(c.num_layers == e.num_layers);
        CHECK(c.num_heads == e.num_heads);
        CHECK(c.num_kv_heads == e.num_kv_heads);
        CHECK(c.head_dim == e.head_dim);
        CHECK(c.q_lora_rank == e.q_lora_rank);
        CHECK(c.kv_lora_rank == e.kv_lora_rank);
        CHECK(c.qk_nope_head_dim == e.qk_nope_head_dim);
        CHECK(c.v_head_dim == e.v_head_dim);
        CHECK(c.num_experts == e.num_experts);
        CHECK(c.top_k == e.top_k);
        CHECK(c.moe_intermediate_size == e.moe_intermediate_size);
        CHECK(c.shared_intermediate_size == e.shared_intermediate_size);
        CHECK(c.first_k_dense_replace == e.first_k_dense_replace);
        CHECK(c.mlp_only_layers == e.mlp_only_layers);
        CHECK(c.attention_bias == e.attention_bias);
        CHECK(c.qk_norm == e.qk_norm);
        CHECK(c.rms_norm_eps == e.rms_norm_eps);
        CHECK(c.rope.theta == e.rope.theta);
        CHECK(c.rope.scaling.type == e.rope.scaling.type);
        CHECK(c.rope.scaling.factor == e.rope.scaling.factor);
        CHECK(c.rope.scaling.mscale == Approx(e.rope.scaling.mscale));
        CHECK(c.rope.scaling.mscale_all_dim == Approx(e.rope.scaling.mscale_all_dim));
        CHECK(c.router.score == e.router.score);
        CHECK(c.router.num_groups == e.router.num_groups);
        CHECK(c.router.topk_groups == e.router.topk_groups);
        CHECK(c.router.group_score == e.router.group_score);
        CHECK(c.router.use_bias == e.router.use_bias);
        CHECK(c.router.renormalize == e.router.renormalize);
        CHECK(c.router.scale == e.router.scale);

        model::GgufLoadReport report;
        const model::Model from_gguf =
            model::load_gguf(path, {.dequantize_to = DType::F32}, &report);
        CHECK(report.dequantized_tensors == 0);
        CHECK(report.summary.empty());
        const model::Model from_safetensors = test::load(m);
        const auto prompt = test::prompt_ids();
        const std::vector<float> expected = test::porta_logits(from_safetensors, prompt).to_f32();
        const std::vector<float> got = test::porta_logits(from_gguf, prompt).to_f32();
        REQUIRE(got.size() == expected.size());
        // The same bytes (only reordered, and for split kv_b transposed and back): the same
        // logits up to the order of float additions, which does not change either.
        double worst = 0;
        for (std::size_t i = 0; i < got.size(); ++i)
          worst = std::max(worst, static_cast<double>(std::fabs(got[i] - expected[i])));
        CHECK(worst <= 1e-5);
        CHECK(greedy(from_gguf, prompt) == greedy(from_safetensors, prompt));
      }
    }
}

TEST_CASE("block-quantized GGUF models dequantize at load (keep_blocks off) exactly as the blocks "
          "define",
          "[gguf][model]") {
  for (const std::string kind : {"mixtral", "deepseek_v2"}) {
    DYNAMIC_SECTION(kind) {
      const test::TinyModel m = test::tiny_model(kind, 5, DType::F32);
      const std::string path = write_model(m, kind + "_q8_0.gguf", {.matrix_type = GgmlType::Q8_0});
      // The expected weights: each matrix whose rows hold whole 32-element blocks quantized and
      // dequantized as q8_0 (whole rows move unchanged through the converter's permutes and
      // expert merging, so blocks are the same), other matrices rounded to f16, vectors and the
      // router kept in f32.
      std::map<std::string, Tensor> expected_weights;
      int quantized = 0;
      for (const auto& [name, t] : m.tensors) {
        std::vector<float> v = t.to_f32();
        const bool router = name.ends_with("gate.weight") && name.find("proj") == std::string::npos;
        if (t.shape().rank() == 2 && !router) {
          if (t.shape()[1] % 32 == 0) {
            std::vector<std::byte> blocks(gguf::row_bytes(GgmlType::Q8_0, v.size()));
            gguf::quantize(GgmlType::Q8_0, v, blocks);
            gguf::dequantize(GgmlType::Q8_0, blocks, v);
            ++quantized;
          } else {
            for (float& x : v) x = Half::from_float(x).to_float();
          }
        }
        expected_weights[name] = Tensor::from_f32(t.shape(), DType::F32, v);
      }
      REQUIRE(quantized > 0);
      model::GgufLoadReport report;
      const model::Model from_gguf =
          model::load_gguf(path, {.dequantize_to = DType::F32, .keep_blocks = false}, &report);
      CHECK(report.dequantized_tensors > 0);
      CHECK(report.packed_tensors == 0);
      CHECK_THAT(report.summary, Catch::Contains("q8_0: token_embd.weight") &&
                                     Catch::Contains("blk.*.attn_output.weight") &&
                                     Catch::Contains("dequantized") &&
                                     Catch::Contains("the other matrices stay packed"));
      const model::Model expected_model = model::Model::from_tensors(m.config, expected_weights);
      const auto prompt = test::prompt_ids();
      CHECK(test::porta_logits(from_gguf, prompt).to_f32() ==
            test::porta_logits(expected_model, prompt).to_f32());
      // And close to the unquantized model: q8_0 keeps about 2-3 significant digits.
      const std::vector<float> q = test::porta_logits(from_gguf, prompt).to_f32();
      const std::vector<float> full = test::porta_logits(test::load(m), prompt).to_f32();
      double err = 0, ref = 0;
      for (std::size_t i = 0; i < q.size(); ++i) {
        err += (q[i] - full[i]) * static_cast<double>(q[i] - full[i]);
        ref += full[i] * static_cast<double>(full[i]);
      }
      CHECK(std::sqrt(err / ref) < 0.05);
      // bf16 is the default dequantization dtype.
      const model::Model bf16 = model::load_gguf(path, {.keep_blocks = false});
      CHECK(bf16.weight("model.layers.0.self_attn.o_proj.weight").dtype() == DType::BF16);
    }
  }
}

TEST_CASE("GGUF layouts follow llama.cpp's converter: q/k permute, merged experts, k_b/v_b",
          "[gguf][model]") {
  SECTION("llama q/k rows: reshape(heads, 2, d/2, K).swapaxes(1, 2)") {
    const test::TinyModel m = test::tiny_model("mixtral", 2, DType::F32);
    const GgufFile f = GgufFile::open(write_model(m, "layout_mixtral.gguf", {.matrix_type = GgmlType::F32}));
    for (const auto& [proj, heads] :
         {std::pair{"q", m.config.num_heads}, std::pair{"k", m.config.num_kv_heads}}) {
      const Tensor hf = hf_tensor(m, fmt::format("model.layers.1.self_attn.{}_proj.weight", proj));
      const Tensor g = f.view(fmt::format("blk.1.attn_{}.weight", proj));
      REQUIRE(g.shape() == hf.shape());
      const auto d = hf.shape()[0] / heads, cols = hf.shape()[1];
      // GGUF row (h, j, i) (flattened h * d + 2 j + i) is HF row (h, i, j) (h * d + i * d/2 + j).
      for (std::int64_t h = 0; h < heads; ++h)
        for (std::int64_t j = 0; j < d / 2; ++j)
          for (std::int64_t i = 0; i < 2; ++i)
            for (std::int64_t col = 0; col < cols; col += 7)
              REQUIRE(g.at_f32((h * d + 2 * j + i) * cols + col) ==
                      hf.at_f32((h * d + i * (d / 2) + j) * cols + col));
    }
    // v is not permuted; merged experts are [E, rows, cols] with dims {cols, rows, E}.
    CHECK(f.view("blk.0.attn_v.weight").to_f32() ==
          hf_tensor(m, "model.layers.0.self_attn.v_proj.weight").to_f32());
    const TensorInfo& up = f.tensor("blk.1.ffn_up_exps.weight");
    CHECK(up.dims == std::vector<std::uint64_t>{64, 96, 4});
    const std::vector<float> merged = f.view("blk.1.ffn_up_exps.weight").to_f32();
    const std::vector<float> e2 = hf_tensor(m, "model.layers.1.block_sparse_moe.experts.2.w3.weight").to_f32();
    CHECK(std::equal(e2.begin(), e2.end(), merged.begin() + 2 * 96 * 64));
  }
  SECTION("deepseek2 k_b [H, r, nope] transposed, v_b [H, v, r]") {
    const test::TinyModel m = test::tiny_model("deepseek_v2", 2, DType::F32);
    const GgufFile f = GgufFile::open(
        write_model(m, "layout_ds2.gguf", {.matrix_type = GgmlType::F32, .split_kv_b = true}));
    const auto& c = m.config;
    const Tensor kv = hf_tensor(m, "model.layers.2.self_attn.kv_b_proj.weight");
    const Tensor kb = f.view("blk.2.attn_k_b.weight"), vb = f.view("blk.2.attn_v_b.weight");
    REQUIRE(kb.shape() == Shape{c.num_heads, c.kv_lora_rank, c.qk_nope_head_dim});
    REQUIRE(vb.shape() == Shape{c.num_heads, c.v_head_dim, c.kv_lora_rank});
    CHECK_FALSE(f.contains("blk.2.attn_kv_b.weight"));
    const auto r = c.kv_lora_rank, nope = c.qk_nope_head_dim, vd = c.v_head_dim;
    for (std::int64_t h = 0; h < c.num_heads; ++h)
      for (std::int64_t j = 0; j < r; ++j) {
        for (std::int64_t i = 0; i < nope; ++i)
          REQUIRE(kb.at_f32((h * r + j) * nope + i) == kv.at_f32((h * (nope + vd) + i) * r + j));
        for (std::int64_t i = 0; i < vd; ++i)
          REQUIRE(vb.at_f32((h * vd + i) * r + j) == kv.at_f32((h * (nope + vd) + nope + i) * r + j));
      }
    CHECK(f.get_int("deepseek2.attention.key_length_mla") == nope + c.qk_rope_head_dim);
    CHECK(f.get_string("general.architecture") == "deepseek2");
  }
}

TEST_CASE("the GGUF writer refuses a Hugging Face tensor given twice or of another shape",
          "[gguf][model]") {
  // Each GGUF tensor is stored once its parts are in; another part after that is an error, not
  // a silent overwrite (nor a write into the freed values).
  const test::TinyModel m = test::tiny_model("qwen3_moe", 1, DType::BF16);
  for (const std::string& name : {std::string("model.layers.0.self_attn.q_proj.weight"),
                                  std::string("model.layers.2.mlp.experts.0.down_proj.weight")}) {
    INFO(name);
    auto tensors = m.tensors;
    tensors.emplace_back(name, hf_tensor(m, name));
    REQUIRE_PORTA_ERROR(model::gguf_from_hf(m.config, tensors), ErrorCode::InvalidArgument,
                        "is given more parts than its");
  }
  // An expert of another shape would have been copied past the merged tensor's end.
  auto tensors = m.tensors;
  for (auto& [name, t] : tensors)
    if (name == "model.layers.2.mlp.experts.1.down_proj.weight")
      t = Tensor::from_f32(
          {t.shape()[0] + 1, t.shape()[1]}, DType::BF16,
          std::vector<float>(static_cast<std::size_t>((t.shape()[0] + 1) * t.shape()[1]), 0.5f));
  REQUIRE_PORTA_ERROR(model::gguf_from_hf(m.config, tensors), ErrorCode::ShapeMismatch,
                      "'model.layers.2.mlp.experts.1.down_proj.weight' is [");
}

TEST_CASE("a GGUF written from tensors made one at a time is the same file", "[gguf][model]") {
  // write_gguf_model's HfTensorMaker with random_weight(): the bytes of the whole-model write,
  // for a merged-expert model and a recipe; a tensor of the wrong shape is an error naming it.
  for (const std::string kind : {"mixtral", "deepseek_v2"}) {
    INFO(kind);
    const model::ModelConfig config = model::parse_config(model::tiny_config_json(kind), kind);
    const model::RandomWeightsOptions random{.seed = 5, .dtype = DType::BF16};
    const model::GgufExportOptions options{.matrix_type = GgmlType::Q8_0};
    const auto whole = gguf::test::gguf_tmp("whole_" + kind + ".gguf");
    const auto parts = gguf::test::gguf_tmp("parts_" + kind + ".gguf");
    model::write_gguf_model(whole, config, model::random_weights(config, random), options);
    int made = 0;
    model::write_gguf_model(
        parts, config,
        [&](const std::string& name, const Shape& shape) {
          ++made;
          return model::random_weight(name, shape, random);
        },
        options);
    CHECK(made == static_cast<int>(model::expected_tensors(config).size()));
    std::ifstream a(whole, std::ios::binary), b(parts, std::ios::binary);
    const std::string bytes_a((std::istreambuf_iterator<char>(a)), {});
    const std::string bytes_b((std::istreambuf_iterator<char>(b)), {});
    CHECK(bytes_a.size() > 1000);
    CHECK(bytes_a == bytes_b);
    REQUIRE_PORTA_ERROR(model::write_gguf_model(
                            parts, config,
                            [&](const std::string& name, const Shape& shape) {
                              return model::random_weight(
                                  name, name.ends_with("norm.weight") ? Shape{3} : shape, random);
                            },
                            options),
                        ErrorCode::ShapeMismatch, "norm.weight' is [3]");
  }
}

TEST_CASE("bad GGUF models are errors naming the GGUF key or tensor", "[gguf][model]") {
  const test::TinyModel m = test::tiny_model("qwen3_moe", 1, DType::BF16);
  auto metadata = model::gguf_metadata(m.config);
  auto tensors = model::gguf_from_hf(m.config, m.tensors);
  const auto path = gguf::test::gguf_tmp("bad_model.gguf");
  auto write_and_load = [&](const std::vector<std::pair<std::string, gguf::Value>>& md,
                            const std::vector<TensorToWrite>& ts) {
    gguf::write_gguf(path, md, ts);
    return model::load_gguf(path);
  };
  SECTION("missing tensor") {
    auto ts = tensors;
    ts.erase(std::find_if(ts.begin(), ts.end(),
                          [](const auto& t) { return t.name == "blk.2.ffn_down_exps.weight"; }));
    REQUIRE_PORTA_ERROR(write_and_load(metadata, ts), ErrorCode::NotFound,
                        "tensor 'blk.2.ffn_down_exps.weight' (Hugging Face "
                        "'model.layers.2.mlp.experts.0.down_proj.weight') is missing");
  }
  SECTION("wrong shape") {
    auto ts = tensors;
    for (auto& t : ts)
      if (t.name == "blk.0.attn_q_norm.weight")
        t = make_tensor(t.name, {16}, GgmlType::F32, std::vector<float>(16, 1.0f));
    REQUIRE_PORTA_ERROR(write_and_load(metadata, ts), ErrorCode::ShapeMismatch,
                        "tensor 'blk.0.attn_q_norm.weight' (Hugging Face "
                        "'model.layers.0.self_attn.q_norm.weight') has shape [16]");
  }
  SECTION("a type porta cannot dequantize") {
    auto ts = tensors;
    for (auto& t : ts)
      if (t.name == "blk.0.attn_output.weight") {
        t.type = GgmlType::IQ2_XXS;
        t.dims = {256, 16};
        t.data.assign(16 * 66, std::byte{0});
      }
    REQUIRE_PORTA_ERROR(write_and_load(metadata, ts), ErrorCode::Unsupported,
                        "'blk.0.attn_output.weight'");
  }
  SECTION("missing and mistyped keys") {
    auto md = metadata;
    md.erase(std::find_if(md.begin(), md.end(),
                          [](const auto& kv) { return kv.first == "qwen3moe.expert_count"; }));
    REQUIRE_PORTA_ERROR(write_and_load(md, tensors), ErrorCode::NotFound,
                        "metadata key 'qwen3moe.expert_count' is missing");
    md = metadata;
    for (auto& [key, value] : md)
      if (key == "qwen3moe.block_count") value = gguf::Value::str("three");
    REQUIRE_PORTA_ERROR(write_and_load(md, tensors), ErrorCode::CorruptFile,
                        "'qwen3moe.block_count' is string");
    md = metadata;
    for (auto& [key, value] : md)
      if (key == "qwen3moe.embedding_length") value = gguf::Value::u32(0);
    REQUIRE_PORTA_ERROR(write_and_load(md, tensors), ErrorCode::InvalidArgument,
                        "'qwen3moe.embedding_length' is 0");
  }
  SECTION("unsupported architectures") {
    auto md = metadata;
    md[0].second = gguf::Value::str("gpt2");
    REQUIRE_PORTA_ERROR(write_and_load(md, tensors), ErrorCode::Unsupported,
                        "general.architecture 'gpt2'");
    const test::TinyModel mix = test::tiny_model("mixtral", 1, DType::BF16);
    md = model::gguf_metadata(mix.config);
    for (auto& [key, value] : md)
      if (key == "llama.expert_count") value = gguf::Value::u32(0);
    REQUIRE_PORTA_ERROR(write_and_load(md, model::gguf_from_hf(mix.config, mix.tensors)),
                        ErrorCode::Unsupported, "without experts");
  }
}

}  // namespace gguf_model_tests
