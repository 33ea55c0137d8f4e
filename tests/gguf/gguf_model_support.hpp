// Tiny models reshaped for the GGUF tests (widths that hold whole blocks of a ggml type), and
// the relative difference the packed-model tests compare logits by.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/model_test_support.hpp"

namespace porta::test {

// The tiny `kind` model with config.json keys replaced by `changes`, random f32 weights.
inline TinyModel reshaped_tiny_model(const std::string& kind, const nlohmann::json& changes,
                                     std::uint64_t seed) {
  auto j = nlohmann::json::parse(model::tiny_config_json(kind));
  j.update(changes);
  TinyModel m;
  m.config_json = j.dump();
  m.config = model::parse_config(m.config_json, kind);
  m.tensors = model::random_weights(m.config, {.seed = seed, .dtype = DType::F32});
  return m;
}

// max |got - want| over max |want|.
inline double relative_max_diff(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    diff = std::max(diff, std::fabs(double(got[i]) - want[i]));
    scale = std::max(scale, std::fabs(double(want[i])));
  }
  return diff / scale;
}

}  // namespace porta::test
