// Helpers shared by the quantized-weights tests: a QuantScheme in one call, random weights, and
// a graph run on one backend with no fallback.
#pragma once

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <porta/porta.hpp>
#include <porta/quant.hpp>

namespace quant_test {

inline porta::QuantScheme make_scheme(porta::QuantFormat format, std::int64_t group = 0,
                                      bool asym = false, porta::DType scale = porta::DType::F32,
                                      std::int64_t block_n = 1) {
  porta::QuantScheme s;
  s.format = format;
  s.group_k = group;
  s.zero_point = asym;
  s.scale_dtype = scale;
  s.block_n = block_n;
  return s;
}

// Uniform in [-1, 1), stored as `dtype`.
inline porta::Tensor random_tensor(porta::Shape shape, std::uint32_t seed,
                                   porta::DType dtype = porta::DType::F32) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(static_cast<std::size_t>(shape.numel()));
  for (auto& x : v) x = dist(rng);
  return porta::Tensor::from_f32(std::move(shape), dtype, v);
}

// The graph's (single) output on `backend` alone, as f32.
inline std::vector<float> run_on(const porta::Graph& g,
                                 const std::map<std::string, porta::Tensor>& inputs,
                                 const std::string& backend) {
  auto out = porta::compile(g, {.backend = backend, .fallback = ""}).run(inputs);
  return out.begin()->second.to_f32();
}

}  // namespace quant_test
