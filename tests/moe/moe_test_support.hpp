// Helpers for the MoE tests: run a router graph through the public API and read its outputs, and
// independent closed-form helpers (sigmoid, softmax) the expectations are computed with.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <porta/porta.hpp>

namespace porta_moe_test {

inline std::vector<std::int32_t> ints(const porta::Tensor& t) {
  const auto* p = t.data_as<std::int32_t>();
  return std::vector<std::int32_t>(p, p + t.numel());
}

// Tensor::to_f32, except that an empty tensor (T = 0) never reaches convert() with a null pointer.
inline std::vector<float> floats(const porta::Tensor& t) {
  return t.numel() == 0 ? std::vector<float>{} : t.to_f32();
}

inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// The nine router outputs, read back from a run.
struct RouterOutputs {
  std::vector<std::int32_t> ids, counts, offsets, perm, inv, dropped, nonfinite;
  std::vector<float> weights, mean_score;
};

// Builds `logits [tokens, E]` (in `dtype`) -> moe_router -> every output, compiles it for the
// reference backend and runs it. `bias` is passed when attrs.use_bias is set.
inline RouterOutputs run_router(const std::vector<float>& logits, std::int64_t tokens,
                                const porta::moe::RouterAttrs& attrs,
                                const std::vector<float>& bias = {},
                                porta::DType dtype = porta::DType::F32) {
  porta::Graph g;
  auto x = g.input("logits", {tokens, attrs.num_experts}, dtype);
  std::optional<porta::Value> bias_value;
  // An empty batch is built with zeros(): from_f32 would hand convert() a null pointer.
  std::map<std::string, porta::Tensor> inputs{
      {"logits", logits.empty()
                     ? porta::Tensor::zeros({tokens, attrs.num_experts}, dtype)
                     : porta::Tensor::from_f32({tokens, attrs.num_experts}, dtype, logits)}};
  if (attrs.use_bias) {
    bias_value = g.input("bias", {attrs.num_experts}, porta::DType::F32);
    inputs["bias"] = porta::Tensor::from_vector<float>({attrs.num_experts}, bias);
  }
  const auto r = g.moe_router(x, attrs, bias_value);
  g.output("ids", r.ids);
  g.output("weights", r.weights);
  g.output("counts", r.counts);
  g.output("offsets", r.offsets);
  g.output("perm", r.perm);
  g.output("inv", r.inv);
  g.output("dropped", r.dropped);
  g.output("nonfinite", r.nonfinite);
  g.output("mean_score", r.mean_score);
  auto exe = porta::compile(g);
  auto out = exe.run(inputs);
  RouterOutputs o;
  o.ids = ints(out.at("ids"));
  o.weights = floats(out.at("weights"));
  o.counts = ints(out.at("counts"));
  o.offsets = ints(out.at("offsets"));
  o.perm = ints(out.at("perm"));
  o.inv = ints(out.at("inv"));
  o.dropped = ints(out.at("dropped"));
  o.nonfinite = ints(out.at("nonfinite"));
  o.mean_score = floats(out.at("mean_score"));
  return o;
}

inline porta::moe::RouterAttrs router(std::int64_t experts, std::int64_t top_k,
                                      porta::moe::Score score) {
  porta::moe::RouterAttrs a;
  a.num_experts = experts;
  a.top_k = top_k;
  a.score = score;
  return a;
}

}  // namespace porta_moe_test
