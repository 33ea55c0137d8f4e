// GGUF metadata -> the Hugging Face config.json porta's parse_config() reads. Going through
// config.json keeps one set of family defaults and router derivations (config.cpp) for both
// formats; this file only translates keys, reading each with its GGUF name so that errors say
// which key of the file is wrong.
#include <porta/model/gguf.hpp>

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <porta/error.hpp>

namespace porta::model {

namespace {

using nlohmann::json;
using gguf::GgufFile;

class Keys {
 public:
  Keys(const GgufFile& f, std::string arch) : f_(f), arch_(std::move(arch)) {}
  std::string name(const std::string& k) const { return arch_ + "." + k; }

  [[noreturn]] void fail(const std::string& k, const std::string& why) const {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("'{}': metadata key '{}' {}", f_.path(), name(k), why));
  }
  std::int64_t count(const std::string& k, std::int64_t min = 1) const {
    const auto v = f_.get_int(name(k));
    if (v < min) fail(k, fmt::format("is {}; it must be at least {}", v, min));
    return v;
  }
  std::int64_t count_or(const std::string& k, std::int64_t fallback, std::int64_t min = 0) const {
    const auto v = f_.get_int_or(name(k));
    if (!v) return fallback;
    if (*v < min) fail(k, fmt::format("is {}; it must be at least {}", *v, min));
    return *v;
  }
  double number_or(const std::string& k, double fallback) const {
    const auto v = f_.get_float_or(name(k));
    if (v && !std::isfinite(*v)) fail(k, "is not finite");
    return v.value_or(fallback);
  }
  bool flag_or(const std::string& k, bool fallback) const {
    return f_.get_bool_or(name(k)).value_or(fallback);
  }
  std::optional<std::string> text(const std::string& k) const { return f_.get_string_or(name(k)); }

 private:
  const GgufFile& f_;
  std::string arch_;
};

std::int64_t vocab_size(const GgufFile& f, const Keys& k) {
  if (const auto v = f.get_int_or(k.name("vocab_size"))) return *v;
  if (const gguf::Value* tokens = f.find("tokenizer.ggml.tokens");
      tokens != nullptr && tokens->type == gguf::ValueType::Array)
    return static_cast<std::int64_t>(tokens->array.size());
  if (f.contains("token_embd.weight") && f.tensor("token_embd.weight").dims.size() == 2)
    return static_cast<std::int64_t>(f.tensor("token_embd.weight").dims[1]);
  throw Error(ErrorCode::NotFound,
              fmt::format("'{}': the vocabulary size is unknown: no '{}', no "
                          "tokenizer.ggml.tokens and no 2-D token_embd.weight",
                          f.path(), k.name("vocab_size")));
}

void rope_scaling(const Keys& k, bool mla, json& j) {
  const std::string type = k.text("rope.scaling.type").value_or("none");
  if (type == "none") {
    // Files from 2023 carry a plain linear factor instead.
    const double linear = k.number_or("rope.scale_linear", 1.0);
    if (linear != 1.0) j["rope_scaling"] = {{"type", "linear"}, {"factor", linear}};
    return;
  }
  const double factor = k.number_or("rope.scaling.factor", 0.0);
  if (!(factor > 0)) k.fail("rope.scaling.factor", "must be positive when rope scaling is on");
  if (type == "linear") {
    j["rope_scaling"] = {{"type", "linear"}, {"factor", factor}};
    return;
  }
  if (type != "yarn")
    k.fail("rope.scaling.type", fmt::format("'{}' is not supported (none, linear, yarn)", type));
  json s = {{"type", "yarn"},
            {"factor", factor},
            {"original_max_position_embeddings",
             k.count_or("rope.scaling.original_context_length", 4096, 1)},
            {"beta_fast", k.number_or("rope.scaling.yarn_beta_fast", 32.0)},
            {"beta_slow", k.number_or("rope.scaling.yarn_beta_slow", 1.0)}};
  if (mla) {
    // convert_hf_to_gguf.py stores 0.1 * mscale_all_dim as yarn_log_multiplier and drops mscale;
    // DeepSeek's releases set mscale == mscale_all_dim, and llama.cpp computes as if they were
    // equal, so both come back from the one key.
    const double all_dim = k.number_or("rope.scaling.yarn_log_multiplier", 0.0) / 0.1;
    s["mscale"] = all_dim != 0 ? all_dim : 1.0;
    s["mscale_all_dim"] = all_dim;
  }
  j["rope_scaling"] = s;
}

void deepseek2(const GgufFile& f, const Keys& k, json& j) {
  const auto rope = k.count("rope.dimension_count", 2);
  const auto kv_lora = k.count("attention.kv_lora_rank");
  // Files from converters with MLA absorption store the latent sizes in key_length/value_length
  // and the per-head sizes in key_length_mla/value_length_mla.
  const bool absorbed = f.find(k.name("attention.key_length_mla")) != nullptr;
  const std::string key_len = absorbed ? "attention.key_length_mla" : "attention.key_length";
  const std::string value_len = absorbed ? "attention.value_length_mla" : "attention.value_length";
  const auto qk = k.count(key_len, rope + 1);
  j["q_lora_rank"] = k.count_or("attention.q_lora_rank", 0);
  j["kv_lora_rank"] = kv_lora;
  j["qk_rope_head_dim"] = rope;
  j["qk_nope_head_dim"] = qk - rope;
  j["v_head_dim"] = k.count(value_len);
  const auto experts = k.count_or("expert_count", 0);
  j["n_routed_experts"] = experts;
  if (experts == 0) return;
  j["num_experts_per_tok"] = k.count("expert_used_count");
  j["moe_intermediate_size"] = k.count("expert_feed_forward_length");
  j["n_shared_experts"] = k.count_or("expert_shared_count", 0);
  j["first_k_dense_replace"] = k.count_or("leading_dense_block_count", 0);
  j["routed_scaling_factor"] = k.number_or("expert_weights_scale", 1.0);
  j["norm_topk_prob"] = k.flag_or("expert_weights_norm", false);
  // llama.cpp's gating function enum: 1 softmax, 2 sigmoid; files before the key are softmax.
  const auto gating = k.count_or("expert_gating_func", 1, 0);
  if (gating != 1 && gating != 2 && gating != 0)
    k.fail("expert_gating_func", fmt::format("is {}; porta knows 1 (softmax) and 2 (sigmoid)",
                                             gating));
  const bool sigmoid = gating == 2;
  const auto groups = k.count_or("expert_group_count", 1, 1);
  const auto groups_used = k.count_or("expert_group_used_count", groups, 1);
  j["scoring_func"] = sigmoid ? "sigmoid" : "softmax";
  j["n_group"] = groups;
  j["topk_group"] = groups_used;
  // Without group keys llama.cpp routes over all experts; n_group 1 does the same here.
  j["topk_method"] = sigmoid ? "noaux_tc" : (groups > 1 ? "group_limited_greedy" : "greedy");
  j["model_type"] = sigmoid ? "deepseek_v3" : "deepseek_v2";
}

// qwen2moe/qwen3moe: layers without a router are dense ("mlp_only_layers").
json dense_layers(const GgufFile& f, std::int64_t layers) {
  json out = json::array();
  for (std::int64_t l = 0; l < layers; ++l)
    if (!f.contains(fmt::format("blk.{}.ffn_gate_inp.weight", l)) &&
        f.contains(fmt::format("blk.{}.ffn_gate.weight", l)))
      out.push_back(l);
  return out;
}

}  // namespace

