// Tiny presets, the tensor list a config implies, seeded random weights and the checkpoint
// writer (single file or sharded with an index).
#include <porta/model/checkpoint_gen.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <porta/io.hpp>

namespace porta::model {

namespace {

using nlohmann::json;
using Names = std::vector<std::pair<std::string, Shape>>;

json tiny_deepseek_v3() {
  return {{"architectures", {"DeepseekV3ForCausalLM"}},
          {"model_type", "deepseek_v3"},
          {"vocab_size", 256},
          {"hidden_size", 64},
          {"intermediate_size", 128},
          {"moe_intermediate_size", 32},
          {"num_hidden_layers", 4},
          {"num_attention_heads", 4},
          {"num_key_value_heads", 4},
          {"n_shared_experts", 1},
          {"n_routed_experts", 16},
          {"routed_scaling_factor", 2.5},
          {"kv_lora_rank", 16},
          {"q_lora_rank", 32},
          {"qk_rope_head_dim", 8},
          {"qk_nope_head_dim", 16},
          {"v_head_dim", 16},
          {"topk_method", "noaux_tc"},
          {"scoring_func", "sigmoid"},
          {"n_group", 4},
          {"topk_group", 2},
          {"num_experts_per_tok", 4},
          {"first_k_dense_replace", 1},
          {"moe_layer_freq", 1},
          {"norm_topk_prob", true},
          {"hidden_act", "silu"},
          {"max_position_embeddings", 256},
          {"rms_norm_eps", 1e-6},
          {"rope_theta", 10000.0},
          {"rope_scaling",
           {{"type", "yarn"},
            {"factor", 4.0},
            {"original_max_position_embeddings", 64},
            {"beta_fast", 32},
            {"beta_slow", 1},
            {"mscale", 1.0},
            {"mscale_all_dim", 1.0}}},
          {"tie_word_embeddings", false},
          {"attention_bias", false},
          {"torch_dtype", "bfloat16"}};
}

json tiny_deepseek_v2() {
  return {{"architectures", {"DeepseekV2ForCausalLM"}},
          {"model_type", "deepseek_v2"},
          {"vocab_size", 256},
          {"hidden_size", 64},
          {"intermediate_size", 128},
          {"moe_intermediate_size", 32},
          {"num_hidden_layers", 3},
          {"num_attention_heads", 4},
          {"num_key_value_heads", 4},
          {"n_shared_experts", 2},
          {"n_routed_experts", 8},
          {"routed_scaling_factor", 1.5},
          {"kv_lora_rank", 16},
          {"q_lora_rank", nullptr},
          {"qk_rope_head_dim", 8},
          {"qk_nope_head_dim", 16},
          {"v_head_dim", 16},
          {"topk_method", "group_limited_greedy"},
          {"scoring_func", "softmax"},
          {"n_group", 4},
          {"topk_group", 2},
          {"num_experts_per_tok", 3},
          {"first_k_dense_replace", 1},
          {"moe_layer_freq", 1},
          {"norm_topk_prob", false},
          {"hidden_act", "silu"},
          {"max_position_embeddings", 256},
          {"rms_norm_eps", 1e-6},
          {"rope_theta", 10000.0},
          {"rope_scaling",
           {{"type", "yarn"},
            {"factor", 8.0},
            {"original_max_position_embeddings", 32},
            {"beta_fast", 32},
            {"beta_slow", 1},
            {"mscale", 0.707},
            {"mscale_all_dim", 0.707}}},
          {"tie_word_embeddings", false},
          {"torch_dtype", "bfloat16"}};
}

json tiny_mixtral() {
  return {{"architectures", {"MixtralForCausalLM"}},
          {"model_type", "mixtral"},
          {"vocab_size", 256},
          {"hidden_size", 64},
          {"intermediate_size", 96},
          {"num_hidden_layers", 2},
          {"num_attention_heads", 4},
          {"num_key_value_heads", 2},
          {"num_local_experts", 4},
          {"num_experts_per_tok", 2},
          {"hidden_act", "silu"},
          {"max_position_embeddings", 256},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 1000000.0},
          {"sliding_window", nullptr},
          {"tie_word_embeddings", false},
          {"torch_dtype", "bfloat16"}};
}

json tiny_qwen_moe(bool qwen3) {
  json j = {{"model_type", qwen3 ? "qwen3_moe" : "qwen2_moe"},
            {"vocab_size", 256},
            {"hidden_size", 64},
            {"intermediate_size", 128},
            {"moe_intermediate_size", 32},
            {"num_hidden_layers", 3},
            {"num_attention_heads", 4},
            {"num_key_value_heads", 2},
            {"num_experts", 8},
            {"num_experts_per_tok", 2},
            {"decoder_sparse_step", 1},
            {"mlp_only_layers", {1}},
            {"norm_topk_prob", qwen3},
            {"hidden_act", "silu"},
            {"max_position_embeddings", 256},
            {"rms_norm_eps", 1e-6},
            {"rope_theta", 1000000.0},
            {"use_sliding_window", false},
            {"tie_word_embeddings", false},
            {"torch_dtype", "bfloat16"}};
  if (qwen3) {
    j["architectures"] = {"Qwen3MoeForCausalLM"};
    j["head_dim"] = 32;
    j["attention_bias"] = false;
  } else {
    j["architectures"] = {"Qwen2MoeForCausalLM"};
    j["shared_expert_intermediate_size"] = 64;
  }
  return j;
}

// splitmix64: a tiny, well-mixed, reproducible stream.
struct Stream {
  std::uint64_t state;
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  float uniform() {  // [-1, 1)
    return static_cast<float>(static_cast<double>(next() >> 40) * 0x1.0p-23 - 1.0);
  }
};

std::uint64_t name_hash(const std::string& s) {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
  return h;
}

bool is_norm(const std::string& name) { return name.find("norm") != std::string::npos; }

bool is_quantisable(const std::string& name) {
  // DeepSeek-V3's release quantises the projections; embeddings, lm_head, norms and the router
  // stay bf16.
  return name.ends_with(".weight") && name.find("_proj") != std::string::npos;
}

}  // namespace

