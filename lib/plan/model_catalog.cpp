// The model configs the planner ships (lib/plan/data/models/: DeepSeek-V2, R1, the hypothetical
// 2×R1, Qwen3-235B-A22B, Mixtral-8x22B), a user's config.json, and the parameter counts a plan
// reports.
#include <fmt/format.h>

#include <porta/error.hpp>
#include <porta/plan.hpp>

#include "plan/embedded_data.hpp"
#include "plan/layer_costs.hpp"

namespace porta::plan {

model::ModelConfig load_model(const std::string& name_or_path) {
  if (const auto text = detail::find_embedded("model", name_or_path))
    return model::parse_config(std::string(*text), name_or_path + " (built in)");
  if (name_or_path.find('/') == std::string::npos &&
      name_or_path.find(".json") == std::string::npos) {
    std::string known;
    for (const auto& n : builtin_models()) known += (known.empty() ? "" : ", ") + n;
    throw Error(ErrorCode::NotFound,
                fmt::format("no built-in model '{}' (built in: {}; or a config.json path)",
                            name_or_path, known));
  }
  return model::load_config(name_or_path);
}

std::vector<std::string> builtin_models() { return detail::embedded_names("model"); }

ModelSize model_size(const model::ModelConfig& m) {
  const detail::ParamCounts p = detail::param_counts(m);
  ModelSize s;
  const double L = static_cast<double>(m.num_layers);
  s.expert_params = p.moe_layers * static_cast<double>(m.num_experts) * p.expert;
  s.total_params = L * p.attention + p.dense_layers * p.dense_mlp +
                   p.moe_layers * (p.shared_experts + p.router) + s.expert_params + p.embedding;
  s.active_params = L * p.attention + p.dense_layers * p.dense_mlp +
                    p.moe_layers * (p.shared_experts + p.router +
                                    static_cast<double>(m.top_k) * p.expert) +
                    p.embedding / (m.tie_word_embeddings ? 1 : 2);
  return s;
}

}  // namespace porta::plan
