// Shared helpers of the model tests: tiny checkpoints in memory and on disk, running a model's
// prompt through a session, and comparing with the plain-loop reference.
#pragma once

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include <porta/model/checkpoint_gen.hpp>
#include <porta/model/generate.hpp>

#include "model/hf_reference.hpp"

namespace porta::test {

struct TinyModel {
  std::string config_json;
  model::ModelConfig config;
  std::vector<std::pair<std::string, Tensor>> tensors;
};

inline TinyModel tiny_model(const std::string& kind, std::uint64_t seed = 7,
                            DType dtype = DType::BF16, bool fp8 = false) {
  TinyModel m;
  m.config_json = model::tiny_config_json(kind, fp8);
  m.config = model::parse_config(m.config_json, kind);
  m.tensors = model::random_weights(m.config, {.seed = seed, .dtype = dtype, .fp8 = fp8});
  return m;
}

inline model::Model load(const TinyModel& m, const model::LoadOptions& options = {}) {
  const std::map<std::string, Tensor> by_name(m.tensors.begin(), m.tensors.end());
  return model::Model::from_tensors(m.config, by_name, options);
}

inline std::string model_tmpdir(const std::string& name) {
  const auto dir = std::filesystem::path(PORTA_TEST_TMPDIR) / "model" / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

inline std::vector<int> prompt_ids() { return {3, 141, 59, 26, 5, 35, 89, 79}; }

// Prompt logits [T, V] from a fresh session.
inline Tensor porta_logits(const model::Model& m, const std::vector<int>& ids,
                           const std::string& backend = "reference") {
  model::Session session(m, {.backend = backend, .capacity = 64, .all_logits = true});
  const std::vector<std::int32_t> ids32(ids.begin(), ids.end());
  return session.forward(ids32);
}

inline double max_abs_diff(const std::vector<float>& a, const std::vector<double>& b) {
  double d = 0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    d = std::max(d, std::fabs(static_cast<double>(a[i]) - b[i]));
  return a.size() == b.size() ? d : INFINITY;
}

inline double max_abs(const std::vector<double>& b) {
  double d = 0;
  for (double v : b) d = std::max(d, std::fabs(v));
  return d;
}

}  // namespace porta::test
