// config.json -> ModelConfig, with each family's Hugging Face defaults and the router the config
// implies. Every key read is type- and range-checked; errors name the file and the key.
#include <porta/model/config.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <porta/error.hpp>

namespace porta::model {

namespace {

using nlohmann::json;

class Reader {
 public:
  Reader(const json& j, const std::string& source) : j_(j), source_(source) {}

  [[noreturn]] void fail(const std::string& key, const std::string& why) const {
    throw Error(ErrorCode::InvalidArgument, fmt::format("{}: key '{}' {}", source_, key, why));
  }

  bool has(const std::string& key) const { return j_.contains(key) && !j_.at(key).is_null(); }

  std::int64_t integer(const std::string& key, std::optional<std::int64_t> fallback = {},
                       std::int64_t min = 0) const {
    if (!has(key)) {
      if (!fallback) fail(key, "is missing");
      return *fallback;
    }
    const json& v = j_.at(key);
    if (!v.is_number_integer()) fail(key, fmt::format("must be an integer, not {}", v.dump()));
    const auto value = v.get<std::int64_t>();
    if (value < min) fail(key, fmt::format("must be >= {}, not {}", min, value));
    return value;
  }

  double number(const std::string& key, std::optional<double> fallback = {}) const {
    if (!has(key)) {
      if (!fallback) fail(key, "is missing");
      return *fallback;
    }
    const json& v = j_.at(key);
    if (!v.is_number()) fail(key, fmt::format("must be a number, not {}", v.dump()));
    const double value = v.get<double>();
    if (!std::isfinite(value)) fail(key, "must be finite");
    return value;
  }

  double positive(const std::string& key, std::optional<double> fallback = {}) const {
    const double value = number(key, fallback);
    if (!(value > 0)) fail(key, fmt::format("must be positive, not {}", value));
    return value;
  }

  bool boolean(const std::string& key, bool fallback) const {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    if (!v.is_boolean()) fail(key, fmt::format("must be true or false, not {}", v.dump()));
    return v.get<bool>();
  }

  std::string string(const std::string& key, std::optional<std::string> fallback = {}) const {
    if (!has(key)) {
      if (!fallback) fail(key, "is missing");
      return *fallback;
    }
    const json& v = j_.at(key);
    if (!v.is_string()) fail(key, fmt::format("must be a string, not {}", v.dump()));
    return v.get<std::string>();
  }

  const json& object(const std::string& key) const {
    const json& v = j_.at(key);
    if (!v.is_object()) fail(key, fmt::format("must be an object, not {}", v.dump()));
    return v;
  }

  std::vector<std::int64_t> integers(const std::string& key) const {
    std::vector<std::int64_t> out;
    if (!has(key)) return out;
    const json& v = j_.at(key);
    if (!v.is_array()) fail(key, "must be a list of integers");
    for (const auto& e : v) {
      if (!e.is_number_integer()) fail(key, "must be a list of integers");
      out.push_back(e.get<std::int64_t>());
    }
    return out;
  }

  Reader nested(const std::string& key) const { return Reader(object(key), source_ + ": " + key); }