std::vector<std::string> tiny_kinds() {
  return {"deepseek_v3", "deepseek_v2", "mixtral", "qwen2_moe", "qwen3_moe"};
}

std::string tiny_config_json(std::string_view kind, bool fp8, std::int64_t layers) {
  json j;
  if (kind == "deepseek_v3")
    j = tiny_deepseek_v3();
  else if (kind == "deepseek_v2")
    j = tiny_deepseek_v2();
  else if (kind == "mixtral")
    j = tiny_mixtral();
  else if (kind == "qwen2_moe")
    j = tiny_qwen_moe(false);
  else if (kind == "qwen3_moe")
    j = tiny_qwen_moe(true);
  else
    throw Error(ErrorCode::InvalidArgument, fmt::format("unknown checkpoint kind '{}' (known: {})",
                                                        kind, fmt::join(tiny_kinds(), ", ")));
  if (layers < 0)
    throw Error(ErrorCode::InvalidArgument, fmt::format("{} layers: not a layer count", layers));
  if (layers > 0) j["num_hidden_layers"] = layers;
  if (fp8)
    j["quantization_config"] = {{"quant_method", "fp8"},
                                {"fmt", "e4m3"},
                                {"activation_scheme", "dynamic"},
                                {"weight_block_size", {128, 128}}};
  return j.dump(2) + "\n";
}