std::string gguf_config_json(const GgufFile& f) {
  const std::string arch = f.get_string("general.architecture");
  if (arch != "deepseek2" && arch != "llama" && arch != "qwen2moe" && arch != "qwen3moe")
    throw Error(ErrorCode::Unsupported,
                fmt::format("'{}': general.architecture '{}' is not supported (deepseek2, llama "
                            "with experts, qwen2moe, qwen3moe)",
                            f.path(), arch));
  const Keys k(f, arch);
  json j;
  const auto hidden = k.count("embedding_length");
  const auto layers = k.count("block_count");
  const auto heads = k.count("attention.head_count");
  j["hidden_size"] = hidden;
  j["num_hidden_layers"] = layers;
  j["num_attention_heads"] = heads;
  j["vocab_size"] = vocab_size(f, k);
  j["max_position_embeddings"] = k.count_or("context_length", 4096, 1);
  j["rms_norm_eps"] = k.number_or("attention.layer_norm_rms_epsilon", 1e-6);
  j["rope_theta"] = k.number_or("rope.freq_base", 10000.0);
  j["tie_word_embeddings"] = !f.contains("output.weight");
  j["hidden_act"] = "silu";
  const bool mla = arch == "deepseek2";
  rope_scaling(k, mla, j);

  if (mla) {
    j["model_type"] = "deepseek_v2";
    // The dense MLP of the leading layers; a file without dense layers may omit it.
    j["intermediate_size"] = k.count_or("feed_forward_length", 1, 1);
    deepseek2(f, k, j);
    return j.dump(2);
  }

  const auto kv_heads = k.count_or("attention.head_count_kv", heads, 1);
  j["num_key_value_heads"] = kv_heads;
  if (const auto key_length = f.get_int_or(k.name("attention.key_length")))
    j["head_dim"] = *key_length;
  else
    j["head_dim"] = k.count_or("rope.dimension_count", hidden / heads, 2);
  j["attention_bias"] = f.contains("blk.0.attn_q.bias");

  if (arch == "llama") {
    const auto experts = k.count_or("expert_count", 0);
    if (experts == 0)
      throw Error(ErrorCode::Unsupported,
                  fmt::format("'{}': a llama GGUF without experts (a dense model); porta runs the "
                              "Mixtral-style llama with '{}' > 0",
                              f.path(), k.name("expert_count")));
    j["model_type"] = "mixtral";
    j["intermediate_size"] = k.count("feed_forward_length");
    j["num_local_experts"] = experts;
    j["num_experts_per_tok"] = k.count("expert_used_count");
    return j.dump(2);
  }
  // qwen2moe, qwen3moe
  const bool qwen3 = arch == "qwen3moe";
  j["model_type"] = qwen3 ? "qwen3_moe" : "qwen2_moe";
  const auto expert_ff = k.count("expert_feed_forward_length");
  j["moe_intermediate_size"] = expert_ff;
  j["intermediate_size"] = k.count_or("feed_forward_length", expert_ff, 1);
  j["num_experts"] = k.count("expert_count");
  j["num_experts_per_tok"] = k.count("expert_used_count");
  // llama.cpp renormalizes the top-k weights for qwen3moe and not for qwen2moe.
  j["norm_topk_prob"] = k.flag_or("expert_weights_norm", qwen3);
  j["decoder_sparse_step"] = 1;
  j["mlp_only_layers"] = dense_layers(f, layers);
  if (!qwen3)
    j["shared_expert_intermediate_size"] = k.count_or("expert_shared_feed_forward_length", 0);
  return j.dump(2);
}

ModelConfig gguf_config(const GgufFile& f) {
  return parse_config(gguf_config_json(f),
                      fmt::format("'{}' (the config its GGUF metadata implies)", f.path()));
}

}  // namespace porta::model
