// Checkpoint bench cases: a whole Hugging Face model (include/porta/model/) prefilling a prompt.
// The tiny presets (deepseek_v3, deepseek_v2, mixtral, qwen2_moe, qwen3_moe) are generated in
// memory with a fixed seed, exactly as `porta gen-checkpoint` writes them; "checkpoint:DIR" loads
// the checkpoint in DIR (config.json and safetensors) as `porta run` does.
#include <filesystem>
#include <map>
#include <mutex>

#include <fmt/format.h>

#include <porta/error.hpp>
#include <porta/model/checkpoint_gen.hpp>
#include <porta/model/model.hpp>

#include "bench_case.hpp"

namespace porta::cli::bench {

namespace {

constexpr const char* kPathPrefix = "path=";

// Loading or generating a model is the expensive part of a case, and each token count and dtype
// of a sweep builds the case again: keep each model once per process.
const model::Model& model_for(const CaseConfig& c, DType dtype, std::uint64_t seed) {
  static std::mutex mutex;
  static std::map<std::string, model::Model> models;
  const std::string key = fmt::format("{}|{}|{}", c.name, dtype_name(dtype), seed);
  std::lock_guard lock(mutex);
  if (auto it = models.find(key); it != models.end()) return it->second;
  model::Model loaded = [&] {
    if (c.name.rfind(kPathPrefix, 0) == 0) {
      model::LoadOptions options;
      options.weight_dtype = dtype;
      return model::Model::load(c.name.substr(5), options);
    }
    const auto config = model::parse_config(model::tiny_config_json(c.name), c.name);
    model::RandomWeightsOptions weights;
    weights.seed = seed;
    weights.dtype = dtype;
    auto tensors = model::random_weights(config, weights);
    return model::Model::from_tensors(config, {tensors.begin(), tensors.end()});
  }();
  return models.emplace(key, std::move(loaded)).first->second;
}

BuiltCase build_checkpoint(const CaseConfig& c, const CaseParams& p, TensorCache&) {
  const model::Model& m = model_for(c, p.dtype, p.seed);
  BuiltCase b;
  model::GraphSpec spec;
  spec.tokens = p.tokens;
  b.graph = m.build(spec);
  const auto vocab = m.config().vocab_size;
  std::vector<std::int32_t> ids(static_cast<std::size_t>(p.tokens)), positions(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    ids[i] = static_cast<std::int32_t>((i * 7919 + 13) % static_cast<std::size_t>(vocab));
    positions[i] = static_cast<std::int32_t>(i);
  }
  b.inputs[model::kIdsInput] = Tensor::from_vector<std::int32_t>({p.tokens}, ids);
  b.inputs[model::kPositionsInput] = Tensor::from_vector<std::int32_t>({p.tokens}, positions);
  b.description = fmt::format("{} ({}), {} layers, hidden {}, vocab {}, {:.1f} MB of weights",
                              c.name, m.config().model_type, m.config().num_layers,
                              m.config().hidden_size, vocab, m.weight_bytes() / 1e6);
  return b;
}

CaseFamily checkpoint_family() {
  CaseFamily f;
  f.name = "checkpoint";
  f.kind = "model";
  f.summary =
      "a Hugging Face MoE checkpoint (tiny generated presets, or path=DIR) prefilling a prompt";
  f.tokens_meaning = "prompt tokens (one prefill step)";
  for (const auto& kind : model::tiny_kinds())
    f.configs.push_back(
        {kind, fmt::format("tiny random {} checkpoint (porta gen-checkpoint)", kind), {}});
  f.resolve_config = [](std::string_view name) -> std::optional<CaseConfig> {
    if (name.rfind(kPathPrefix, 0) != 0) return std::nullopt;
    const std::string dir(name.substr(5));
    if (!std::filesystem::is_directory(dir))
      throw Error(
          ErrorCode::NotFound,
          fmt::format("bench case checkpoint:{}: '{}' is not a checkpoint directory", name, dir));
    return CaseConfig{std::string(name), fmt::format("the checkpoint in {}", dir), {}};
  };
  f.build = build_checkpoint;
  // A mixture-of-experts block routes each token on its own, attention is causal: the first k
  // logits depend on the first k tokens only.
  f.prefix_independent = true;
  return f;
}

const CaseRegistrar checkpoint_registrar{checkpoint_family()};

}  // namespace

}  // namespace porta::cli::bench