 private:
  const json& j_;
  std::string source_;
};

Family parse_family(const Reader& r, const std::string& model_type) {
  if (model_type == "deepseek_v2") return Family::DeepseekV2;
  if (model_type == "deepseek_v3") return Family::DeepseekV3;
  if (model_type == "mixtral") return Family::Mixtral;
  if (model_type == "qwen2_moe") return Family::Qwen2Moe;
  if (model_type == "qwen3_moe") return Family::Qwen3Moe;
  r.fail("model_type", fmt::format("'{}' is not supported (deepseek_v2, deepseek_v3, mixtral, "
                                   "qwen2_moe, qwen3_moe)",
                                   model_type));
}

void parse_rope_scaling(const Reader& top, ModelConfig& c) {
  if (!top.has("rope_scaling")) return;
  const Reader r = top.nested("rope_scaling");
  const std::string type = r.has("type") ? r.string("type") : r.string("rope_type", "default");
  RopeScaling& s = c.rope.scaling;
  if (type == "default") return;
  if (type == "linear") {
    s.type = RopeScalingType::Linear;
    s.factor = static_cast<float>(r.positive("factor"));
    return;
  }
  if (type != "yarn") r.fail("type", fmt::format("'{}' is not supported (yarn, linear)", type));
  s.type = RopeScalingType::Yarn;
  s.factor = static_cast<float>(r.positive("factor"));
  s.original_max_position = r.integer("original_max_position_embeddings", 4096, 1);
  s.beta_fast = static_cast<float>(r.positive("beta_fast", 32.0));
  s.beta_slow = static_cast<float>(r.positive("beta_slow", 1.0));
  s.mscale = static_cast<float>(r.number("mscale", 1.0));
  s.mscale_all_dim = static_cast<float>(r.number("mscale_all_dim", 0.0));
}

void parse_deepseek(const Reader& r, ModelConfig& c) {
  const bool v3 = c.family == Family::DeepseekV3;
  c.mla = true;
  c.num_kv_heads = c.num_heads;
  c.q_lora_rank = r.integer("q_lora_rank", 0);
  c.kv_lora_rank = r.integer("kv_lora_rank", std::nullopt, 1);
  c.qk_nope_head_dim = r.integer("qk_nope_head_dim", std::nullopt, 1);
  c.qk_rope_head_dim = r.integer("qk_rope_head_dim", std::nullopt, 2);
  if (c.qk_rope_head_dim % 2 != 0) r.fail("qk_rope_head_dim", "must be even");
  c.v_head_dim = r.integer("v_head_dim", std::nullopt, 1);
  c.attention_bias = r.boolean("attention_bias", false);
  if (c.attention_bias) r.fail("attention_bias", "true is not supported for MLA checkpoints");
  c.rope.layout = RopeLayout::Interleaved;

  c.num_experts = r.integer("n_routed_experts", 0);
  if (c.num_experts == 0) return;
  c.top_k = r.integer("num_experts_per_tok", std::nullopt, 1);
  c.moe_intermediate_size = r.integer("moe_intermediate_size", std::nullopt, 1);
  c.shared_intermediate_size = c.moe_intermediate_size * r.integer("n_shared_experts", 0);
  c.first_k_dense_replace = r.integer("first_k_dense_replace", 0);
  c.moe_layer_freq = r.integer("moe_layer_freq", 1, 1);
  c.scoring_func = r.string("scoring_func", v3 ? "sigmoid" : "softmax");
  c.topk_method = r.string("topk_method", v3 ? "noaux_tc" : "greedy");
  const bool norm = r.boolean("norm_topk_prob", false);
  const auto scaling = static_cast<float>(r.number("routed_scaling_factor", 1.0));
  if (!(scaling > 0)) r.fail("routed_scaling_factor", "must be positive");

  moe::RouterAttrs& a = c.router;
  a.num_experts = c.num_experts;
  a.top_k = c.top_k;
  if (c.scoring_func == "softmax")
    a.score = moe::Score::Softmax;
  else if (c.scoring_func == "sigmoid")
    a.score = moe::Score::Sigmoid;
  else
    r.fail("scoring_func", fmt::format("'{}' is not supported (softmax, sigmoid)", c.scoring_func));
  if (c.topk_method == "greedy") {
    a.num_groups = a.topk_groups = 1;
  } else if (c.topk_method == "group_limited_greedy" || c.topk_method == "noaux_tc") {
    a.num_groups = r.integer("n_group", std::nullopt, 1);
    a.topk_groups = r.integer("topk_group", std::nullopt, 1);
    if (a.topk_groups > a.num_groups)
      r.fail("topk_group", fmt::format("{} exceeds n_group {}", a.topk_groups, a.num_groups));
    if (c.num_experts % a.num_groups != 0)
      r.fail("n_group",
             fmt::format("{} does not divide n_routed_experts {}", a.num_groups, c.num_experts));
    if (c.top_k > a.topk_groups * (c.num_experts / a.num_groups))
      r.fail("num_experts_per_tok", fmt::format("{} exceeds the experts of the topk_group {} "
                                                "kept groups",
                                                c.top_k, a.topk_groups));
    a.group_score = c.topk_method == "noaux_tc" ? moe::GroupScore::Top2Sum : moe::GroupScore::Max;
    a.use_bias = c.topk_method == "noaux_tc";
  } else {
    r.fail("topk_method", fmt::format("'{}' is not supported (greedy, group_limited_greedy, "
                                      "noaux_tc)",
                                      c.topk_method));
  }
  a.renormalize = norm && c.top_k > 1;
  a.renorm_eps = 1e-20f;
  // modeling_deepseek (V2) scales only weights it did not renormalise; V3 scales always.
  a.scale = (v3 || !a.renormalize) ? scaling : 1.0f;
}

void parse_standard(const Reader& r, ModelConfig& c) {
  c.num_kv_heads = r.integer("num_key_value_heads", c.num_heads, 1);
  if (c.num_heads % c.num_kv_heads != 0)
    r.fail("num_key_value_heads",
           fmt::format("{} does not divide num_attention_heads {}", c.num_kv_heads, c.num_heads));
  c.head_dim = r.integer("head_dim", c.hidden_size / c.num_heads, 2);
  if (c.head_dim % 2 != 0) r.fail("head_dim", "must be even");
  c.rope.layout = RopeLayout::NeoX;
  if (r.has("sliding_window") && r.boolean("use_sliding_window", c.family == Family::Mixtral))
    c.sliding_window = r.integer("sliding_window", std::nullopt, 1);

  moe::RouterAttrs& a = c.router;
  a.score = moe::Score::Softmax;
  c.scoring_func = "softmax";
  c.topk_method = "greedy";
  switch (c.family) {
    case Family::Mixtral:
      c.num_experts = r.integer("num_local_experts", std::nullopt, 1);
      c.top_k = r.integer("num_experts_per_tok", 2, 1);
      c.moe_intermediate_size = c.intermediate_size;
      a.renormalize = true;
      a.renorm_eps = 0.0f;
      break;
    case Family::Qwen2Moe:
    case Family::Qwen3Moe: {
      const bool qwen2 = c.family == Family::Qwen2Moe;
      c.attention_bias = r.boolean("attention_bias", qwen2);
      c.qk_norm = !qwen2;
      c.num_experts = r.integer("num_experts", std::nullopt, 1);
      c.top_k = r.integer("num_experts_per_tok", std::nullopt, 1);
      c.moe_intermediate_size = r.integer("moe_intermediate_size", std::nullopt, 1);
      c.decoder_sparse_step = r.integer("decoder_sparse_step", 1, 1);
      c.mlp_only_layers = r.integers("mlp_only_layers");
      if (qwen2) {
        c.shared_intermediate_size = r.integer("shared_expert_intermediate_size", 0);
        c.shared_expert_gated = c.shared_intermediate_size > 0;
      }
      a.renormalize = r.boolean("norm_topk_prob", !qwen2);
      a.renorm_eps = 0.0f;
      break;
    }
    case Family::DeepseekV2:
    case Family::DeepseekV3: break;  // parsed by the DeepSeek branch
  }
  if (c.top_k > c.num_experts)
    r.fail("num_experts_per_tok",
           fmt::format("{} exceeds the number of experts {}", c.top_k, c.num_experts));
  a.num_experts = c.num_experts;
  a.top_k = c.top_k;
}

}  // namespace

std::string_view family_name(Family family) noexcept {
  switch (family) {
    case Family::DeepseekV2: return "deepseek_v2";
    case Family::DeepseekV3: return "deepseek_v3";
    case Family::Mixtral: return "mixtral";
    case Family::Qwen2Moe: return "qwen2_moe";
    case Family::Qwen3Moe: return "qwen3_moe";
  }
  return "unknown";
}

float yarn_mscale(float scale, float mscale) {
  if (scale <= 1.0f) return 1.0f;
  return 0.1f * mscale * std::log(scale) + 1.0f;
}

bool ModelConfig::is_moe_layer(std::int64_t layer) const {
  if (num_experts == 0) return false;
  if (mla) return layer >= first_k_dense_replace && layer % moe_layer_freq == 0;
  if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) != mlp_only_layers.end())
    return false;
  return (layer + 1) % decoder_sparse_step == 0;
}

