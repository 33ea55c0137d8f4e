// Real-shape presets (the published config.json of DeepSeek-V2-Lite, DeepSeek-V3, Mixtral-8x7B
// and Qwen3-30B-A3B, optionally cut to their first N layers or a smaller vocabulary) and the
// streaming writer that fills such a checkpoint with random weights at disk speed.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <porta/io.hpp>
#include <porta/model/checkpoint_gen.hpp>
#include <porta/model/quant_checkpoint.hpp>

namespace porta::model {

namespace {

using nlohmann::json;

// The values of the configs published on the Hugging Face Hub (deepseek-ai/DeepSeek-V2-Lite,
// deepseek-ai/DeepSeek-V3, mistralai/Mixtral-8x7B-v0.1, Qwen/Qwen3-30B-A3B), keys porta reads.
json deepseek_v2_lite() {
  return {{"architectures", {"DeepseekV2ForCausalLM"}},
          {"model_type", "deepseek_v2"},
          {"vocab_size", 102400},
          {"hidden_size", 2048},
          {"intermediate_size", 10944},
          {"moe_intermediate_size", 1408},
          {"num_hidden_layers", 27},
          {"num_attention_heads", 16},
          {"num_key_value_heads", 16},
          {"n_shared_experts", 2},
          {"n_routed_experts", 64},
          {"routed_scaling_factor", 1.0},
          {"kv_lora_rank", 512},
          {"q_lora_rank", nullptr},
          {"qk_rope_head_dim", 64},
          {"qk_nope_head_dim", 128},
          {"v_head_dim", 128},
          {"topk_method", "greedy"},
          {"scoring_func", "softmax"},
          {"n_group", 1},
          {"topk_group", 1},
          {"num_experts_per_tok", 6},
          {"first_k_dense_replace", 1},
          {"moe_layer_freq", 1},
          {"norm_topk_prob", false},
          {"hidden_act", "silu"},
          {"max_position_embeddings", 163840},
          {"rms_norm_eps", 1e-6},
          {"rope_theta", 10000.0},
          {"rope_scaling",
           {{"type", "yarn"},
            {"factor", 40.0},
            {"original_max_position_embeddings", 4096},
            {"beta_fast", 32},
            {"beta_slow", 1},
            {"mscale", 0.707},
            {"mscale_all_dim", 0.707}}},
          {"tie_word_embeddings", false},
          {"attention_bias", false},
          {"bos_token_id", 100000},
          {"eos_token_id", 100001},
          {"torch_dtype", "bfloat16"}};
}

json deepseek_v3() {
  return {{"architectures", {"DeepseekV3ForCausalLM"}},
          {"model_type", "deepseek_v3"},
          {"vocab_size", 129280},
          {"hidden_size", 7168},
          {"intermediate_size", 18432},
          {"moe_intermediate_size", 2048},
          {"num_hidden_layers", 61},
          {"num_attention_heads", 128},
          {"num_key_value_heads", 128},
          {"n_shared_experts", 1},
          {"n_routed_experts", 256},
          {"routed_scaling_factor", 2.5},
          {"kv_lora_rank", 512},
          {"q_lora_rank", 1536},
          {"qk_rope_head_dim", 64},
          {"qk_nope_head_dim", 128},
          {"v_head_dim", 128},
          {"topk_method", "noaux_tc"},
          {"scoring_func", "sigmoid"},
          {"n_group", 8},
          {"topk_group", 4},
          {"num_experts_per_tok", 8},
          {"first_k_dense_replace", 3},
          {"moe_layer_freq", 1},
          {"norm_topk_prob", true},
          {"hidden_act", "silu"},
          {"max_position_embeddings", 163840},
          {"rms_norm_eps", 1e-6},
          {"rope_theta", 10000.0},
          {"rope_scaling",
           {{"type", "yarn"},
            {"factor", 40.0},
            {"original_max_position_embeddings", 4096},
            {"beta_fast", 32},
            {"beta_slow", 1},
            {"mscale", 1.0},
            {"mscale_all_dim", 1.0}}},
          {"tie_word_embeddings", false},
          {"attention_bias", false},
          {"bos_token_id", 0},
          {"eos_token_id", 1},
          {"torch_dtype", "bfloat16"}};
}

json mixtral_8x7b() {
  return {{"architectures", {"MixtralForCausalLM"}},
          {"model_type", "mixtral"},
          {"vocab_size", 32000},
          {"hidden_size", 4096},
          {"intermediate_size", 14336},
          {"num_hidden_layers", 32},
          {"num_attention_heads", 32},
          {"num_key_value_heads", 8},
          {"num_local_experts", 8},
          {"num_experts_per_tok", 2},
          {"hidden_act", "silu"},
          {"max_position_embeddings", 32768},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 1000000.0},
          {"sliding_window", nullptr},
          {"tie_word_embeddings", false},
          {"bos_token_id", 1},
          {"eos_token_id", 2},
          {"torch_dtype", "bfloat16"}};
}

json qwen3_30b_a3b() {
  return {{"architectures", {"Qwen3MoeForCausalLM"}},
          {"model_type", "qwen3_moe"},
          {"vocab_size", 151936},
          {"hidden_size", 2048},
          {"intermediate_size", 6144},
          {"moe_intermediate_size", 768},
          {"num_hidden_layers", 48},
          {"num_attention_heads", 32},
          {"num_key_value_heads", 4},
          {"head_dim", 128},
          {"num_experts", 128},
          {"num_experts_per_tok", 8},
          {"decoder_sparse_step", 1},
          {"mlp_only_layers", json::array()},
          {"norm_topk_prob", true},
          {"hidden_act", "silu"},
          {"max_position_embeddings", 40960},
          {"rms_norm_eps", 1e-6},
          {"rope_theta", 1000000.0},
          {"use_sliding_window", false},
          {"sliding_window", nullptr},
          {"tie_word_embeddings", false},
          {"attention_bias", false},
          {"bos_token_id", 151643},
          {"eos_token_id", 151645},
          {"torch_dtype", "bfloat16"}};
}

std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
  return h;
}