std::vector<std::pair<std::string, Shape>> expected_tensors(const ModelConfig& c) {
  Names out;
  const auto h = c.hidden_size;
  auto add = [&out](std::string name, Shape shape) { out.emplace_back(std::move(name), shape); };
  add("model.embed_tokens.weight", {c.vocab_size, h});
  for (std::int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    const std::string a = p + "self_attn.";
    if (c.mla) {
      const auto qk = c.query_head_dim();
      if (c.q_lora_rank > 0) {
        add(a + "q_a_proj.weight", {c.q_lora_rank, h});
        add(a + "q_a_layernorm.weight", {c.q_lora_rank});
        add(a + "q_b_proj.weight", {c.num_heads * qk, c.q_lora_rank});
      } else {
        add(a + "q_proj.weight", {c.num_heads * qk, h});
      }
      add(a + "kv_a_proj_with_mqa.weight", {c.kv_lora_rank + c.qk_rope_head_dim, h});
      add(a + "kv_a_layernorm.weight", {c.kv_lora_rank});
      add(a + "kv_b_proj.weight",
          {c.num_heads * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank});
      add(a + "o_proj.weight", {h, c.num_heads * c.v_head_dim});
    } else {
      const auto d = c.head_dim;
      for (const char* proj : {"q_proj", "k_proj", "v_proj"}) {
        const auto heads = proj[0] == 'q' ? c.num_heads : c.num_kv_heads;
        add(a + proj + ".weight", {heads * d, h});
        if (c.attention_bias) add(a + proj + ".bias", {heads * d});
      }
      add(a + "o_proj.weight", {h, c.num_heads * d});
      if (c.qk_norm) {
        add(a + "q_norm.weight", {d});
        add(a + "k_norm.weight", {d});
      }
    }
    if (c.is_moe_layer(l)) {
      const bool mixtral = c.family == Family::Mixtral;
      const std::string m = p + (mixtral ? "block_sparse_moe." : "mlp.");
      const auto e = c.num_experts;
      const auto i = c.moe_intermediate_size;
      add(m + "gate.weight", {e, h});
      if (c.router.use_bias) add(m + "gate.e_score_correction_bias", {e});
      for (std::int64_t x = 0; x < e; ++x) {
        const std::string ex = fmt::format("{}experts.{}.", m, x);
        add(ex + (mixtral ? "w1" : "gate_proj") + ".weight", {i, h});
        add(ex + (mixtral ? "w2" : "down_proj") + ".weight", {h, i});
        add(ex + (mixtral ? "w3" : "up_proj") + ".weight", {i, h});
      }
      if (c.shared_intermediate_size > 0) {
        const auto is = c.shared_intermediate_size;
        const std::string s =
            m + (c.family == Family::Qwen2Moe ? "shared_expert." : "shared_experts.");
        add(s + "gate_proj.weight", {is, h});
        add(s + "up_proj.weight", {is, h});
        add(s + "down_proj.weight", {h, is});
        if (c.shared_expert_gated) add(m + "shared_expert_gate.weight", {1, h});
      }
    } else {
      add(p + "mlp.gate_proj.weight", {c.intermediate_size, h});
      add(p + "mlp.up_proj.weight", {c.intermediate_size, h});
      add(p + "mlp.down_proj.weight", {h, c.intermediate_size});
    }
    add(p + "input_layernorm.weight", {h});
    add(p + "post_attention_layernorm.weight", {h});
  }
  add("model.norm.weight", {h});
  if (!c.tie_word_embeddings) add("lm_head.weight", {c.vocab_size, h});
  return out;
}

std::pair<Tensor, Tensor> quantize_fp8(const Tensor& weight,
                                       std::pair<std::int64_t, std::int64_t> block) {
  if (weight.shape().rank() != 2)
    throw Error(ErrorCode::ShapeMismatch, "quantize_fp8 takes a 2-D weight");
  const auto n = weight.shape()[0];
  const auto k = weight.shape()[1];
  const auto [bn, bk] = block;
  const auto gn = (n + bn - 1) / bn;
  const auto gk = (k + bk - 1) / bk;
  const std::vector<float> w = weight.to_f32();
  std::vector<float> scales(static_cast<std::size_t>(gn * gk), 1.0f);
  std::vector<Float8E4M3> q(w.size());
  for (std::int64_t bi = 0; bi < gn; ++bi)
    for (std::int64_t bj = 0; bj < gk; ++bj) {
      float amax = 0;
      for (auto r = bi * bn; r < std::min(n, (bi + 1) * bn); ++r)
        for (auto c = bj * bk; c < std::min(k, (bj + 1) * bk); ++c)
          amax = std::max(amax, std::fabs(w[static_cast<std::size_t>(r * k + c)]));
      const float scale = amax > 0 ? amax / 448.0f : 1.0f;
      scales[static_cast<std::size_t>(bi * gk + bj)] = scale;
      for (auto r = bi * bn; r < std::min(n, (bi + 1) * bn); ++r)
        for (auto c = bj * bk; c < std::min(k, (bj + 1) * bk); ++c) {
          const auto i = static_cast<std::size_t>(r * k + c);
          q[i] = Float8E4M3::from_float(std::clamp(w[i] / scale, -448.0f, 448.0f));
        }
    }
  return {Tensor::from_vector<Float8E4M3>({n, k}, q), Tensor::from_vector<float>({gn, gk}, scales)};
}