float ModelConfig::attention_scale() const {
  float scale = 1.0f / std::sqrt(static_cast<float>(query_head_dim()));
  const RopeScaling& s = rope.scaling;
  if (mla && s.type == RopeScalingType::Yarn && s.mscale_all_dim != 0.0f) {
    const float m = yarn_mscale(s.factor, s.mscale_all_dim);
    scale *= m * m;
  }
  return scale;
}

ModelConfig parse_config(const std::string& json_text, const std::string& source) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    throw Error(ErrorCode::CorruptFile, fmt::format("{}: not valid JSON: {}", source, e.what()));
  }
  if (!j.is_object())
    throw Error(ErrorCode::CorruptFile, fmt::format("{}: must hold a JSON object", source));
  const Reader r(j, source);
  ModelConfig c;
  c.model_type = r.string("model_type");
  c.family = parse_family(r, c.model_type);
  if (r.has("hidden_act") && r.string("hidden_act") != "silu")
    r.fail("hidden_act", fmt::format("'{}' is not supported (silu)", r.string("hidden_act")));
  c.vocab_size = r.integer("vocab_size", std::nullopt, 1);
  c.hidden_size = r.integer("hidden_size", std::nullopt, 1);
  c.num_layers = r.integer("num_hidden_layers", std::nullopt, 1);
  c.num_heads = r.integer("num_attention_heads", std::nullopt, 1);
  c.intermediate_size = r.integer("intermediate_size", std::nullopt, 1);
  c.rms_norm_eps = static_cast<float>(r.positive("rms_norm_eps", 1e-6));
  c.max_position_embeddings = r.integer("max_position_embeddings", 4096, 1);
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", false);
  c.rope.theta = static_cast<float>(r.positive("rope_theta", 10000.0));
  parse_rope_scaling(r, c);

  if (c.family == Family::DeepseekV2 || c.family == Family::DeepseekV3)
    parse_deepseek(r, c);
  else
    parse_standard(r, c);

  if (r.has("quantization_config")) {
    const Reader q = r.nested("quantization_config");
    const std::string method = q.string("quant_method");
    c.quant_method = method;
    c.quantization_config = r.object("quantization_config").dump();
    if (method == "fp8") {
      if (q.has("fmt") && q.string("fmt") != "e4m3")
        q.fail("fmt", fmt::format("'{}' is not supported (e4m3)", q.string("fmt")));
      const auto block = q.integers("weight_block_size");
      if (block.size() != 2 || block[0] < 1 || block[1] < 1)
        q.fail("weight_block_size", "must be two positive integers, e.g. [128, 128]");
      c.fp8_block = std::pair{block[0], block[1]};
    } else if (method != "compressed-tensors") {
      // compressed-tensors' groups are parsed by the loader (lib/model/compressed_tensors.cpp).
      q.fail("quant_method",
             fmt::format("'{}' is not supported (fp8, compressed-tensors)", method));
    }
  }
  return c;
}

ModelConfig load_config(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path file = fs::is_directory(path) ? fs::path(path) / "config.json" : fs::path(path);
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(ErrorCode::NotFound, fmt::format("cannot open '{}'", file.string()));
  std::stringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), file.string());
}

}  // namespace porta::model