// xoshiro256**, seeded through splitmix64: fast enough to fill gigabytes at disk speed.
class Xoshiro {
 public:
  explicit Xoshiro(std::uint64_t seed) {
    for (auto& word : s_) {
      std::uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      word = z ^ (z >> 31);
    }
  }
  std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4];
};

// 16 random bits -> a float uniform in [-1, 1): 1.m in [1, 2) from the bits as mantissa.
inline float unit(std::uint64_t bits16) {
  const std::uint32_t word = 0x3F800000u | (static_cast<std::uint32_t>(bits16 & 0xFFFFu) << 7);
  float f;
  std::memcpy(&f, &word, 4);
  return 2.0f * f - 3.0f;
}

// How a tensor's values are drawn: offset + scale · U[-1, 1) (norms ~1, biases small, matrices
// with the std of a 1/sqrt(fan_in) initialisation, the embedding with unit-scale rows).
struct Law {
  float offset = 0, scale = 1;
};
Law law_of(const std::string& name, const Shape& shape) {
  if (name.find("norm") != std::string::npos) return {1.0f, 0.1f};
  if (name.ends_with(".bias") || name.ends_with("e_score_correction_bias")) return {0.0f, 0.05f};
  if (name == "model.embed_tokens.weight") return {0.0f, std::sqrt(3.0f)};
  return {0.0f, std::sqrt(3.0f / static_cast<float>(shape[-1]))};
}

template <class Word>
void fill_from_table(const std::vector<std::byte>& bytes, Xoshiro& rng, std::span<std::byte> out) {
  const auto* table = reinterpret_cast<const Word*>(bytes.data());
  const std::size_t count = out.size() / sizeof(Word);
  auto put = [&](std::size_t i, std::uint64_t bits) {
    std::memcpy(out.data() + i * sizeof(Word), table + (bits & 0xFFFFu), sizeof(Word));
  };
  std::size_t i = 0;
  for (; i + 4 <= count; i += 4) {
    const std::uint64_t r = rng.next();
    put(i, r);
    put(i + 1, r >> 16);
    put(i + 2, r >> 32);
    put(i + 3, r >> 48);
  }
  for (; i < count; ++i) put(i, rng.next());
}