Tensor random_weight(const std::string& name, const Shape& shape,
                     const RandomWeightsOptions& options) {
  if (options.dtype != DType::F32 && options.dtype != DType::BF16 && options.dtype != DType::F16)
    throw Error(
        ErrorCode::InvalidArgument,
        fmt::format("random weights are f32, bf16 or f16, not {}", dtype_name(options.dtype)));
  // Each tensor has its own stream, so that its values do not depend on the others.
  Stream stream{options.seed ^ name_hash(name)};
  std::vector<float> values(static_cast<std::size_t>(shape.numel()));
  const bool bias = name.ends_with(".bias") || name.ends_with("e_score_correction_bias");
  if (is_norm(name)) {
    for (auto& v : values) v = 1.0f + 0.1f * stream.uniform();
  } else if (bias) {
    for (auto& v : values) v = 0.05f * stream.uniform();
  } else {
    // std 1/sqrt(fan_in); the embedding table gets unit-scale rows.
    const bool embedding = name == "model.embed_tokens.weight";
    const float fan_in = static_cast<float>(shape[-1]);
    const float bound = embedding ? std::sqrt(3.0f) : std::sqrt(3.0f / fan_in);
    for (auto& v : values) v = bound * stream.uniform();
  }
  const DType dtype =
      bias && name.ends_with("e_score_correction_bias") ? DType::F32 : options.dtype;
  return Tensor::from_f32(shape, dtype, values);
}

std::vector<std::pair<std::string, Tensor>> random_weights(const ModelConfig& config,
                                                           const RandomWeightsOptions& options) {
  if (options.fp8 && !config.fp8_block)
    throw Error(ErrorCode::InvalidArgument,
                "fp8 weights need quantization_config.weight_block_size in the config");
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& [name, shape] : expected_tensors(config)) {
    Tensor t = random_weight(name, shape, options);
    if (options.fp8 && is_quantisable(name)) {
      auto [q, s] = quantize_fp8(t, *config.fp8_block);
      out.emplace_back(name, q);
      out.emplace_back(name + "_scale_inv", s);
    } else {
      out.emplace_back(name, t);
    }
  }
  return out;
}

void write_checkpoint(const std::string& dir, const std::string& config_json,
                      const std::vector<std::pair<std::string, Tensor>>& tensors, int shards) {
  namespace fs = std::filesystem;
  if (shards < 1)
    throw Error(ErrorCode::InvalidArgument, fmt::format("shards must be >= 1, not {}", shards));
  fs::create_directories(dir);
  {
    std::ofstream config(fs::path(dir) / "config.json", std::ios::binary | std::ios::trunc);
    config << config_json;
    if (!config) throw Error(ErrorCode::Io, fmt::format("cannot write '{}/config.json'", dir));
  }
  const std::map<std::string, std::string> metadata{{"format", "pt"}};
  if (shards == 1) {
    io::write_safetensors((fs::path(dir) / "model.safetensors").string(), tensors, metadata);
    return;
  }
  // Contiguous runs of tensors of roughly equal bytes, as transformers' sharding does.
  std::uint64_t total = 0;
  for (const auto& [name, t] : tensors) total += t.nbytes();
  std::vector<std::vector<std::pair<std::string, Tensor>>> parts(static_cast<std::size_t>(shards));
  std::uint64_t seen = 0;
  for (const auto& entry : tensors) {
    const auto part = std::min<std::uint64_t>(
        seen * static_cast<std::uint64_t>(shards) / std::max<std::uint64_t>(total, 1),
        static_cast<std::uint64_t>(shards - 1));
    parts[part].push_back(entry);
    seen += entry.second.nbytes();
  }
  json weight_map = json::object();
  for (int i = 0; i < shards; ++i) {
    const std::string file = fmt::format("model-{:05}-of-{:05}.safetensors", i + 1, shards);
    io::write_safetensors((fs::path(dir) / file).string(), parts[static_cast<std::size_t>(i)],
                          metadata);
    for (const auto& [name, t] : parts[static_cast<std::size_t>(i)]) weight_map[name] = file;
  }
  const json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  std::ofstream out(fs::path(dir) / "model.safetensors.index.json",
                    std::ios::binary | std::ios::trunc);
  out << index.dump(2) << "\n";
  if (!out)
    throw Error(ErrorCode::Io, fmt::format("cannot write '{}/model.safetensors.index.json'", dir));
}

}  // namespace porta::model