// Fills `out` (a chunk of a tensor in `dtype`) from a stream seeded by (seed, tensor, chunk), so
// any chunk can be produced alone. Each element is one of 65536 values of the law, looked up by
// 16 random bits: the table (computed per chunk, in the dtype) makes filling a copy loop.
void fill_values(DType dtype, const Law& law, std::uint64_t seed, std::span<std::byte> out) {
  const std::size_t size = dtype_size(dtype);
  std::vector<std::byte> table(65536 * size);
  for (std::size_t i = 0; i < 65536; ++i)
    store_from_f32(table.data(), dtype, i, law.offset + law.scale * unit(i));
  Xoshiro rng(seed);
  if (dtype == DType::I8) {
    // Int8 codes of a per-channel quantized matrix: uniform over [-127, 127].
    std::vector<std::byte> codes(65536);
    for (std::size_t i = 0; i < 65536; ++i)
      codes[i] = static_cast<std::byte>(static_cast<std::int8_t>(std::lround(127.0f * unit(i))));
    fill_from_table<std::uint8_t>(codes, rng, out);
    return;
  }
  if (size == 2)
    fill_from_table<std::uint16_t>(table, rng, out);
  else
    fill_from_table<std::uint32_t>(table, rng, out);
}

}  // namespace

std::vector<std::string> real_presets() {
  return {"deepseek-v2-lite", "deepseek-v3", "mixtral-8x7b", "qwen3-30b-a3b"};
}

std::string real_config_json(std::string_view preset, std::int64_t layers, std::int64_t vocab) {
  json j;
  if (preset == "deepseek-v2-lite")
    j = deepseek_v2_lite();
  else if (preset == "deepseek-v3")
    j = deepseek_v3();
  else if (preset == "mixtral-8x7b")
    j = mixtral_8x7b();
  else if (preset == "qwen3-30b-a3b")
    j = qwen3_30b_a3b();
  else
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("unknown preset '{}' (known: {})", preset,
                            fmt::join(real_presets(), ", ")));
  if (layers < 0 || vocab < 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("--layers and --vocab must be positive, not {} and {}", layers, vocab));
  if (layers > 0) {
    if (layers > j["num_hidden_layers"].get<std::int64_t>())
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("preset '{}' has {} layers; --layers {} asks for more", preset,
                              j["num_hidden_layers"].get<std::int64_t>(), layers));
    j["num_hidden_layers"] = layers;
  }
  if (vocab > 0) {
    j["vocab_size"] = vocab;
    for (const char* key : {"bos_token_id", "eos_token_id"})
      if (j.contains(key) && j[key].get<std::int64_t>() >= vocab) j[key] = vocab - 1;
  }
  return j.dump(2) + "\n";
}

std::uint64_t write_random_checkpoint(const std::string& dir, const std::string& config_json,
                                      const RandomWeightsOptions& options,
                                      std::uint64_t shard_bytes) {
  namespace fs = std::filesystem;
  if (options.dtype != DType::F32 && options.dtype != DType::BF16 && options.dtype != DType::F16)
    throw Error(
        ErrorCode::InvalidArgument,
        fmt::format("random weights are f32, bf16 or f16, not {}", dtype_name(options.dtype)));
  if (options.fp8)
    throw Error(ErrorCode::Unsupported,
                "the streaming writer does not quantise to fp8 (use the tiny presets for that)");
  const ModelConfig config = parse_config(config_json, "the preset's config.json");
  // A quantized format: each linear's int8 codes are drawn uniformly and its per-channel scale
  // is the float law's bound / 127, so values follow the same law as the float checkpoint's.
  std::optional<QuantizedFormat> format;
  if (!options.format.empty()) {
    format = parse_quantized_format(options.format);
    if (format->family == QuantizedFormat::Family::Fp8 || format->scheme.format != QuantFormat::Int8 ||
        (format->family == QuantizedFormat::Family::CompressedTensors &&
         format->activation == ActivationQuant::None) ||
        format->activation == ActivationQuant::StaticInt8)
      throw Error(ErrorCode::Unsupported,
                  fmt::format("the streaming writer draws int8 per-channel codes: formats "
                              "compressed-tensors-w8a8 and msmodelslim-w8a8-dynamic, not '{}'",
                              options.format));
  }
  std::vector<io::TensorSpec> specs;
  std::map<std::string, Law> laws_by_name;
  for (const auto& [name, shape] : expected_tensors(config)) {
    const DType dtype = name.ends_with("e_score_correction_bias") ? DType::F32 : options.dtype;
    if (!format || !is_quantized_linear(name)) {
      specs.push_back({name, dtype, shape});
      continue;
    }
    const std::string m = name.substr(0, name.size() - 7);
    const Law law = law_of(name, shape);
    const bool ms = format->family == QuantizedFormat::Family::MsModelSlim;
    specs.push_back({name, DType::I8, shape});
    specs.push_back({m + ".weight_scale", ms ? DType::F32 : DType::BF16, Shape{shape[0], 1}});
    laws_by_name[m + ".weight_scale"] = Law{law.scale / 127.0f, 0.0f};
    if (ms) {
      specs.push_back({m + ".weight_offset", DType::F32, Shape{shape[0], 1}});
      laws_by_name[m + ".weight_offset"] = Law{0.0f, 0.0f};
    }
  }
  auto bytes_of = [](const io::TensorSpec& t) {
    return static_cast<std::uint64_t>(t.shape.numel()) * dtype_size(t.dtype);
  };
  // Shards: consecutive tensors up to shard_bytes each (a tensor never spans two).
  std::vector<std::vector<io::TensorSpec>> shards(1);
  std::uint64_t in_shard = 0, total = 0;
  for (const auto& t : specs) {
    if (in_shard > 0 && in_shard + bytes_of(t) > shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(t);
    in_shard += bytes_of(t);
    total += bytes_of(t);
  }

  fs::create_directories(dir);
  {
    std::ofstream config_file(fs::path(dir) / "config.json", std::ios::binary | std::ios::trunc);
    config_file << (format ? quantized_config_json(config_json, *format) : config_json);
    if (!config_file) throw Error(ErrorCode::Io, fmt::format("cannot write '{}/config.json'", dir));
  }
  const std::map<std::string, std::string> metadata{{"format", "pt"}};
  json weight_map = json::object();
  for (std::size_t s = 0; s < shards.size(); ++s) {
    const std::string file =
        shards.size() == 1
            ? std::string("model.safetensors")
            : fmt::format("model-{:05}-of-{:05}.safetensors", s + 1, shards.size());
    const auto& tensors = shards[s];
    std::vector<Law> laws;
    for (const auto& t : tensors) {
      const auto known = laws_by_name.find(t.name);
      laws.push_back(known != laws_by_name.end() ? known->second : law_of(t.name, t.shape));
      weight_map[t.name] = file;
    }
    constexpr std::size_t kChunk = 8u << 20;
    io::write_safetensors_streamed(
        (fs::path(dir) / file).string(), tensors, metadata,
        [&](std::size_t i, std::size_t offset, std::span<std::byte> chunk) {
          const std::uint64_t seed =
              options.seed ^ fnv1a(tensors[i].name) ^ ((offset / kChunk + 1) * 0xD1B54A32D192ED03ull);
          fill_values(tensors[i].dtype, laws[i], seed, chunk);
        },
        kChunk);
  }
  if (format && format->family == QuantizedFormat::Family::MsModelSlim) {
    std::vector<std::string> names;
    for (const auto& t : specs) names.push_back(t.name);
    std::ofstream out(fs::path(dir) / "quant_model_description.json",
                      std::ios::binary | std::ios::trunc);
    out << msmodelslim_description(names, *format);
    if (!out)
      throw Error(ErrorCode::Io,
                  fmt::format("cannot write '{}/quant_model_description.json'", dir));
  }
  if (shards.size() > 1) {
    const json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    std::ofstream out(fs::path(dir) / "model.safetensors.index.json",
                      std::ios::binary | std::ios::trunc);
    out << index.dump(2) << "\n";
    if (!out)
      throw Error(ErrorCode::Io,
                  fmt::format("cannot write '{}/model.safetensors.index.json'", dir));
  }
  return total;
}

}  // namespace porta::model
